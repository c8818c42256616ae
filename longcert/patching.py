"""Patch sets: load them, resolve a tag to the one that covers it (:func:`resolve`), render
anchored edits for the asked durations, and produce the diff.

Planning here is pure (it reads the tree, writes nothing). ``source.apply_diff`` applies the
diff with ``git apply --check`` first, so a tree that changed under us is never half-patched.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from longcert import userfiles
from longcert.errors import ConfigError, PatchError
from longcert.settings import BUNDLED_PATCHES_DIR, MAX_YEARS
from longcert.versions import KubeVersion, bound_key, go_version_table, in_range

PATCHES_DIR = BUNDLED_PATCHES_DIR

# "leaf" and "ca" edits carry a duration; "config" edits (pin_edits) stop the ClusterConfiguration
# from overriding the compiled durations, and are applied only with --pin-validity.
GOVERNS = ("leaf", "ca", "config")
_PLACEHOLDERS = ("{years}", "{duration}")


@dataclass(frozen=True)
class Edit:
    """One anchored edit: replace the whole statement ``anchor`` in ``file``, ``count`` times."""

    file: str
    governs: str  # "leaf"/"ca": which --years value goes into the replacement; "config": none
    anchor: str
    replace: str  # may use {years} (a number) and {duration} (a Go constant expression)
    count: int
    certificates: str  # human text: which certificates this site decides

    def render(self, years: int) -> str:
        """The replacement statement for ``years`` 365-day years (written, never multiplied)."""
        return self.replace.replace("{years}", str(years)).replace(
            "{duration}", go_duration_expr(years)
        )

    def patched_pattern(self) -> re.Pattern[str]:
        """Matches this edit's replacement for any number of years: proof of a patched tree."""
        pattern = re.escape(normalize(self.replace))
        pattern = pattern.replace(re.escape("{years}"), r"\d+")
        pattern = pattern.replace(re.escape("{duration}"), r"time\.Hour \* 24 \* 365(?: \* \d+)?")
        return re.compile(pattern)


@dataclass(frozen=True)
class PatchSet:
    """Edits for one era of Kubernetes, covering versions ``first``..``last`` inclusive."""

    name: str
    title: str
    first: str
    last: str
    edits: tuple[Edit, ...]
    source_file: Path
    # Edits that make the compiled durations win over kubeadm's configuration (v1.31+ only).
    pin_edits: tuple[Edit, ...] = ()

    def covers(self, version: KubeVersion) -> bool:
        return in_range(version, self.first, self.last)

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(edit.file for edit in self.edits))


@dataclass(frozen=True)
class FileChange:
    path: str
    before: str
    after: str


@dataclass(frozen=True)
class PatchResult:
    """What the patch stage did: the set, the durations and the diff it applied."""

    patch_set: str
    leaf_years: int
    ca_years: int
    diff: str
    changes: tuple[FileChange, ...]
    pinned: bool = False  # the configuration can no longer override the durations

    @property
    def diff_sha256(self) -> str:
        return hashlib.sha256(self.diff.encode()).hexdigest()


def normalize(statement: str) -> str:
    """Collapse whitespace: Go tokens do not depend on gofmt's alignment."""
    return " ".join(statement.split())


def go_duration_expr(years: int) -> str:
    """``years`` 365-day years as the Go constant expression kubeadm itself uses."""
    if not 1 <= years <= MAX_YEARS:
        raise ConfigError(f"{years} years does not fit Go's time.Duration (1..{MAX_YEARS})")
    base = "time.Hour * 24 * 365"
    return base if years == 1 else f"{base} * {years}"


_EDIT_KEYS = {"file", "governs", "anchor", "replace", "count", "certificates"}
_SET_KEYS = {"name", "title", "first", "last", "edits", "pin_edits"}
_BOUND = re.compile(r"v?\d+\.\d+(?:\.\d+(?:-(?:alpha|beta|rc)\.\d+)?)?")


def _text(raw: dict[str, object], key: str, where: str, *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(f"{where}: {key} must be a non-empty text, got {value!r}")
    return value


def _relative_file(value: str, where: str) -> str:
    """A path inside the Kubernetes tree: relative, normalized, no '..', no NUL."""
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or "\0" in value or any(
        part in ("", ".", "..") for part in parts
    ):
        raise ConfigError(
            f"{where}: file {value!r} must be a relative path inside the Kubernetes tree",
            "no leading '/', no '..' or '.' parts, '/' as the separator",
        )
    return value


def _no_unknown_keys(raw: dict[str, object], allowed: set[str], where: str, what: str = "") -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}{what}",
            f"allowed: {', '.join(sorted(allowed))}",
        )


def _edit_from_yaml(raw: object, where: str) -> Edit:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: an edit must be a mapping, got {type(raw).__name__}")
    _no_unknown_keys(raw, _EDIT_KEYS, where, " in an edit")
    missing = {"file", "governs", "anchor", "replace"} - set(raw)
    if missing:
        raise ConfigError(f"{where}: an edit lacks {', '.join(sorted(missing))}")
    count = raw.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
        raise ConfigError(f"{where}: count must be a whole number from 1 to 100, got {count!r}")
    edit = Edit(
        file=_relative_file(_text(raw, "file", where), where),
        governs=_text(raw, "governs", where),
        anchor=_text(raw, "anchor", where),
        replace=_text(raw, "replace", where),
        count=count,
        certificates=_text(raw, "certificates", where, required=False),
    )
    if edit.governs not in GOVERNS:
        raise ConfigError(f"{where}: governs must be one of {GOVERNS}, got {edit.governs!r}")
    if "\n" in edit.anchor.strip() or "\n" in edit.replace.strip():
        raise ConfigError(f"{where}: anchor and replace are single statements (one line each)")
    if edit.governs != "config" and not any(p in edit.replace for p in _PLACEHOLDERS):
        raise ConfigError(
            f"{where}: replace of {edit.anchor!r} uses neither {{years}} nor {{duration}}"
        )
    return edit


def _bound(raw: dict[str, object], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not _BOUND.fullmatch(value.strip()):
        raise ConfigError(
            f"{where}: {key} must be a quoted version such as \"1.31\" or \"v1.31.2\", got "
            f"{value!r}",
            "unquoted, YAML reads 1.40 as the number 1.4",
        )
    return value.strip().removeprefix("v")


def load_patch_set(path: Path, root: Path | None = None) -> PatchSet:
    """Read one patch set YAML file (a regular file of at most 1 MiB, not leading outside
    ``root`` through a symlink); every key checked (ConfigError naming file and key)."""
    where = str(path)
    text = userfiles.read_text(path, limit=userfiles.MAX_PATCH_SET_BYTES, what="patch set",
                               root=root)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read patch set {path}: {first}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a patch set must be a mapping of name, first, last, edits")
    _no_unknown_keys(raw, _SET_KEYS, where)
    edits, pin_edits = raw.get("edits"), raw.get("pin_edits") or []
    if not isinstance(edits, list) or not edits:
        raise ConfigError(f"{where}: edits must be a non-empty list")
    if not isinstance(pin_edits, list):
        raise ConfigError(f"{where}: pin_edits must be a list")
    first, last = _bound(raw, "first", where), _bound(raw, "last", where)
    if bound_key(first, upper=False) > bound_key(last, upper=True):
        raise ConfigError(f"{where}: first {first} is after last {last}")
    name = _text(raw, "name", where)
    return PatchSet(
        name=name,
        title=_text(raw, "title", where, required=False) or name,
        first=first,
        last=last,
        edits=tuple(_edit_from_yaml(e, f"{where}: edits[{i}]") for i, e in enumerate(edits)),
        source_file=path,
        pin_edits=tuple(
            _edit_from_yaml(e, f"{where}: pin_edits[{i}]") for i, e in enumerate(pin_edits)
        ),
    )


@cache
def load_patch_sets(directory: Path = PATCHES_DIR) -> tuple[PatchSet, ...]:
    """Every patch set in ``patches/``, oldest era first."""
    sets = [load_patch_set(p, directory) for p in sorted(directory.glob("*.yaml"))]
    if not sets:
        raise ConfigError(f"no patch sets (*.yaml) in {directory}")
    return tuple(sorted(sets, key=lambda s: bound_key(s.first, upper=False)))


def select_patch_set(version: KubeVersion, sets: tuple[PatchSet, ...] | None = None) -> PatchSet:
    """The one patch set that covers ``version``; ConfigError when none (or several) do."""
    sets = load_patch_sets() if sets is None else sets
    matching = [s for s in sets if s.covers(version)]
    if len(matching) == 1:
        return matching[0]
    if matching:
        names = ", ".join(s.name for s in matching)
        raise ConfigError(f"patch sets overlap for {version.tag}: {names}")
    oldest = min(sets, key=lambda s: bound_key(s.first, upper=False), default=None)
    if oldest and version.key() < bound_key(oldest.first, upper=False):
        raise ConfigError(
            f"{version.tag} is older than any patch set", f"the oldest supported is {oldest.first}"
        )
    raise ConfigError(f"no patch set covers {version.tag}", "see `invoke versions`")


@dataclass(frozen=True)
class Release:
    """A resolved release: its version and the patch set that covers it."""

    version: KubeVersion
    patch_set: PatchSet
    go_hint: str | None  # config/go-versions.yaml's entry for the minor, if any
    # Newer than every patch set's `last`: tried with the newest set on the day it ships.
    unchecked: bool = False

    @property
    def tag(self) -> str:
        return self.version.tag


def resolve(text: str, patches_dir: Path | None = None) -> Release:
    """Tag text -> Release, or ConfigError for a malformed tag or one no patch set covers."""
    version = KubeVersion.parse(text)
    sets = load_patch_sets(patches_dir) if patches_dir else load_patch_sets()
    newest = max(sets, key=lambda s: bound_key(s.last, upper=True))
    newest_major = bound_key(newest.last, upper=True)[0]
    if version.key() > bound_key(newest.last, upper=True) and version.major == newest_major:
        # A minor released after the newest patch set was checked: its anchors may well still
        # match, and fail closed if not; verification proves the result either way.
        return Release(version, newest, go_version_table().get(version.minor_str), True)
    patch_set = select_patch_set(version, sets)
    return Release(version, patch_set, go_version_table().get(version.minor_str))


def plan(
    patch_set: PatchSet,
    tree: Path,
    version: KubeVersion,
    leaf_years: int,
    ca_years: int,
    *,
    pin: bool = False,
) -> PatchResult:
    """Render every edit of ``patch_set`` (and its pin_edits when ``pin``) against ``tree``;
    PatchError names any mismatch."""
    texts: dict[str, list[str]] = {}
    originals: dict[str, str] = {}
    pinned = pin and bool(patch_set.pin_edits)
    for edit in patch_set.edits + (patch_set.pin_edits if pinned else ()):
        if edit.file not in texts:
            path = tree / edit.file
            if path.exists() and not path.resolve().is_relative_to(tree.resolve()):
                raise PatchError(
                    f"{version.tag}: {edit.file} leads outside the tree (a symlink to "
                    f"{path.resolve()})",
                    "refusing to read or patch files outside the Kubernetes checkout",
                )
            if not path.is_file():
                raise PatchError(
                    f"{version.tag}: {edit.file} does not exist (patch set {patch_set.name})",
                    "upstream moved this file; the patch set needs updating",
                )
            originals[edit.file] = path.read_text()
            texts[edit.file] = originals[edit.file].splitlines(keepends=True)
        lines = texts[edit.file]
        years = leaf_years if edit.governs == "leaf" else ca_years
        wanted = normalize(edit.anchor)
        hits = [i for i, line in enumerate(lines) if normalize(line) == wanted]
        if len(hits) != edit.count:
            raise _mismatch(edit, hits, lines, version, patch_set)
        for i in hits:
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            ending = lines[i][len(lines[i].rstrip("\r\n")) :]
            lines[i] = indent + edit.render(years) + ending

    changes = tuple(
        FileChange(name, originals[name], "".join(lines))
        for name, lines in texts.items()
        if "".join(lines) != originals[name]
    )
    return PatchResult(patch_set.name, leaf_years, ca_years, render_diff(changes), changes, pinned)


def _mismatch(
    edit: Edit, hits: list[int], lines: list[str], version: KubeVersion, patch_set: PatchSet
) -> PatchError:
    where = f"{version.tag}: {edit.file}: anchor {edit.anchor.strip()!r}"
    if not hits:
        patched, original = edit.patched_pattern(), normalize(edit.anchor)
        for number, line in enumerate(lines, 1):
            # what this edit writes for some years, and not upstream's own line: a tree that
            # was patched before (a line that reads as the original never counts)
            if patched.fullmatch(normalize(line)) and normalize(line) != original:
                return PatchError(
                    f"{where} not found, but line {number} reads {line.strip()!r}, which is "
                    "what this patch set writes: the tree was patched before",
                    "start from a clean checkout (a build resets its worktree to the tag)",
                )
        stripped = [normalize(line) for line in lines]
        # a line that starts as the anchor does (the same identifier or field) first
        same_start = [line for line in stripped if line.split()[:1] == original.split()[:1]]
        closest = difflib.get_close_matches(original, same_start, n=1, cutoff=0.3) or (
            difflib.get_close_matches(original, stripped, n=1, cutoff=0.6))
        found = (f"; the closest is line {stripped.index(closest[0]) + 1}: {closest[0]!r}"
                 if closest else "")
        return PatchError(
            f"{where} matched 0 times, expected {edit.count} (patch set {patch_set.name}): "
            f"upstream changed the line{found}",
            "write a patch set whose anchor is the new line and pass --patches-dir DIR "
            "(patches/README.md says how); never guess",
        )
    numbers = ", ".join(str(i + 1) for i in hits)
    return PatchError(
        f"{where} matched {len(hits)} times (lines {numbers}), expected {edit.count} "
        f"(patch set {patch_set.name})",
        "the anchor is ambiguous here; refusing to edit more than intended",
    )


def render_diff(changes: tuple[FileChange, ...]) -> str:
    """A unified diff (``git apply``-able, -p1) of every changed file."""
    parts: list[str] = []
    for change in changes:
        parts.append(f"diff --git a/{change.path} b/{change.path}\n")
        parts.extend(
            difflib.unified_diff(
                change.before.splitlines(keepends=True),
                change.after.splitlines(keepends=True),
                fromfile=f"a/{change.path}",
                tofile=f"b/{change.path}",
            )
        )
    return "".join(parts)
