"""What a binary must be, when ``verify`` is not told: the release it came with says so.

A published build carries ``manifest.json`` beside its binaries. Without ``--version``,
``verify`` takes the tag (and, unless given, the validities and ``--pin-validity``) from the
manifest that lists the binary, and only once the binary's sha256 is the one listed for its
name: a binary swapped into a release (another version under the same name) is refused, not
checked against what it says of itself. Without such a manifest, ``--version`` is required.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longcert import userfiles
from longcert.build import sha256_file
from longcert.errors import ConfigError, VerifyError
from longcert.settings import Settings
from longcert.verify.header import file_platform
from longcert.versions import KubeVersion


@dataclass(frozen=True)
class Expected:
    """What the release's manifest says the binary is."""

    tag: str
    leaf_years: int
    ca_years: int
    pinned: bool


def _manifest(path: Path) -> dict[str, Any] | None:
    """The manifest.json at ``path``, or None when there is none; ConfigError when it is not
    one (a release whose manifest cannot be read proves nothing)."""
    if not path.exists():
        return None
    text = userfiles.read_text(path, limit=userfiles.MAX_MANIFEST_BYTES, what="manifest.json")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a longcert manifest (not a JSON object)")
    return data


def from_release(binary: Path) -> Expected | None:
    """The expectation the manifest.json beside ``binary`` gives, or None without one.

    VerifyError when the manifest lists the binary's name with another sha256 (swapped), or
    does not list the binary at all (neither its name nor its sha256)."""
    data = _manifest(binary.parent / "manifest.json")
    if data is None:
        return None
    artifacts = data.get("artifacts")
    if not isinstance(artifacts, list) or not all(isinstance(a, dict) for a in artifacts):
        raise ConfigError(f"{binary.parent / 'manifest.json'} lists no artifacts")
    actual = sha256_file(binary)
    named = [a for a in artifacts if a.get("file") == binary.name]
    if named and named[0].get("sha256") != actual:
        raise VerifyError(
            f"{binary} is not the {binary.name} its release's manifest.json lists: sha256 "
            f"{actual[:16]}..., listed {str(named[0].get('sha256'))[:16]}...",
            "a file was swapped into the release or changed since: download it again and "
            "check it with `sha256sum -c SHA256SUMS` and `gh attestation verify`",
        )
    if not named and not any(a.get("sha256") == actual for a in artifacts):
        raise VerifyError(
            f"{binary} is not listed in the manifest.json beside it (by name or sha256)",
            "pass --version with the tag it must report, or keep the binary with its release",
        )
    try:
        kube, validity = data["kubernetes"], data["validity"]
        tag = KubeVersion.parse(str(kube["tag"])).tag
        leaf, ca = int(validity["leaf_years"]), int(validity["ca_years"])
    except (KeyError, TypeError, ValueError, ConfigError):
        raise ConfigError(
            f"{binary.parent / 'manifest.json'} does not say the tag and validities",
            "pass --version, --years and --ca-years",
        ) from None
    inputs = data.get("inputs")
    pinned = isinstance(inputs, dict) and bool(inputs.get("pin_validity"))
    return Expected(tag, leaf, ca, pinned)


def _executable(binary: Path) -> bool:
    """Whether ``binary`` has an executable header verify knows (else it says so itself)."""
    return bool(file_platform(binary)[0])


def required_version(binary: Path, version: str | None) -> tuple[str, Expected | None]:
    """The tag ``binary`` must report: ``--version``, else its release manifest's; and that
    manifest's expectation when there is one. ConfigError when neither says."""
    release = from_release(binary) if binary.is_file() else None
    if version:
        return version, release
    if release is None:
        raise ConfigError(
            f"--version is required: nothing beside {binary} says which release it is",
            "pass the tag it must report (e.g. --version v1.33.7), or keep its release's "
            "manifest.json beside it",
        )
    return release.tag, release


def expectation(
    binary: str | None, version: str | None, settings: Settings, *, pinned: bool
) -> tuple[str | None, int, int, bool]:
    """(tag, leaf years, CA years, pinned) ``verify`` checks ``binary`` against: each flag or
    setting given wins; what is not given comes from the release's manifest.json (the tag is
    required from one or the other). A missing ``binary`` is left to the command to refuse."""
    if not binary or not Path(binary).is_file() or not _executable(Path(binary)):
        return version, settings.years, settings.ca_years, pinned  # the command refuses it
    version, release = required_version(Path(binary), version)
    if release is None:
        return version, settings.years, settings.ca_years, pinned
    leaf = release.leaf_years if settings.sources.get("years") == "default" else settings.years
    ca_auto = str(settings.sources.get("ca_years", "")).startswith("auto")
    return (version, leaf, release.ca_years if ca_auto else settings.ca_years,
            pinned or release.pinned)
