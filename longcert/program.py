"""The installed `longcert` command: Invoke's Program over the same tasks `invoke` runs in a
checkout (longcert/tasks.py), as Invoke documents for distributing a task collection.

Two things differ from `invoke` in a checkout: the Kubernetes version may be given as the first
argument (`longcert build v1.33.7 --years 10`), and a command line Invoke cannot parse is one
line with a "did you mean" and exit code 64 (EX_USAGE), not 1 (which longcert's error table
gives to OS errors).
"""

from __future__ import annotations

import copy
import difflib
import re
import subprocess
import sys
from typing import Any

from invoke.collection import Collection
from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from longcert import __version__
from longcert.settings import PROJECT_ROOT
from longcert.tasks import OLD_FLAGS, OLD_FLAGS_UNTIL, namespace

USAGE_EXIT_CODE = 64  # sysexits.h EX_USAGE: the command line itself is wrong
# The tasks whose Kubernetes version is required, and so may be given positionally.
VERSION_TASKS = ("build", "fetch", "patch", "compile")
HELP_FLAGS = ("--help", "-h")
RELEASE_TAG = re.compile(r"v?\d+\.\d+\.\d+\S*")


def version_text() -> str:
    """longcert's version, and the git commit when it runs from a checkout."""
    if PROJECT_ROOT is not None and (PROJECT_ROOT / ".git").exists():
        found = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            return f"{__version__} (git {found.stdout.strip()})"
    return __version__


def command_namespace() -> Collection:
    """The task namespace with `version` positional where it is required."""
    collection = Collection()
    for name, task in namespace.tasks.items():
        if name in VERSION_TASKS:
            task = copy.copy(task)
            task.positional = ["version"]
        collection.add_task(task, name=name)
    return collection


def normalize_argv(argv: list[str], task_names: set[str]) -> list[str]:
    """`longcert TASK ... --help` as `longcert --help TASK`: a positional version would
    otherwise take `--help` for the version."""
    words = argv[1:]
    for index, word in enumerate(words):
        if word in task_names:
            if any(w in HELP_FLAGS for w in words[index + 1:]):
                return [argv[0], "--help", word]
            break
    return argv


def usage_hint(message: str, collection: Collection, task: str | None) -> str:
    """A "did you mean" for one of Invoke's parse errors ("" when nothing is close)."""
    unknown = re.search(r"No idea what '(.+)' is!", message)
    if unknown:
        word = unknown.group(1)
        if RELEASE_TAG.fullmatch(word):
            return f"a version goes right after the task: `longcert build {word}`"
        if word.startswith("-"):
            flags = _flag_names(collection, task)
            close = difflib.get_close_matches(word, flags, n=1)
            return f"did you mean {close[0]}?" if close else (
                f"`longcert --help {task}` lists its flags" if task else "")
        close = difflib.get_close_matches(word, sorted(collection.task_names), n=1)
        return f"did you mean `longcert {close[0]}`?" if close else "`longcert --list`"
    if "did not receive required positional arguments" in message and task:
        return f"e.g. `longcert {task} v1.33.7`"
    return f"`longcert --help {task}`" if task else "`longcert --help`"


def _flag_names(collection: Collection, task: str | None) -> list[str]:
    if not task or task not in collection.task_names:
        return ["--help", "--list", "--version", "--debug"]
    names = []
    for argument in collection[task].get_arguments():
        for name in argument.names:
            names.append(("--" if len(name) > 1 else "-") + name.replace("_", "-"))
    return names


def old_flag_names(task: str) -> dict[str, str]:
    """--old-name -> --new-name of the renamed flags of ``task`` (longcert.tasks.OLD_FLAGS)."""
    return {f"--{old.replace('_', '-')}": f"--{new.replace('_', '-')}"
            for (name, new), olds in OLD_FLAGS.items() if name == task for old in olds}


def without_old_names(flag_spec: str, task: str) -> str:
    """A help line's flag spec ("--to=STRING, --publish=STRING") without the old names."""
    old = old_flag_names(task)
    kept = [part for part in flag_spec.split(", ") if part.split("=")[0].split(" ")[0] not in old]
    return ", ".join(kept) or flag_spec


class LongcertProgram(Program):
    """Program whose --version says where longcert came from, whose help leaves out the old
    names of renamed flags, and whose parse errors are usage errors."""

    def print_version(self) -> None:
        print(f"longcert {version_text()}")

    def print_task_help(self, name: str) -> None:
        context = self.parser.contexts[name]
        original = context.help_tuples
        context.help_tuples = lambda: [(without_old_names(spec, name), text)
                                       for spec, text in original()]
        try:
            super().print_task_help(name)
        finally:
            del context.help_tuples

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as err:
            raise self._usage(err) from None
        for call in self.tasks:
            for old, new in old_flag_names(call.name or "").items():
                if old in self.argv:
                    print(f"longcert: note: {old} of {call.name} is now {new} (the old name "
                          f"works until longcert {OLD_FLAGS_UNTIL})", file=sys.stderr)

    def _usage(self, err: ParseError) -> Exit:
        context = getattr(err, "context", None)
        task = getattr(context, "name", None) if context is not None else None
        hint = usage_hint(str(err), self.namespace or Collection(), task)
        return Exit(f"longcert: usage: {err}" + (f" ({hint})" if hint else ""),
                    code=USAGE_EXIT_CODE)

    def parse_core(self, argv: Any) -> None:
        try:
            super().parse_core(argv)
        except ParseError as err:
            raise self._usage(err) from None



def main(argv: list[str] | None = None) -> None:
    """Entry point of the `longcert` console script."""
    collection = command_namespace()
    program = LongcertProgram(namespace=collection, name="longcert", binary="longcert",
                              version=__version__)
    try:
        program.run(normalize_argv(list(sys.argv if argv is None else argv),
                                   set(collection.task_names)))
    except BrokenPipeError:  # `longcert --list | head`
        sys.stderr.close()
        sys.exit(1)
