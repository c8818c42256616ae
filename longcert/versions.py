"""Kubernetes versions: parse release tags, compare them with ranges, find the Go the tree asks
for. Which patch set covers a version is :func:`longcert.patching.resolve`'s business."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import total_ordering
from pathlib import Path

import yaml

from longcert.errors import ConfigError
from longcert.settings import CONFIG_DIR

GO_TABLE_FILE = CONFIG_DIR / "go-versions.yaml"
GO_INCOMPATIBILITIES_FILE = CONFIG_DIR / "go-incompatibilities.yaml"

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


def go_key(version: str) -> tuple[int, int, int]:
    """Sort key of a Go version: ``1.22`` and ``1.22.0`` are the same release."""
    major, minor, patch = ([int(p) for p in re.findall(r"\d+", version)[:3]] + [0, 0, 0])[:3]
    return major, minor, patch


def go_minor(version: str) -> str:
    """``1.12.10`` -> ``1.12``."""
    major, minor, _ = go_key(version)
    return f"{major}.{minor}"


def is_go_version(text: str) -> bool:
    return re.fullmatch(r"\d+\.\d+(\.\d+)?", text) is not None


def go_from_cross_version(text: str) -> str | None:
    """Go version inside build/build-image/cross/VERSION.

    Older trees write ``v1.12.10-1`` (the Go version itself); newer ones
    ``v1.28.0-go1.21.7-bullseye.0`` (kube-cross version, then the Go version).
    """
    text = text.strip()
    match = re.search(r"-go(\d+\.\d+(?:\.\d+)?)", text)
    if match:
        return match.group(1)
    match = re.fullmatch(r"v(\d+\.\d+(?:\.\d+)?)(?:-legacy)?-\d+", text)
    return match.group(1) if match else None


def go_from_dependencies(text: str) -> str | None:
    """The ``golang: upstream version`` entry of build/dependencies.yaml (v1.19+)."""
    try:
        # Every scalar as text: upstream writes `version: 1.20` unquoted, which YAML's float
        # typing would read as 1.2.
        data = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError:
        return None
    entries = data.get("dependencies") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == "golang: upstream version":
            found = str(entry.get("version", "")).strip().removeprefix("go")
            return found if is_go_version(found) else None
    return None


# What this project does when the image of the Go a tree names is missing. Each rule follows
# what builds: see shared/reference/build-facts.md and config/go-versions.yaml.
GO_RULES: dict[str, str] = {
    "gopath": "no go.mod: GOPATH mode (GO111MODULE=off) builds with its own Go or a newer one "
              "up to the minor's ceiling",
    "own": "go.mod with GOPATH-style scripts: only a Go of the minor the tree names",
    "floor": "the tree's Go, or a newer one up to the minor's ceiling that meets go.mod's go "
             "line",
}


@dataclass(frozen=True)
class GoPolicy:
    """One row of config/go-versions.yaml: the Go upstream built a minor with, and the rule."""

    minor: str
    upstream_go: str
    rule: str
    note: str = ""
    # The newest Go the minor is known to run with (its last patch release's, as upstream built
    # it), and where that was read; "" when the table has no row for the minor.
    ceiling: str = ""
    ceiling_note: str = ""

    def above_ceiling(self, go: str) -> bool:
        """Whether ``go`` is newer than any Go this minor is known to run with."""
        return bool(self.ceiling) and go_key(go) > go_key(self.ceiling)

    def refusal(self, candidate: str, wanted: str, floor: str | None) -> str:
        """Why a Go other than the one the tree names may not stand in for it under this rule
        and this minor's ceiling ("" when it may)."""
        if floor and go_key(candidate) < go_key(floor):
            return f"older than go.mod's go line {floor}"
        if self.rule == "own" and go_minor(candidate) != go_minor(wanted):
            return f"not Go {go_minor(wanted)} (rule 'own': {GO_RULES['own']})"
        if self.rule != "own" and go_key(candidate) < go_key(wanted):
            return f"older than the tree's Go {wanted}"
        if self.above_ceiling(candidate):
            return (f"newer than v{self.minor}'s ceiling Go {self.ceiling} "
                    f"({self.ceiling_note or 'config/go-versions.yaml'})")
        return ""


def _read_go_table() -> dict[str, GoPolicy]:
    try:
        data = yaml.safe_load(GO_TABLE_FILE.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {GO_TABLE_FILE}: {exc}") from exc
    table = {}
    for minor, row in (data or {}).items():
        if not isinstance(row, dict) or str(row.get("rule")) not in GO_RULES:
            raise ConfigError(f"{GO_TABLE_FILE}: row {minor!r} needs go and a rule in {GO_RULES}")
        ceiling = str(row.get("ceiling", ""))
        if ceiling and not is_go_version(ceiling):
            raise ConfigError(f"{GO_TABLE_FILE}: row {minor!r}: ceiling {ceiling!r} is not a Go "
                              "version")
        table[str(minor)] = GoPolicy(
            str(minor), str(row["go"]), str(row["rule"]), str(row.get("note", "")),
            ceiling, str(row.get("ceiling_note", "")),
        )
    return table


def go_policies() -> dict[str, GoPolicy]:
    """config/go-versions.yaml: Kubernetes minor -> GoPolicy, oldest first."""
    return dict(sorted(_read_go_table().items(), key=lambda item: go_key(item[0])))


def go_policy(version: KubeVersion) -> GoPolicy:
    """The row for ``version``'s minor; a minor newer than the table gets the newest row's
    rule (with its own minor), an older one the oldest row's."""
    table = go_policies()
    if version.minor_str in table:
        return table[version.minor_str]
    rows = list(table.values())
    if not rows:
        raise ConfigError(f"{GO_TABLE_FILE} is empty")
    nearest = rows[-1] if go_key(version.minor_str) > go_key(rows[-1].minor) else rows[0]
    note = f"not in the table; rule of {nearest.minor}"
    return GoPolicy(version.minor_str, "", nearest.rule, note)


def go_version_table() -> dict[str, str]:
    """Kubernetes minor -> the Go upstream built it with."""
    return {minor: row.upstream_go for minor, row in go_policies().items()}


def go_version_for_tree(tree: Path, version: KubeVersion) -> GoVersion:
    """The Go the tree asks for: .go-version, else cross/VERSION, else build/dependencies.yaml,
    else the config table. Some distribution imports drop the dotfile; the others remain."""
    go_file = tree / ".go-version"
    if go_file.is_file():
        text = go_file.read_text().strip().removeprefix("go")
        if is_go_version(text):
            return GoVersion(text, ".go-version")
    cross = tree / "build" / "build-image" / "cross" / "VERSION"
    if cross.is_file():
        found = go_from_cross_version(cross.read_text())
        if found:
            return GoVersion(found, "build/build-image/cross/VERSION")
    dependencies = tree / "build" / "dependencies.yaml"
    if dependencies.is_file():
        found = go_from_dependencies(dependencies.read_text())
        if found:
            return GoVersion(found, "build/dependencies.yaml")
    upstream = go_policy(version).upstream_go
    if upstream:
        return GoVersion(upstream, "config/go-versions.yaml")
    raise ConfigError(
        f"cannot tell which Go builds {version.tag}",
        "the tree has no .go-version, cross/VERSION or build/dependencies.yaml; pass --go-version",
    )


def go_mod_floor(tree: Path) -> str | None:
    """The ``go`` line of the tree's go.mod: the oldest Go that may build it (None without)."""
    go_mod = tree / "go.mod"
    if not go_mod.is_file():
        return None
    match = re.search(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", go_mod.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def has_go_mod(tree: Path) -> bool:
    """Trees before v1.15 have no go.mod and must build in GOPATH mode."""
    return (tree / "go.mod").is_file()


# --- vendored code that breaks on newer Go runtimes ----------------------------------------


@dataclass(frozen=True)
class GoIncompatibility:
    """One row of config/go-incompatibilities.yaml."""

    module: str
    versions: tuple[str, ...]  # go.mod versions or Godeps revision prefixes
    breaks_from: str  # the first Go they break on
    why: str
    sources: tuple[str, ...]


def go_incompatibilities() -> list[GoIncompatibility]:
    """config/go-incompatibilities.yaml, checked."""
    try:
        data = yaml.safe_load(GO_INCOMPATIBILITIES_FILE.read_text()) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {GO_INCOMPATIBILITIES_FILE}: {exc}") from exc
    rows = []
    for row in data if isinstance(data, list) else [data]:
        if not isinstance(row, dict):
            raise ConfigError(f"{GO_INCOMPATIBILITIES_FILE}: a list of rows is expected")
        try:
            found = GoIncompatibility(
                str(row["module"]), tuple(str(v) for v in row["versions"]),
                str(row["breaks_from"]), str(row["why"]),
                tuple(str(s) for s in row.get("sources", ())))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{GO_INCOMPATIBILITIES_FILE}: a row needs module, versions, "
                              f"breaks_from and why ({exc})") from None
        if not is_go_version(found.breaks_from) or not found.versions:
            raise ConfigError(f"{GO_INCOMPATIBILITIES_FILE}: {found.module}: breaks_from must "
                              "be a Go version and versions must not be empty")
        rows.append(found)
    return rows


def vendored_versions(tree: Path) -> dict[str, str]:
    """module -> version (Go modules: vendor/modules.txt's `# module version` lines) or
    revision (Godeps/Godeps.json's ImportPath/Rev, v1.9 - v1.14), as the tree vendors them."""
    found: dict[str, str] = {}
    modules = tree / "vendor" / "modules.txt"
    if modules.is_file():
        for line in modules.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "#":
                found[parts[1]] = parts[2]
    godeps = tree / "Godeps" / "Godeps.json"
    if godeps.is_file():
        try:
            deps = (json.loads(godeps.read_text(errors="replace")) or {}).get("Deps") or []
        except (ValueError, AttributeError):
            deps = []
        for dep in deps if isinstance(deps, list) else []:
            if isinstance(dep, dict) and dep.get("ImportPath") and dep.get("Rev"):
                found.setdefault(str(dep["ImportPath"]), str(dep["Rev"]))
    return found


def vendored_incompatibilities(tree: Path, go: str, *, detail: bool = True) -> list[str]:
    """One line per module the tree vendors in a version known to break on ``go``, with why
    and the source unless ``detail`` is False (pure)."""
    vendored = vendored_versions(tree)
    problems = []
    for row in go_incompatibilities():
        version = vendored.get(row.module)
        if version is None or go_key(go) < go_key(row.breaks_from):
            continue
        if any(version == v or (len(v) >= 12 and version.startswith(v)) for v in row.versions):
            source = row.sources[0] if row.sources else GO_INCOMPATIBILITIES_FILE.name
            problem = f"{row.module} {version[:12]} breaks on Go {row.breaks_from} and newer"
            problems.append(f"{problem}: {row.why} ({source})" if detail else problem)
    return problems
