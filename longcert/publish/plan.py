"""What every target shares: the :class:`Target` protocol, the :class:`Action` steps a plan
lists, and the :class:`PublishResult` a push returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from longcert.publish.build import Build, BuildRef
from longcert.publish.signing import Signer

ProgressFn = Callable[[str], None]


def quiet(_: str) -> None:
    """The progress function of a push nobody watches."""
    return None


@dataclass(frozen=True)
class Action:
    """One step of publishing: ``verb`` is create, upload, replace, copy, publish, finish or
    skip."""

    verb: str
    name: str
    where: str
    size: int = 0
    reason: str = ""

    def describe(self, dry_run: bool = False) -> str:
        size = f" ({human_size(self.size)})" if self.size else ""
        if self.verb == "skip":
            return f"skip {self.name}: {self.reason or 'already there'}"
        prefix = "would " if dry_run else ""
        reason = f" ({self.reason})" if self.reason else ""
        return f"{prefix}{self.verb} {self.name}{size} -> {self.where}{reason}"


@dataclass(frozen=True)
class PublishResult:
    """What one push did (or, for a dry run, would do)."""

    target: str
    location: str  # where a consumer finds the build
    actions: tuple[Action, ...]
    dry_run: bool

    @property
    def changed(self) -> int:
        """How many actions write something (0: the target already had everything)."""
        return sum(1 for a in self.actions if a.verb != "skip")

    @classmethod
    def of(cls, target: str, location: str, actions: list[Action], dry_run: bool) -> PublishResult:
        return cls(target, location, tuple(actions), dry_run)


class Target(Protocol):
    """A place a verified build can be published to."""

    @property
    def name(self) -> str: ...

    @property
    def signer(self) -> Signer | None:
        """The key what is published is signed with (``--sign-key``), or None."""
        ...

    def has(self, build: BuildRef) -> bool:
        """Whether the target holds this build completely (nothing is compared but the name)."""
        ...

    def plan(self, build: Build) -> list[Action]:
        """What push would do; raises PublishError for a different file of the same name."""
        ...

    def push(
        self, build: Build, dry_run: bool = False, progress: ProgressFn | None = None
    ) -> PublishResult:
        """Publish ``build`` (dry_run: everything but the writes); idempotent."""
        ...


def human_size(size: int) -> str:
    """A size as people read it: MiB from 1 MiB up, bytes below."""
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} B"
