"""Kubernetes versions: parse release tags, pick the patch set, find the Go the tree asks for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from longcert.errors import ConfigError

if TYPE_CHECKING:
    from longcert.patching import PatchSet
from longcert.settings import PROJECT_ROOT

GO_TABLE_FILE = PROJECT_ROOT / "config" / "go-versions.yaml"

_TAG = re.compile(r"v(\d+)\.(\d+)\.(\d+)(?:-(alpha|beta|rc)\.(\d+))?")
_PRE_RANK = {"alpha": 0, "beta": 1, "rc": 2}
_RELEASE_RANK = 3


@total_ordering
@dataclass(frozen=True)
class KubeVersion:
    """A Kubernetes release tag such as v1.28.7 or v1.37.0-beta.0."""

    major: int
    minor: int
    patch: int
    pre: str = ""  # "alpha", "beta", "rc" or "" for a release
    pre_number: int = 0

    @classmethod
    def parse(cls, text: str) -> KubeVersion:
        """Parse a release tag (``vMAJOR.MINOR.PATCH[-alpha|beta|rc.N]``) or raise ConfigError."""
        match = _TAG.fullmatch(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ConfigError(
                f"{text!r} is not a Kubernetes release tag",
                "expected vMAJOR.MINOR.PATCH such as v1.9.4 or v1.37.0-beta.0",
            )
        major, minor, patch, pre, pre_number = match.groups()
        return cls(int(major), int(minor), int(patch), pre or "", int(pre_number or 0))

    @property
    def tag(self) -> str:
        base = f"v{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.pre}.{self.pre_number}" if self.pre else base

    @property
    def minor_str(self) -> str:
        return f"{self.major}.{self.minor}"

    def key(self) -> tuple[int, int, int, int, int]:
        rank = _PRE_RANK[self.pre] if self.pre else _RELEASE_RANK
        return (self.major, self.minor, self.patch, rank, self.pre_number)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, KubeVersion):
            return NotImplemented
        return self.key() < other.key()

    def __str__(self) -> str:
        return self.tag


def bound_key(text: str, *, upper: bool) -> tuple[int, ...]:
    """Sort key of a range bound: ``1.13`` covers the whole minor, ``v1.25.13`` is exact."""
    minor_only = re.fullmatch(r"v?(\d+)\.(\d+)", text.strip())
    if minor_only:
        major, minor = int(minor_only.group(1)), int(minor_only.group(2))
        return (major, minor, 10**9) if upper else (major, minor, -1)
    return KubeVersion.parse(text if text.startswith("v") else "v" + text).key()


def in_range(version: KubeVersion, first: str, last: str) -> bool:
    """Whether ``version`` lies in [first, last] (bounds as in :func:`bound_key`)."""
    return bound_key(first, upper=False) <= version.key() <= bound_key(last, upper=True)


@dataclass(frozen=True)
class GoVersion:
    """The Go toolchain a tree asks for, and which file said so."""

    version: str
    source: str


def go_from_cross_version(text: str) -> str | None:
    """Go version inside build/build-image/cross/VERSION.

    Older trees write ``v1.12.10-1`` (the Go version itself); newer ones
    ``v1.28.0-go1.21.7-bullseye.0`` (kube-cross version, then the Go version).
    """
    text = text.strip()
    match = re.search(r"-go(\d+\.\d+(?:\.\d+)?)", text)
    if match:
        return match.group(1)
    match = re.fullmatch(r"v(\d+\.\d+(?:\.\d+)?)-\d+", text)
    return match.group(1) if match else None


def go_version_table() -> dict[str, str]:
    """config/go-versions.yaml: Kubernetes minor -> Go version, the last resort."""
    data = yaml.safe_load(GO_TABLE_FILE.read_text())
    return {str(k): str(v) for k, v in data.items()}


def go_version_for_tree(tree: Path, version: KubeVersion) -> GoVersion:
    """The Go the tree asks for: .go-version, else cross/VERSION, else the config table."""
    go_file = tree / ".go-version"
    if go_file.is_file():
        text = go_file.read_text().strip().removeprefix("go")
        if re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
            return GoVersion(text, ".go-version")
    cross = tree / "build" / "build-image" / "cross" / "VERSION"
    if cross.is_file():
        found = go_from_cross_version(cross.read_text())
        if found:
            return GoVersion(found, "build/build-image/cross/VERSION")
    table = go_version_table()
    if version.minor_str in table:
        return GoVersion(table[version.minor_str], "config/go-versions.yaml")
    raise ConfigError(
        f"cannot tell which Go builds {version.tag}",
        "the tree has no .go-version or cross/VERSION; pass --go-version",
    )


def has_go_mod(tree: Path) -> bool:
    """Trees before v1.15 have no go.mod and must build in GOPATH mode."""
    return (tree / "go.mod").is_file()


@dataclass(frozen=True)
class Release:
    """A resolved release: its version and the patch set that covers it."""

    version: KubeVersion
    patch_set: PatchSet
    go_hint: str | None  # config/go-versions.yaml's entry for the minor, if any

    @property
    def tag(self) -> str:
        return self.version.tag


def resolve(text: str, patches_dir: Path | None = None) -> Release:
    """Tag text -> Release, or ConfigError for a malformed tag or one no patch set covers."""
    # Imported here: patching uses KubeVersion, and the patch sets are data for this lookup.
    from longcert.patching import load_patch_sets, select_patch_set

    version = KubeVersion.parse(text)
    sets = load_patch_sets(patches_dir) if patches_dir else None
    patch_set = select_patch_set(version, sets)
    return Release(version, patch_set, go_version_table().get(version.minor_str))
