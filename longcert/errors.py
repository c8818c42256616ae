"""Every error longcert raises, with its exit code, in one table.

Each message says what failed, the likely cause and what to do. ``tasks.py`` turns these into
``invoke.Exit`` with the class's exit code; a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class LongcertError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` starts with the one-line
    message (and hint); ``details``, when given, follow it one per indented line (a failed
    verification's failing files), so the first line stays the error."""

    exit_code: ClassVar[int] = 1
    when: ClassVar[str] = "an unexpected failure inside longcert"

    def __init__(
        self, message: str, hint: str | None = None, *, details: Sequence[str] = ()
    ) -> None:
        self.message = message
        self.hint = hint
        self.details = tuple(details)
        super().__init__(message)

    @property
    def line(self) -> str:
        """The one-line error: the message and the hint."""
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message

    def __str__(self) -> str:
        return "\n".join([self.line, *(f"  {detail}" for detail in self.details)])


class ConfigError(LongcertError):
    exit_code = 2
    when = "bad input: a version, duration, platform, setting or flag longcert cannot use"


class EngineError(LongcertError):
    exit_code = 3
    when = "no Docker engine answers, or the engine refused a request"


class ImageError(LongcertError):
    exit_code = 4
    when = "the builder image is missing and cannot be pulled, or building it failed"


class SourceError(LongcertError):
    exit_code = 5
    when = "the git remote, the mirror cache or the tag cannot be used"


class PatchError(LongcertError):
    exit_code = 6
    when = "a patch anchor matched zero or too many times, or the tree is already patched"


class BuildError(LongcertError):
    exit_code = 7
    when = "compiling kubeadm failed inside the builder container"


class VerifyError(LongcertError):
    exit_code = 8
    when = "the built kubeadm made a certificate without the asked validity, or a wrong version"


class PublishError(LongcertError):
    exit_code = 9
    when = (
        "the output directory or a publish target could not be written, a build to publish is "
        "not verified or not as a build writes it, or credentials would leave over plain HTTP"
    )


class NoAnswerError(PublishError):
    """A PublishError (exit code 9, not a row of its own in the table): nothing answered, or
    the connection broke before the answer, so a request that changes something may or may not
    have been carried out. Publishing re-checks the target before it tries such a step again,
    unless ``final``: trying again cannot help, or the tries are used up already."""

    def __init__(self, message: str, hint: str | None = None, *, final: bool = False) -> None:
        super().__init__(message, hint)
        self.final = final


INTERRUPTED_EXIT_CODE = 130

# The table the README and `invoke errors` print: class, exit code, when it happens.
ERROR_TABLE: tuple[type[LongcertError], ...] = (
    ConfigError,
    EngineError,
    ImageError,
    SourceError,
    PatchError,
    BuildError,
    VerifyError,
    PublishError,
)
