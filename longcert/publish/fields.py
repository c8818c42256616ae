"""Checked reads of what a build directory holds, for :func:`longcert.publish.build.load_build`:
typed JSON fields (:class:`Fields`, a PublishError naming the field for anything a build does not
write), and regular files only, never a link out of the directory."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from longcert.errors import PublishError


def read_json(path: Path, what: str) -> Any:
    check_regular(path.parent, path.name)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PublishError(
            f"{path.parent} has no {path.name}",
            "give a directory written by `invoke build` (builds/<id>)",
        ) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise PublishError(f"cannot read {what} {path}: {exc}", "rebuild it") from exc


# What a build writes, and so all that publish accepts: a manifest field that is not one of these
# is refused before any target is touched, since every one of them ends up in a file name, a URL,
# an image or the release notes.
SHA256 = re.compile(r"[0-9a-f]{64}")
COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 object name
CREATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
# One line of text (no control characters or line separators) that cannot break a Markdown table.
TEXT = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029|`]{0,200}")
REBUILD = "it was not written by this longcert, or was changed since; rebuild it"


class Fields:
    """Typed reads of one JSON document; anything else is a PublishError naming the field."""

    def __init__(self, build_dir: Path, document: str) -> None:
        self.build_dir = build_dir
        self.document = document

    def bad(self, name: str, what: str) -> PublishError:
        where = f"{self.document} {name}" if name else self.document
        return PublishError(f"{self.build_dir}: {where} {what}", REBUILD)

    def get(self, data: Any, name: str) -> Any:
        key = name.rsplit(".", 1)[-1]
        if not isinstance(data, dict) or key not in data:
            raise self.bad(name, "is missing")
        return data[key]

    def obj(self, data: Any, name: str) -> dict[str, Any]:
        value = self.get(data, name)
        if not isinstance(value, dict):
            raise self.bad(name, f"is {shown(value)}, not an object")
        return value

    def text(self, data: Any, name: str, pattern: re.Pattern[str] = TEXT) -> str:
        value = self.get(data, name)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.bad(name, f"is {shown(value)}, not what longcert writes there")
        return value

    def integer(self, data: Any, name: str, low: int, high: int) -> int:
        value = self.get(data, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.bad(name, f"is {shown(value)}, not a whole number {low} to {high}")
        return value


def shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_regular(build_dir: Path, name: str) -> None:
    """A published file is a regular file in the build directory, never a link out of it."""
    try:
        mode = os.lstat(build_dir / name).st_mode
    except FileNotFoundError:
        return  # the caller says what is missing
    except OSError as exc:
        raise PublishError(f"{build_dir}: cannot read {name}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
        raise PublishError(
            f"{build_dir}: {name} is {kind}; a build holds only the files it wrote", "rebuild it"
        )
