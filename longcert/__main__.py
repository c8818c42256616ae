"""`python -m longcert`: the same as the `longcert` command."""

from longcert.program import main

main()
