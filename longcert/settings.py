"""Settings: config/defaults.yaml <- LONGCERT_* environment <- task flags.

Every value remembers where it came from, so the preamble can show it. Unknown keys are rejected
with a hint, and every value is validated here, before anything is cloned or built.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from longcert.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = PROJECT_ROOT / "config" / "defaults.yaml"
ENV_PREFIX = "LONGCERT_"

# Go's time.Duration is an int64 count of nanoseconds: at most 2562047h47m16.85s, i.e. 292.47
# 365-day years. kubeadm's durations are constant expressions, so anything larger fails to compile
# (`constant ... overflows int64`), and a runtime multiplication would wrap to a date in the past.
MAX_YEARS = 292
UPSTREAM_CA_YEARS = 10

KNOWN_PLATFORMS = frozenset(
    {
        "linux/amd64",
        "linux/arm64",
        "linux/arm",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "darwin/amd64",
        "darwin/arm64",
        "windows/amd64",
        "windows/386",
        "windows/arm64",
    }
)


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one run; ``sources`` says where each value came from."""

    repo: str
    cache_dir: Path
    builds_dir: Path
    years: int
    ca_years: int
    platforms: tuple[str, ...]
    go_version: str
    image: str
    go_download_url: str
    registry_mirror: str
    build_cache_volume: str
    module_cache_volume: str
    patches_dir: Path | None
    pin_validity: bool
    force: bool
    keep_worktree: bool
    publish: str
    github_api_url: str
    oci_insecure: bool
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def rows(self) -> list[tuple[str, str, str]]:
        """(name, value, source) for every setting, for the preamble."""
        out = []
        for name in _schema():
            value = getattr(self, name)
            if value is None:
                shown = "(bundled)" if name == "patches_dir" else "-"
            else:
                shown = ",".join(value) if isinstance(value, tuple) else str(value)
            out.append((name, shown, self.sources.get(name, "default")))
        return out


def _schema() -> dict[str, Any]:
    try:
        data = yaml.safe_load(DEFAULTS_FILE.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {DEFAULTS_FILE}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{DEFAULTS_FILE} must be a mapping of setting: default")
    return data


def _unknown_key_error(key: str, where: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known settings: {', '.join(known)}"
    return ConfigError(f"unknown setting {key!r} from {where}", hint)


def parse_years(value: object, name: str) -> int:
    """A whole number of 365-day years, 1..MAX_YEARS, or a ConfigError naming the flag."""
    if isinstance(value, bool):
        raise ConfigError(
            f"--{name.replace('_', '-')} must be a whole number of years, not {value}"
        )
    if isinstance(value, int):
        years = value
    else:
        text = str(value).strip()
        if not text.lstrip("+-").isdigit():
            raise ConfigError(
                f"--{name.replace('_', '-')} must be a whole number of years, got {text!r}"
            )
        years = int(text)
    flag = f"--{name.replace('_', '-')}"
    if years < 1:
        raise ConfigError(f"{flag} must be at least 1 year, got {years}")
    if years > MAX_YEARS:
        raise ConfigError(
            f"{flag} {years} is more than Go's time.Duration holds",
            f"at most {MAX_YEARS} years (2562047h); kubeadm's constant would overflow int64",
        )
    return years


def parse_platforms(value: object) -> tuple[str, ...]:
    """Comma- or space-separated GOOS/GOARCH list, each one known, without duplicates."""
    items = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
    platforms: list[str] = []
    for item in items:
        platform = str(item).strip()
        if platform not in KNOWN_PLATFORMS:
            close = difflib.get_close_matches(platform, sorted(KNOWN_PLATFORMS), n=1)
            hint = (
                f"did you mean {close[0]}?"
                if close
                else "known: " + ", ".join(sorted(KNOWN_PLATFORMS))
            )
            raise ConfigError(f"unknown platform {platform!r}", hint)
        if platform not in platforms:
            platforms.append(platform)
    if not platforms:
        raise ConfigError("--platforms is empty", "give at least one, e.g. linux/amd64")
    return tuple(platforms)


def _parse_bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"setting {name} must be true or false, got {value!r}")


def _parse_dir(value: object, name: str) -> Path | None:
    text = str(value or "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ConfigError(f"--{name.replace('_', '-')} {text!r} is not a directory")
    return path


def _parse_go_version(value: object) -> str:
    text = str(value).strip().removeprefix("go")
    parts = text.split(".")
    if text == "auto" or (2 <= len(parts) <= 3 and all(p.isdigit() for p in parts)):
        return text
    raise ConfigError(f"--go-version must be 'auto' or a Go version such as 1.24.11, got {value!r}")


def _parse_image(value: object) -> str:
    text = str(value).strip()
    if not text or any(c.isspace() for c in text):
        raise ConfigError(f"--image must be an image reference, got {value!r}")
    try:
        text.format(go_version="1.0")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"--image {text!r} has an unknown placeholder", "only {go_version} is known"
        ) from exc
    return text


def is_local_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1 (with or without a port): plain HTTP stays on the host."""
    name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.split(":", 1)[0]
    return name in ("localhost", "::1") or name.startswith("127.")


def parse_download_url(value: object, name: str = "go_download_url") -> str:
    """An https URL (plain http only to loopback), ending in "/" so file names append."""
    text = str(value or "").strip()
    parsed = urlparse(text)
    flag = f"--{name.replace('_', '-')}"
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.username:
        raise ConfigError(
            f"{flag} must be an http(s) URL without credentials, got {value!r}",
            "e.g. https://go.dev/dl/ or your mirror of it",
        )
    if parsed.scheme == "http" and not is_local_host(parsed.netloc):
        raise ConfigError(
            f"{flag} {text!r} is plain HTTP to another host",
            "use https: the checksums that protect the download come from the same site",
        )
    if parsed.query or parsed.fragment:
        raise ConfigError(f"{flag} must not carry a query or fragment, got {value!r}")
    return text if text.endswith("/") else text + "/"


def _parse_http_url(value: object, name: str) -> str:
    text = str(value or "").strip().rstrip("/")
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"--{name.replace('_', '-')} must be an http(s) URL, got {value!r}",
            "e.g. https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise",
        )
    return text


def load(
    flags: Mapping[str, object | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge defaults, ``LONGCERT_*`` environment and flags (None = not given) into Settings."""
    schema = _schema()
    known = list(schema)
    raw: dict[str, object] = dict(schema)
    sources = dict.fromkeys(schema, "default")

    env = os.environ if environ is None else environ
    for env_key, env_value in env.items():
        if not env_key.startswith(ENV_PREFIX):
            continue
        key = env_key[len(ENV_PREFIX) :].lower()
        if key not in schema:
            raise _unknown_key_error(key, f"environment variable {env_key}", known)
        raw[key] = env_value
        sources[key] = f"env {env_key}"

    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key not in schema:
            raise _unknown_key_error(key, "a task flag", known)
        raw[key] = value
        sources[key] = f"flag --{key.replace('_', '-')}"

    years = parse_years(raw["years"], "years")
    if str(raw["ca_years"]).strip().lower() in {"auto", "none", ""}:
        ca_years = max(UPSTREAM_CA_YEARS, years)
        sources["ca_years"] = f"auto (max of upstream {UPSTREAM_CA_YEARS} and --years)"
    else:
        ca_years = parse_years(raw["ca_years"], "ca_years")
    if years > ca_years:
        raise ConfigError(
            f"--years {years} is longer than --ca-years {ca_years}",
            "a leaf certificate cannot outlive the CA that signed it; raise --ca-years",
        )

    repo = str(raw["repo"]).strip()
    if not repo:
        raise ConfigError("--repo is empty", "give a git URL or a local path")

    return Settings(
        repo=repo,
        cache_dir=Path(str(raw["cache_dir"])).expanduser(),
        builds_dir=Path(str(raw["builds_dir"])).expanduser(),
        years=years,
        ca_years=ca_years,
        platforms=parse_platforms(raw["platforms"]),
        go_version=_parse_go_version(raw["go_version"]),
        image=_parse_image(raw["image"]),
        go_download_url=parse_download_url(raw["go_download_url"]),
        registry_mirror=str(raw["registry_mirror"] or "").strip().rstrip("/"),
        build_cache_volume=str(raw["build_cache_volume"]),
        module_cache_volume=str(raw["module_cache_volume"]),
        patches_dir=_parse_dir(raw["patches_dir"], "patches_dir"),
        pin_validity=_parse_bool(raw["pin_validity"], "pin_validity"),
        force=_parse_bool(raw["force"], "force"),
        keep_worktree=_parse_bool(raw["keep_worktree"], "keep_worktree"),
        publish=str(raw["publish"] or "").strip(),
        github_api_url=_parse_http_url(raw["github_api_url"], "github_api_url"),
        oci_insecure=_parse_bool(raw["oci_insecure"], "oci_insecure"),
        sources=sources,
    )
