"""Settings: config/defaults.yaml <- the user's settings file <- the project's longcert.yaml
<- LONGCERT_* environment <- task flags.

Every value remembers where it came from, so the preamble can show it. Unknown keys are rejected
with a hint, and every value is validated here, before anything is cloned or built.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import ParseResult, unquote, urlparse

import yaml

from longcert.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
# A checkout keeps config/ and patches/ at its top level; a wheel or sdist install carries the
# same files inside the package (longcert/data/, mapped there by pyproject.toml). PROJECT_ROOT
# is the checkout, None when longcert runs from an installed wheel.
PROJECT_ROOT: Path | None = (
    PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "config" / "defaults.yaml").is_file() else None
)
DATA_ROOT = PROJECT_ROOT or PACKAGE_DIR / "data"
CONFIG_DIR = DATA_ROOT / "config"
BUNDLED_PATCHES_DIR = DATA_ROOT / "patches"
DEFAULTS_FILE = CONFIG_DIR / "defaults.yaml"
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
    run_image: str
    go_download_url: str
    registry_mirror: str
    build_cache_volume: str
    module_cache_volume: str
    patches_dir: Path | None
    pin_validity: bool
    force: bool
    keep_worktree: bool
    no_cache: bool
    publish: str
    github_api_url: str
    oci_insecure: bool
    sign_key: str
    publish_retries: int
    publish_retry_seconds: int
    container_memory: str
    container_pids: int
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # (user, password) split off an https --repo: handed to git for the fetch only.
    repo_credentials: tuple[str, str] | None = field(default=None, repr=False, compare=False)

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
    fields = [f.name for f in dataclasses.fields(Settings) if f.name not in _NOT_SETTINGS]
    for key in data:
        if key not in fields:
            raise _unknown_key_error(str(key), str(DEFAULTS_FILE), fields)
    missing = [name for name in fields if name not in data]
    if missing:
        raise ConfigError(f"{DEFAULTS_FILE} lacks the setting(s) {', '.join(missing)}")
    return data


_NOT_SETTINGS = ("sources", "repo_credentials")


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
        # ASCII digits only: str.isdigit() also takes '²' (which int() refuses) and '٣'.
        if not re.fullmatch(r"-?[0-9]{1,6}", text):
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
    if "\0" in text:
        raise ConfigError(f"--{name.replace('_', '-')} holds a NUL byte")
    path = Path(text).expanduser().absolute()
    if not path.is_dir():
        raise ConfigError(f"--{name.replace('_', '-')} {text!r} is not a directory")
    return path


def _parse_go_version(value: object) -> str:
    text = str(value).strip().removeprefix("go")
    parts = text.split(".")
    # ASCII digits only: str.isdigit() also takes full-width and other scripts' digits
    if text == "auto" or (2 <= len(parts) <= 3 and all(re.fullmatch(r"[0-9]+", p)
                                                       for p in parts)):
        return text
    raise ConfigError(f"--go-version must be 'auto' or a Go version such as 1.24.11, got {value!r}")


def _parse_image(value: object, name: str = "image") -> str:
    flag = "--" + name.replace("_", "-")
    text = str(value).strip()
    if not text or any(c.isspace() for c in text) or text.startswith("-"):
        raise ConfigError(f"{flag} must be an image reference, got {value!r}")
    if name == "image":
        try:
            text.format(go_version="1.0")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{flag} {text!r} has an unknown placeholder", "only {go_version} is known"
            ) from exc
    if "@" in text and not re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", text):
        raise ConfigError(
            f"{flag} {text!r} has a malformed digest",
            "a digest is @sha256: and 64 lower-case hex digits",
        )
    return text


def is_local_host(host: str) -> bool:
    """Whether ``host`` is this machine's loopback, so plain HTTP to it stays on the host.

    ``host`` is a name or address as in a URL's authority: with or without a port, IPv6 in
    brackets (or bare), user info ignored. Loopback means the name ``localhost`` or a literal IP
    address that :mod:`ipaddress` calls loopback (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). Other
    names are not resolved: the decision must not hang on a DNS answer that can change before the
    connection is made, so ``127.registry.example.com`` is a remote host like any other.
    """
    import ipaddress  # here, not at the top: this function is edited on its own

    text = host.strip()
    try:
        name = ipaddress.ip_address(text).compressed  # a bare IPv6 address such as ::1
    except ValueError:
        try:
            name = urlparse("//" + text).hostname or ""
        except ValueError:
            return False
    if name.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def parse_download_url(value: object, name: str = "go_download_url") -> str:
    """An https URL (plain http only to loopback), ending in "/" so file names append."""
    text = str(value or "").strip()
    flag = f"--{name.replace('_', '-')}"
    parsed = _urlparse(text, flag)
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


def _urlparse(text: str, flag: str) -> ParseResult:
    """urlparse, with what it refuses (a malformed IPv6 host, a port that is not a number) as
    a ConfigError naming the flag; the URL itself is not echoed (it may carry a secret)."""
    try:
        parsed = urlparse(text)
        _ = parsed.port, parsed.username, parsed.password  # these parse lazily
    except ValueError as exc:
        raise ConfigError(f"{flag} is not a valid URL: {exc}") from None
    return parsed


def _parse_key_path(value: object) -> str:
    """--sign-key: empty (publish unsigned) or the path of a key file; the file itself is read
    only when publishing (longcert.publish.signing.load_signer)."""
    text = str(value or "").strip()
    if "\0" in text or "\n" in text:
        raise ConfigError("sign_key must be the path of a PEM private key file")
    return str(Path(text).expanduser().absolute()) if text else ""


def _parse_http_url(value: object, name: str) -> str:
    text = str(value or "").strip().rstrip("/")
    parsed = _urlparse(text, f"--{name.replace('_', '-')}")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"--{name.replace('_', '-')} must be an http(s) URL, got {value!r}",
            "e.g. https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise",
        )
    return text


PROJECT_FILE = "longcert.yaml"
# Settings whose value is a path: relative ones in a settings file are taken from the file's
# directory, not from wherever longcert happens to run.
_PATH_SETTINGS = ("cache_dir", "builds_dir", "patches_dir")


def settings_files(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> list[tuple[str, Path]]:
    """(layer, path) of the settings files longcert reads, lowest first: the user's
    ($XDG_CONFIG_HOME/longcert/config.yaml, else ~/.config/longcert/config.yaml), then the
    project's (longcert.yaml in the working directory). Absent ones are skipped when read."""
    env = os.environ if environ is None else environ
    config_home = env.get("XDG_CONFIG_HOME", "").strip()
    if config_home and Path(config_home).is_absolute():
        user = Path(config_home) / "longcert" / "config.yaml"
    else:
        user = Path(env.get("HOME") or Path.home()) / ".config" / "longcert" / "config.yaml"
    return [("user", user), ("project", (cwd or Path.cwd()) / PROJECT_FILE)]


def _read_settings_file(path: Path, known: list[str]) -> dict[str, object]:
    """One settings file: a mapping of setting: value ({} when the file does not exist)."""
    if not os.path.lexists(path):
        return {}
    from longcert import userfiles

    text = userfiles.read_text(path, limit=userfiles.MAX_SETTINGS_BYTES, what="settings file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of setting: value",
                          "e.g. `years: 10` on a line; `longcert config` shows every setting")
    values: dict[str, object] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise _unknown_key_error(str(key), str(path), known)
        if name in _PATH_SETTINGS and isinstance(value, str) and value.strip():
            expanded = Path(value.strip()).expanduser()
            value = str(expanded if expanded.is_absolute() else path.parent / expanded)
        values[name] = value
    return values


def load(
    flags: Mapping[str, object | None] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge defaults, the user's and the project's settings files, ``LONGCERT_*``
    environment and flags (None = not given) into Settings, each over the one before."""
    schema = _schema()
    known = list(schema)
    raw: dict[str, object] = dict(schema)
    sources = dict.fromkeys(schema, "default")

    for layer, path in settings_files(environ, cwd):
        for key, value in _read_settings_file(path, known).items():
            raw[key] = value
            sources[key] = f"{layer} {path}"

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

    def checked(key: str, parse: Callable[[object], Any]) -> Any:
        """``parse(raw[key])``; a bad value's ConfigError also says where it came from."""
        value = raw[key]
        if value is None:
            value_error = ConfigError(f"setting {key} has no value (null)")
            raise _from(value_error, sources[key])
        try:
            return parse(value)
        except ConfigError as exc:
            raise _from(exc, sources[key]) from None

    years = checked("years", lambda v: parse_years(v, "years"))
    if str(raw["ca_years"]).strip().lower() in {"auto", ""}:
        ca_years = max(UPSTREAM_CA_YEARS, years)
        sources["ca_years"] = f"auto (max of upstream {UPSTREAM_CA_YEARS} and --years)"
    else:
        ca_years = checked("ca_years", lambda v: parse_years(v, "ca_years"))
    if years > ca_years:
        raise ConfigError(
            f"--years {years} is longer than --ca-years {ca_years}",
            "a leaf certificate cannot outlive the CA that signed it; raise --ca-years",
        )
    repo, credentials = checked("repo", parse_repo)

    return Settings(
        repo=repo,
        cache_dir=checked("cache_dir", lambda v: _parse_path(v, "cache_dir")),
        builds_dir=checked("builds_dir", lambda v: _parse_path(v, "builds_dir")),
        years=years,
        ca_years=ca_years,
        platforms=checked("platforms", parse_platforms),
        go_version=checked("go_version", _parse_go_version),
        image=checked("image", _parse_image),
        run_image=checked("run_image", lambda v: _parse_image(v, "run_image")),
        go_download_url=checked("go_download_url", parse_download_url),
        registry_mirror=checked("registry_mirror", _parse_registry_mirror),
        build_cache_volume=checked(
            "build_cache_volume", lambda v: _parse_volume(v, "build_cache_volume")
        ),
        module_cache_volume=checked(
            "module_cache_volume", lambda v: _parse_volume(v, "module_cache_volume")
        ),
        patches_dir=checked("patches_dir", lambda v: _parse_dir(v, "patches_dir")),
        pin_validity=checked("pin_validity", lambda v: _parse_bool(v, "pin_validity")),
        force=checked("force", lambda v: _parse_bool(v, "force")),
        keep_worktree=checked("keep_worktree", lambda v: _parse_bool(v, "keep_worktree")),
        no_cache=checked("no_cache", lambda v: _parse_bool(v, "no_cache")),
        publish=checked("publish", lambda v: str(v).strip()),
        github_api_url=checked(
            "github_api_url", lambda v: _parse_http_url(v, "github_api_url")
        ),
        oci_insecure=checked("oci_insecure", lambda v: _parse_bool(v, "oci_insecure")),
        sign_key=checked("sign_key", _parse_key_path),
        publish_retries=checked(
            "publish_retries", lambda v: _parse_count(v, "publish_retries", 0, 20)
        ),
        publish_retry_seconds=checked(
            "publish_retry_seconds", lambda v: _parse_count(v, "publish_retry_seconds", 0, 3600)
        ),
        container_memory=checked("container_memory", _parse_memory),
        container_pids=checked("container_pids", _parse_pids),
        sources=sources,
        repo_credentials=credentials,
    )


def _from(exc: ConfigError, source: str) -> ConfigError:
    """The same error, saying which flag, variable or file the value came from."""
    where = "config/defaults.yaml" if source == "default" else source
    return ConfigError(f"{exc.message} (from {where})", exc.hint)


def _parse_path(value: object, name: str) -> Path:
    text = str(value).strip()
    if not text:
        raise ConfigError(
            f"--{name.replace('_', '-')} is empty",
            "give a directory; an empty value would mean the current directory",
        )
    if "\0" in text:
        raise ConfigError(f"--{name.replace('_', '-')} holds a NUL byte")
    # absolute here, once: git and Docker run from other directories, and a relative
    # "-xcache" must never reach a command line as an option
    return Path(text).expanduser().absolute()


_VOLUME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _parse_volume(value: object, name: str) -> str:
    text = str(value).strip()
    if not _VOLUME.fullmatch(text):
        raise ConfigError(
            f"--{name.replace('_', '-')} must be a Docker volume name, got {value!r}",
            "letters, digits, '_', '.', '-', starting with a letter or digit",
        )
    return text


_REGISTRY = re.compile(r"[A-Za-z0-9.-]+(?::\d{1,5})?(?:/[a-z0-9._/-]+)?")


def _parse_registry_mirror(value: object) -> str:
    text = str(value).strip().rstrip("/")
    if text and not _REGISTRY.fullmatch(text):
        raise ConfigError(
            f"--registry-mirror must be a registry host[:port][/path], got {value!r}",
            "e.g. mirror.example:5000 (no scheme, no credentials)",
        )
    return text


def _parse_memory(value: object) -> str:
    text = str(value).strip().lower()
    if not re.fullmatch(r"[0-9]+[kmg]?", text) or int(re.sub(r"\D", "", text) or 0) == 0:
        raise ConfigError(
            f"--container-memory must be a size such as 8g or 4096m, got {value!r}",
        )
    return text


def _parse_count(value: object, name: str, least: int, most: int) -> int:
    """A whole number from ``least`` to ``most`` (ASCII digits; not a bool)."""
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,6}", text):
        raise ConfigError(f"setting {name} must be a whole number, got {value!r}")
    if not least <= int(text) <= most:
        raise ConfigError(f"setting {name} must be {least} to {most}, got {int(text)}")
    return int(text)


def _parse_pids(value: object) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{2,7}", text) or int(text) < 64:
        raise ConfigError(f"--container-pids must be a whole number of at least 64, got {value!r}")
    return int(text)


# Transports a Kubernetes remote may use. ext:: and other remote helpers run commands, and
# option-like values reach git as options; neither is ever a repository.
REMOTE_SCHEMES = ("https", "ssh", "git", "file", "http")


def parse_repo(value: object) -> tuple[str, tuple[str, str] | None]:
    """``--repo`` -> (the remote as shown and stored, (user, password) or None).

    Credentials in an https URL are split off: they are handed to git only for the fetch
    (through GIT_ASKPASS), never printed, kept in the mirror's config or written anywhere."""
    text = str(value).strip()
    if not text:
        raise ConfigError("--repo is empty", "give a git URL or a local path")
    if text.startswith("-") or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(
            f"--repo {text[:40]!r}... is not a repository",
            "a value starting with '-' or holding control characters would reach git as an "
            "option",
        )
    if "::" in text.split("/", 1)[0]:
        raise ConfigError(
            "--repo uses a git remote helper (transport::address), which is not allowed",
            f"use one of {', '.join(REMOTE_SCHEMES)}, user@host:path, or a local path",
        )
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if not match:
        head = text.split("/", 1)[0]
        if ":" not in head:
            # a local path: resolved once, so two relative spellings of one repository are
            # one remote (one Go cache trust domain) and another directory's is another
            return str(Path(text).expanduser().resolve()), None
        user = head.split("@", 1)[0] if "@" in head else ""
        if ":" in user:
            # user:password@host:path. scp-like remotes go over ssh, which takes no
            # password from the URL: git would show and store it
            raise ConfigError(
                "--repo is an scp-like remote with a password in it (user:password@host:path); "
                "the password is not shown",
                "ssh takes no password from a URL: use an ssh key, or "
                "https://USER:TOKEN@HOST/PATH (its credentials are kept out of logs)",
            )
        return text, None  # scp-like user@host:path
    parsed = _urlparse(text, "--repo")
    if parsed.scheme not in REMOTE_SCHEMES:
        raise ConfigError(
            f"--repo scheme {parsed.scheme!r} is not allowed",
            f"use one of {', '.join(REMOTE_SCHEMES)}, user@host:path, or a local path",
        )
    if parsed.scheme == "http" and not is_local_host(parsed.netloc.rsplit("@", 1)[-1]):
        raise ConfigError(
            "--repo over plain http is only allowed to this machine", "use https or ssh"
        )
    if parsed.password is None and parsed.username is None:
        return text, None
    host = parsed.netloc.rsplit("@", 1)[1]
    clean = parsed._replace(netloc=host).geturl()
    if parsed.scheme not in ("https", "http"):
        if parsed.password is not None:
            raise ConfigError(
                f"--repo is a {parsed.scheme}:// URL with a password in it; the password is "
                "not shown",
                f"{parsed.scheme} takes no password from a URL: use an ssh key (keep the user: "
                f"{parsed.scheme}://USER@HOST/PATH)",
            )
        # ssh://user@host/...: the user names an account, it is not a secret
        return text, None
    return clean, (unquote(parsed.username or ""), unquote(parsed.password or ""))
