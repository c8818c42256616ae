"""The checkout's entry for Invoke: `invoke build --version v1.9.4 --years 10`.

The tasks live in the package (longcert/tasks.py), so the installed `longcert` command and
`invoke` in a checkout run the same task namespace.
"""

from longcert.tasks import namespace

__all__ = ["namespace"]
