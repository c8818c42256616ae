"""Publish a verified build: to a directory, a GitHub release, or an OCI registry.

Every target has one small interface (:class:`Target`): ``has`` says whether the target already
holds a build, ``plan`` lists what publishing would do (it reads the target, never writes it), and
``push`` does it, or with ``dry_run`` only says what it would do. Publishing is idempotent: a
file already there with the same sha256 is skipped, a different one of the same name is refused
(never overwritten), and what marks a build as complete (the directory rename, the
``manifest.json`` asset, the image tag) is written last, so an interrupted publish is finished by
running it again.

Only a build whose verification passed is published: :func:`load_build` checks ``manifest.json``,
``verify.json`` and every binary's sha256 before any target is touched. HTTP goes through
``urllib.request``; a token is sent only as a header that is not forwarded on redirects, and is
never part of a message.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import ssl
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from longcert import __version__, package
from longcert.build import Artifact, sha256_file
from longcert.errors import ConfigError, PublishError
from longcert.settings import KNOWN_PLATFORMS, MAX_YEARS, is_local_host
from longcert.verify import binary_platform
from longcert.versions import KubeVersion

if TYPE_CHECKING:
    from longcert.progress import Reporter
    from longcert.settings import Settings

ProgressFn = Callable[[str], None]

# Published beside the binaries, in this order: manifest.json last, because its presence is what
# `has` takes as "this build is completely published".
METADATA_FILES = ("SHA256SUMS", "patch.diff", "manifest.json")
TOKEN_ENV = "GITHUB_TOKEN"
OCI_USER_ENV = "OCI_USERNAME"
OCI_PASSWORD_ENV = "OCI_PASSWORD"
HTTP_TIMEOUT = 120.0
TARGET_FORMS = "a directory (PATH or dir:PATH), github:OWNER/REPO or oci://HOST[:PORT]/REPOSITORY"


def _quiet(_: str) -> None:
    return None


# --------------------------------------------------------------------------- the build to publish


@dataclass(frozen=True)
class BuildRef:
    """What names a build on every target, known before it is built."""

    build_id: str  # kubeadm-v1.28.7-leaf10y-ca10y: directory name and GitHub release tag
    tag: str
    leaf_years: int
    ca_years: int

    @classmethod
    def of(
        cls,
        tag: str,
        leaf_years: int,
        ca_years: int,
        *,
        pinned: bool = False,
        platforms: tuple[str, ...] = package.DEFAULT_PLATFORMS,
    ) -> BuildRef:
        name = package.build_id(tag, leaf_years, ca_years, pinned=pinned, platforms=platforms)
        return cls(name, tag, leaf_years, ca_years)

    @property
    def image_tag(self) -> str:
        """OCI tag: v1.28.7-leaf10y-ca10y (the repository already says kubeadm), with the same
        -pinned / platforms suffix as the build id."""
        return self.build_id.removeprefix("kubeadm-")


@dataclass(frozen=True)
class BuildFile:
    """One file that gets published; ``platform`` is set for binaries."""

    name: str
    path: Path
    size: int
    sha256: str
    platform: str = ""


@dataclass(frozen=True)
class Build(BuildRef):
    """A verified build directory, loaded and checked by :func:`load_build`."""

    path: Path
    manifest: Mapping[str, Any] = field(compare=False, hash=False)
    files: tuple[BuildFile, ...]  # binaries first, then METADATA_FILES in order

    @property
    def binaries(self) -> tuple[BuildFile, ...]:
        return tuple(f for f in self.files if f.platform)


def _read_json(path: Path, what: str) -> Any:
    _check_regular(path.parent, path.name)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PublishError(
            f"{path.parent} has no {path.name}",
            "give a directory written by `invoke build` (builds/<id>)",
        ) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise PublishError(f"cannot read {what} {path}: {exc}", "rebuild it") from exc


# What a build writes, and so all that publish accepts: a manifest field that is not one of these
# is refused before any target is touched, since every one of them ends up in a file name, a URL,
# an image or the release notes.
BINARY_HEAD = 4096  # bytes read to tell an executable's format and platform
VERIFIED_STATUSES = ("verified", "not-executed")  # longcert.verify.VerifyReport.status
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 object name
_CREATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
# One line of text (no control characters or line separators) that cannot break a Markdown table.
_TEXT = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029|`]{0,200}")
_REBUILD = "it was not written by this longcert, or was changed since; rebuild it"


class _Fields:
    """Typed reads of one JSON document; anything else is a PublishError naming the field."""

    def __init__(self, build_dir: Path, document: str) -> None:
        self.build_dir = build_dir
        self.document = document

    def bad(self, name: str, what: str) -> PublishError:
        where = f"{self.document} {name}" if name else self.document
        return PublishError(f"{self.build_dir}: {where} {what}", _REBUILD)

    def get(self, data: Any, name: str) -> Any:
        key = name.rsplit(".", 1)[-1]
        if not isinstance(data, dict) or key not in data:
            raise self.bad(name, "is missing")
        return data[key]

    def obj(self, data: Any, name: str) -> dict[str, Any]:
        value = self.get(data, name)
        if not isinstance(value, dict):
            raise self.bad(name, f"is {_shown(value)}, not an object")
        return value

    def text(self, data: Any, name: str, pattern: re.Pattern[str] = _TEXT) -> str:
        value = self.get(data, name)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.bad(name, f"is {_shown(value)}, not what longcert writes there")
        return value

    def integer(self, data: Any, name: str, low: int, high: int) -> int:
        value = self.get(data, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.bad(name, f"is {_shown(value)}, not a whole number {low} to {high}")
        return value


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_regular(build_dir: Path, name: str) -> None:
    """A published file is a regular file in the build directory, never a link out of it."""
    try:
        mode = os.lstat(build_dir / name).st_mode
    except FileNotFoundError:
        return  # the caller says what is missing
    except OSError as exc:
        raise PublishError(f"{build_dir}: cannot read {name}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
        raise PublishError(
            f"{build_dir}: {name} is {kind}; a build holds only the files it wrote", "rebuild it"
        )


def load_build(path: Path) -> Build:
    """Load ``builds/<id>/`` and refuse anything not verified or changed since it was written.

    Every manifest field publish uses is checked against what `invoke build` writes (file names,
    release tag, validities, build id, sums, text for the notes), each binary's sha256 and its
    executable header against the platform it is listed for, and verify.json must hold a passing
    report of this tag and validities for every platform published.
    """
    path = Path(path)
    if not path.is_dir():
        raise PublishError(
            f"{path} is not a build directory", "give builds/<id> as written by `invoke build`"
        )
    data = _read_json(path / "manifest.json", "manifest")
    m = _Fields(path, "manifest.json")
    if not isinstance(data, dict):
        raise m.bad("", f"is {_shown(data)}, not an object")
    kube = m.obj(data, "kubernetes")
    tag = m.text(kube, "kubernetes.tag")
    try:
        release_tag = KubeVersion.parse(tag).tag
    except ConfigError:
        release_tag = ""
    if tag != release_tag:
        raise m.bad("kubernetes.tag", f"{_shown(tag)} is not a Kubernetes release tag")
    m.text(kube, "kubernetes.commit", _COMMIT)
    validity = m.obj(data, "validity")
    leaf_years = m.integer(validity, "validity.leaf_years", 1, MAX_YEARS)
    ca_years = m.integer(validity, "validity.ca_years", leaf_years, MAX_YEARS)
    for name, years in (("leaf_hours", leaf_years), ("ca_hours", ca_years)):
        hours = years * 365 * 24
        m.integer(validity, f"validity.{name}", hours, hours)
    artifacts = _artifacts(m, data)
    # A --pin-validity build says so in config_override; the platforms are the binaries'.
    pinned = str(data.get("config_override", "")).startswith("ignored")
    platforms = tuple(platform for platform, _, _, _ in artifacts)
    ref = BuildRef.of(tag, leaf_years, ca_years, pinned=pinned, platforms=platforms)
    if path.resolve().name != ref.build_id:
        raise PublishError(
            f"{path}: the directory's name is not the build id {ref.build_id} its manifest.json "
            "gives (kubernetes.tag, validity, config_override, artifacts)",
            "publish the directory `invoke build` wrote, builds/<build id>, under its own name",
        )
    m.text(data, "created", _CREATED)
    m.text(m.obj(data, "tool"), "tool.version")
    go = m.obj(data, "go")
    m.text(go, "go.version")
    m.text(go, "go.source")
    patch = m.obj(data, "patch")
    m.text(patch, "patch.set")
    diff_sha256 = m.text(patch, "patch.diff_sha256", _SHA256)
    _check_verified(path, m, data, ref, [platform for platform, _, _, _ in artifacts])
    sums = _read_sums(path)
    if set(sums) != {name for _, name, _, _ in artifacts}:
        raise PublishError(
            f"{path}: SHA256SUMS and manifest.json list different files", "rebuild it"
        )
    files = []
    for platform, name, want, size in artifacts:
        binary = path / name
        _check_regular(path, name)
        if not binary.is_file():
            raise PublishError(f"{path}: {name} is missing", "rebuild it")
        have = sha256_file(binary)
        if have != want or sums[name] != want:
            raise PublishError(
                f"{path}: {name} changed after verification (sha256 {have[:16]}, "
                f"manifest.json says {want[:16]}, SHA256SUMS {sums[name][:16]})",
                "rebuild it",
            )
        real_size = binary.stat().st_size
        if real_size != size:
            raise m.bad(f"size of {name}", f"is {size}, the file has {real_size} bytes")
        with open(binary, "rb") as handle:
            found, header = binary_platform(handle.read(BINARY_HEAD))
        if found != platform:
            raise PublishError(
                f"{path}: {name} is not a {platform} executable ({header})",
                "only the binary the build made for that platform is published; rebuild it",
            )
        files.append(BuildFile(name, binary, real_size, have, platform))
    for name in METADATA_FILES:
        meta = path / name
        _check_regular(path, name)
        if not meta.is_file():
            raise PublishError(f"{path}: {name} is missing", "rebuild it")
        files.append(BuildFile(name, meta, meta.stat().st_size, sha256_file(meta)))
    diff = next(f.sha256 for f in files if f.name == "patch.diff")
    if diff != diff_sha256:
        raise PublishError(
            f"{path}: patch.diff changed after the build (sha256 {diff[:16]}, "
            f"manifest.json patch.diff_sha256 says {diff_sha256[:16]})",
            "rebuild it",
        )
    return Build(
        ref.build_id, tag, leaf_years, ca_years, path=path, manifest=data, files=tuple(files)
    )


def existing_build(builds_dir: Path, name: str, inputs: Mapping[str, Any]) -> Build | None:
    """The build already at builds_dir/name when it is this very build: its manifest records
    the same ``inputs``, and it passes every check :func:`load_build` makes (each binary's
    sha256 against manifest.json and SHA256SUMS, verification, headers). None when there is
    none; PublishError when a different or damaged build has the name."""
    target = builds_dir / name
    if not target.exists():
        return None
    hint = "pass --force to replace it once the new build passes, or use another --builds-dir"
    try:
        build = load_build(target)
    except PublishError as err:
        raise PublishError(
            f"a build already exists and cannot be reused: {err.message}", hint
        ) from err
    recorded = build.manifest.get("inputs")
    if recorded != inputs:
        differs = (
            ", ".join(
                f"{key} {recorded.get(key)!r} (asked {value!r})"
                for key, value in inputs.items()
                if recorded.get(key) != value
            )
            if isinstance(recorded, Mapping)
            else "inputs not recorded (an older build)"
        )
        raise PublishError(f"{target} already exists and is a different build: {differs}", hint)
    return build


def _artifacts(m: _Fields, data: Mapping[str, Any]) -> list[tuple[str, str, str, int]]:
    """(platform, file, sha256, size) of every binary; file names are the build's own."""
    listed = m.get(data, "artifacts")
    if not isinstance(listed, list) or not listed:
        raise m.bad("artifacts", f"is {_shown(listed)}, not a list of the binaries")
    out: list[tuple[str, str, str, int]] = []
    for number, item in enumerate(listed):
        field_name = f"artifacts[{number}]"
        platform = m.text(item, f"{field_name}.platform")
        if platform not in KNOWN_PLATFORMS:
            raise m.bad(f"{field_name}.platform", f"{_shown(platform)} is not a known platform")
        if any(platform == seen for seen, _, _, _ in out):
            raise m.bad(f"{field_name}.platform", f"lists {platform} a second time")
        name = Artifact(platform, Path(), 0, "").file_name
        if m.get(item, f"{field_name}.file") != name:
            raise m.bad(
                f"{field_name}.file",
                f"is {_shown(item['file'])}, not {name} (the name a build gives {platform})",
            )
        digest = m.text(item, f"{field_name}.sha256", _SHA256)
        size = m.integer(item, f"{field_name}.size", 1, 2**40)
        out.append((platform, name, digest, size))
    return out


def _check_verified(
    path: Path, m: _Fields, data: Mapping[str, Any], ref: BuildRef, platforms: list[str]
) -> None:
    """manifest.json and verify.json both say every published platform passed, for this build."""
    verification = m.obj(data, "verification")
    checked = m.obj(verification, "verification.platforms")
    report = _read_json(path / "verify.json", "verification report")
    v = _Fields(path, "verify.json")
    reports = v.get(report, "platforms")
    if not isinstance(reports, list):
        raise v.bad("platforms", f"is {_shown(reports)}, not a list of reports")
    passed = verification.get("passed") is True and report.get("passed") is True
    if not passed:
        raise PublishError(
            f"{path}: verification did not pass; only a verified build can be published",
            "rebuild it with `invoke build`, which verifies before it packages",
        )
    for key, entry in checked.items():
        if key not in KNOWN_PLATFORMS:
            raise m.bad("verification.platforms", f"names {_shown(key)}, not a known platform")
        m.text(entry, f"verification.platforms.{key}.status")
        m.integer(entry, f"verification.platforms.{key}.certificates_checked", 0, 10**6)
    for platform in platforms:
        status = checked.get(platform, {}).get("status", "missing")
        found = [r for r in reports if isinstance(r, dict) and r.get("platform") == platform]
        if status not in VERIFIED_STATUSES or len(found) != 1:
            raise PublishError(
                f"{path}: {platform} was not verified (manifest.json says {status}, "
                f"verify.json has {len(found)} report(s) for it)",
                "only a verified build can be published; rebuild it with `invoke build`",
            )
        this = found[0]
        wanted = {
            "passed": True,
            "tag": ref.tag,
            "leaf_years": ref.leaf_years,
            "ca_years": ref.ca_years,
        }
        wrong = [
            k
            for k, value in wanted.items()
            if this.get(k) != value or type(this.get(k)) is not type(value)
        ]
        if wrong:
            raise v.bad(
                f"report for {platform}",
                f"does not show this build passing ({', '.join(wrong)} differ); "
                "only a verified build can be published",
            )


def _read_sums(build_dir: Path) -> dict[str, str]:
    """SHA256SUMS as `sha256sum` writes it: one ``<sha256>  <name>`` line per binary."""
    path = build_dir / "SHA256SUMS"
    _check_regular(build_dir, path.name)
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError) as exc:
        raise PublishError(f"cannot read {path}: {exc}", "rebuild it") from exc
    sums: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](\S+)", line)
        if not line.strip():
            continue
        if not match or match.group(2) in sums:
            raise PublishError(
                f"{build_dir}: SHA256SUMS line {number} is not `<sha256>  <file>` for a new file",
                "rebuild it",
            )
        sums[match.group(2)] = match.group(1)
    return sums


# --------------------------------------------------------------------------- plans and results


@dataclass(frozen=True)
class Action:
    """One step of publishing: ``verb`` is create, upload, replace, copy or skip."""

    verb: str
    name: str
    where: str
    size: int = 0
    reason: str = ""

    def describe(self, dry_run: bool = False) -> str:
        size = f" ({_size(self.size)})" if self.size else ""
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


class Target(Protocol):
    """A place a verified build can be published to."""

    @property
    def name(self) -> str: ...

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


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} B"


def _result(target: str, location: str, actions: list[Action], dry_run: bool) -> PublishResult:
    return PublishResult(target, location, tuple(actions), dry_run)


# --------------------------------------------------------------------------- directory


@dataclass(frozen=True)
class DirectoryTarget:
    """``root/<build-id>/``: a local directory or a mounted share."""

    root: Path

    @property
    def name(self) -> str:
        return f"dir:{self.root}"

    def has(self, build: BuildRef) -> bool:
        return (self.root / build.build_id / "manifest.json").is_file()

    def plan(self, build: Build) -> list[Action]:
        dest = self.root / build.build_id
        actions = []
        for item in build.files:
            existing = dest / item.name
            if not existing.exists():
                actions.append(Action("copy", item.name, str(dest), item.size))
                continue
            have = sha256_file(existing) if existing.is_file() else "not a file"
            if have != item.sha256:
                raise PublishError(
                    f"{existing} already exists and differs from this build's {item.name} "
                    f"(sha256 {have[:16]}, this build {item.sha256[:16]})",
                    "a published file is never overwritten: remove it by hand, or publish "
                    "to another directory",
                )
            actions.append(
                Action("skip", item.name, str(dest), item.size, "already there, same sha256")
            )
        return actions

    def push(
        self, build: Build, dry_run: bool = False, progress: ProgressFn | None = None
    ) -> PublishResult:
        say = progress or _quiet
        dest = self.root / build.build_id
        if not self.root.exists() and not self.root.parent.is_dir():
            raise PublishError(
                f"cannot publish to {self.root}: {self.root.parent} does not exist",
                "create it, or mount the share first",
            )
        actions = self.plan(build)
        for action in actions:
            say(action.describe(dry_run))
        if dry_run or all(a.verb == "skip" for a in actions):
            return _result(self.name, str(dest), actions, dry_run)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                # A directory someone completed partly by hand: add what is missing, one file
                # at a time, each written aside and renamed; manifest.json comes last.
                for item in build.files:
                    if not (dest / item.name).exists():
                        _copy_atomic(item, dest)
            else:
                staging = Path(tempfile.mkdtemp(prefix=f".{build.build_id}.", dir=self.root))
                try:
                    for item in build.files:
                        _copy_checked(item, staging / item.name)
                    staging.chmod(0o755)
                    os.rename(staging, dest)  # atomic: readers see all of it or nothing
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
        except OSError as exc:
            raise PublishError(
                f"cannot write {dest}: {exc.strerror or exc}",
                "check that the directory is writable and has space",
            ) from exc
        return _result(self.name, str(dest), actions, dry_run)


def _copy_checked(item: BuildFile, dest: Path) -> None:
    shutil.copyfile(item.path, dest)
    dest.chmod(0o755 if item.platform else 0o644)
    with open(dest, "rb") as handle:
        os.fsync(handle.fileno())
    if sha256_file(dest) != item.sha256:
        raise PublishError(
            f"{dest} does not match {item.path} after copying",
            "the target storage lost data; check it and publish again",
        )


def _copy_atomic(item: BuildFile, dest_dir: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{item.name}.", dir=dest_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _copy_checked(item, tmp)
        os.replace(tmp, dest_dir / item.name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    url: str = ""  # where the answer came from, after any redirect

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def message(self) -> str:
        """The server's own explanation (GitHub's message, a registry's errors), one line."""
        data = self.json()
        if isinstance(data, dict):
            if data.get("message"):
                extra = [
                    str(e.get("code") or e.get("message"))
                    for e in data.get("errors") or []
                    if isinstance(e, dict)
                ]
                return str(data["message"]) + (f" ({', '.join(extra)})" if extra else "")
            errors = data.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                return str(errors[0].get("message") or errors[0].get("code"))
        text = self.body.decode("utf-8", "replace").strip().splitlines()
        return text[0][:200] if text else http.client.responses.get(self.status, "")


def credentials_allowed(url: str) -> bool:
    """Whether a credential may travel to ``url``: over HTTPS, or plain HTTP to this machine's
    loopback (:func:`longcert.settings.is_local_host`), never plain HTTP across a network."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and is_local_host(parts.netloc))


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: "the same server"."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _host_of(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc.rpartition("@")[2]


class Http:
    """Small urllib client: returns any HTTP status, raises PublishError when nothing answers.

    It speaks only http and https, and refuses to send ``secret_headers`` anywhere
    :func:`credentials_allowed` does not allow (plain HTTP off this machine)."""

    def __init__(self, what: str, secrets: tuple[str, ...] = (), timeout: float = HTTP_TIMEOUT):
        self.what = what
        self.secrets = tuple(s for s in secrets if s)
        self.timeout = timeout

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        secret_headers: Mapping[str, str] | None = None,
        body: bytes | Path | None = None,
        hint: str = "",
    ) -> Response:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise PublishError(
                self.redact(f"{self.what}: will not {method} {_strip_query(url)}: not http(s)"),
                "the server named an address longcert does not use",
            )
        if secret_headers and not credentials_allowed(url):
            raise PublishError(
                self.redact(
                    f"{self.what}: will not send credentials over plain HTTP to {_host_of(url)} "
                    f"({method} {_strip_query(url)})"
                ),
                "credentials go only over HTTPS, or plain HTTP to this machine's loopback",
            )
        with _body_stream(body) as (data, length):
            request = urllib.request.Request(url, data=data, method=method)
            for name, value in (headers or {}).items():
                request.add_header(name, value)
            for name, value in (secret_headers or {}).items():
                request.add_unredirected_header(name, value)  # not sent on to a redirect target
            if length is not None:
                request.add_header("Content-Length", str(length))
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    return Response(
                        reply.status, _lower(reply.headers), reply.read(), reply.geturl()
                    )
            except urllib.error.HTTPError as err:
                with err:
                    payload = err.read()
                return Response(err.code, _lower(err.headers), payload, str(err.filename or url))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise PublishError(
                    self.redact(f"{self.what}: {method} {url} failed: {_reason(exc)}"),
                    hint or "check the address and the network, then run the same command again",
                ) from None


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    if isinstance(inner, BaseException):
        exc = inner
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return f"the connection was closed mid-request ({type(exc).__name__})"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


@contextmanager
def _body_stream(
    body: bytes | Path | None,
) -> Iterator[tuple[bytes | IO[bytes] | None, int | None]]:
    if body is None:
        yield None, None
    elif isinstance(body, bytes):
        yield body, len(body)
    else:
        with open(body, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size


# --------------------------------------------------------------------------- GitHub Releases

GITHUB_JSON = "application/vnd.github+json"
CONTENT_TYPES = {
    "manifest.json": "application/json",
    "SHA256SUMS": "text/plain",
    "patch.diff": "text/x-diff",
}


def release_title(build: BuildRef) -> str:
    return f"kubeadm {build.tag}: leaf certificates {build.leaf_years}y, CAs {build.ca_years}y"


def release_notes(build: Build) -> str:
    """Markdown notes from manifest.json: version, validities, Go, patch, verification, sha256."""
    m = build.manifest
    kube, validity, go = m.get("kubernetes", {}), m.get("validity", {}), m.get("go", {})
    patch, verification = m.get("patch", {}), m.get("verification", {})
    tool = m.get("tool", {})
    platforms = verification.get("platforms", {}) if isinstance(verification, dict) else {}
    checked = ", ".join(
        f"{p} {v.get('status')} ({v.get('certificates_checked', 0)} certificates)"
        for p, v in platforms.items()
        if isinstance(v, dict)
    )
    lines = [
        f"kubeadm **{build.tag}** with the certificate validity changed, built and verified "
        f"by longcert {tool.get('version', '?')}.",
        "",
        "| | |",
        "|---|---|",
        f"| Kubernetes | {kube.get('tag', build.tag)} (commit `{kube.get('commit', '?')}`) |",
        f"| leaf certificates | {validity.get('leaf_years', build.leaf_years)} years "
        f"({validity.get('leaf_hours', '?')}h) |",
        f"| CAs | {validity.get('ca_years', build.ca_years)} years "
        f"({validity.get('ca_hours', '?')}h) |",
        f"| Go | {go.get('version', '?')} (from {go.get('source', '?')}) |",
        f"| patch set | {patch.get('set', '?')}, diff sha256 `{patch.get('diff_sha256', '?')}` |",
        f"| verification | {'passed' if verification.get('passed') else 'NOT passed'}"
        f"{': ' + checked if checked else ''} |",
        f"| built | {m.get('created', '?')} |",
        "",
        "| file | platform | size | sha256 |",
        "|---|---|---|---|",
    ]
    for item in build.files:
        if item.name == "manifest.json":
            continue  # its own sha256 cannot be in the notes it generates
        lines.append(
            f"| `{item.name}` | {item.platform or '-'} | {_size(item.size)} | `{item.sha256}` |"
        )
    lines += [
        "",
        "Check the downloads with `sha256sum -c SHA256SUMS`; `patch.diff` is the exact change "
        "to the Kubernetes source.",
    ]
    return "\n".join(lines) + "\n"


class GitHubTarget:
    """A GitHub (or GitHub Enterprise) release per build, tagged with the build id."""

    def __init__(self, owner: str, repo: str, api_url: str, token: str | None) -> None:
        self.owner = owner
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self._token = token or ""
        self.http = Http(f"github:{owner}/{repo}", secrets=(self._token,))
        if self._token and not credentials_allowed(self.api_url):
            raise PublishError(
                f"{self.name}: {TOKEN_ENV} would be sent over plain HTTP to "
                f"{_host_of(self.api_url)} (github_api_url {self.api_url})",
                "use an https:// github_api_url; plain HTTP is only for this machine's loopback",
            )

    @property
    def name(self) -> str:
        return f"github:{self.owner}/{self.repo}"

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _call(
        self,
        method: str,
        url: str,
        *,
        payload: Any = None,
        body: Path | None = None,
        content_type: str = "",
        ok: tuple[int, ...] = (200,),
        allow: tuple[int, ...] = (),
        accept: str = GITHUB_JSON,
    ) -> Response:
        headers = {
            "Accept": accept,
            "User-Agent": f"longcert/{__version__}",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        data: bytes | Path | None = body
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        reply = self.http.request(
            method, url, headers=headers, secret_headers=self._auth(), body=data
        )
        if reply.status in ok or reply.status in allow:
            return reply
        raise PublishError(
            self.http.redact(
                f"{self.name}: {method} {_strip_query(url)} answered {reply.status} "
                f"{reply.message()}"
            ),
            self._hint(reply.status),
        )

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            return (
                f"check {TOKEN_ENV}: it must be valid for {self.owner}/{self.repo} with "
                "contents: write"
            )
        if status == 404:
            return f"check that {self.owner}/{self.repo} exists and github_api_url ({self.api_url})"
        return "run the same command again; what is already uploaded is skipped"

    def _repo_url(self, path: str) -> str:
        return f"{self.api_url}/repos/{self.owner}/{self.repo}/{path}"

    def _release(self, build: BuildRef) -> dict[str, Any] | None:
        tag = urllib.parse.quote(build.build_id, safe="")
        reply = self._call("GET", self._repo_url(f"releases/tags/{tag}"), allow=(404,))
        data = reply.json()
        return data if reply.status == 200 and isinstance(data, dict) else None

    def _assets(self, release: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        assets: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            url = self._repo_url(f"releases/{release['id']}/assets?per_page=100&page={page}")
            batch = self._call("GET", url).json()
            if not isinstance(batch, list):
                raise PublishError(f"{self.name}: unexpected answer listing release assets")
            for asset in batch:
                assets[str(asset["name"])] = asset
            if len(batch) < 100:
                return assets
            page += 1

    def has(self, build: BuildRef) -> bool:
        release = self._release(build)
        if release is None:
            return False
        manifest = self._assets(release).get("manifest.json")
        return manifest is not None and manifest.get("state", "uploaded") == "uploaded"

    def _asset_sha256(self, asset: Mapping[str, Any]) -> str:
        digest = str(asset.get("digest") or "")
        if digest.startswith("sha256:"):
            return digest.removeprefix("sha256:")
        # Older GitHub Enterprise servers have no digest field: download the asset and hash it.
        reply = self._call(
            "GET",
            self._repo_url(f"releases/assets/{asset['id']}"),
            accept="application/octet-stream",
        )
        return hashlib.sha256(reply.body).hexdigest()

    def _plan(self, build: Build, release: Mapping[str, Any] | None) -> list[Action]:
        where = f"{self.name} release {build.build_id}"
        actions = []
        if release is None:
            actions.append(Action("create", f"release {build.build_id}", self.name))
        assets = self._assets(release) if release is not None else {}
        for item in build.files:
            asset = assets.get(item.name)
            if asset is None:
                actions.append(Action("upload", item.name, where, item.size))
            elif asset.get("state", "uploaded") != "uploaded":
                actions.append(
                    Action(
                        "replace", item.name, where, item.size, "an earlier upload did not finish"
                    )
                )
            elif (
                int(asset.get("size", -1)) == item.size and self._asset_sha256(asset) == item.sha256
            ):
                actions.append(
                    Action("skip", item.name, where, item.size, "already there, same sha256")
                )
            else:
                raise PublishError(
                    f"{where} already has a different {item.name}",
                    "a published asset is never overwritten: delete it (or the release) on "
                    "GitHub to publish this build instead",
                )
        return actions

    def plan(self, build: Build) -> list[Action]:
        return self._plan(build, self._release(build))

    def push(
        self, build: Build, dry_run: bool = False, progress: ProgressFn | None = None
    ) -> PublishResult:
        say = progress or _quiet
        release = self._release(build)
        actions = self._plan(build, release)
        location = str(release.get("html_url", "")) if release else ""
        if dry_run or all(a.verb == "skip" for a in actions):
            for action in actions:
                say(action.describe(dry_run))
            return _result(
                self.name, location or f"{self.name} release {build.build_id}", actions, dry_run
            )
        if release is None:
            say(actions[0].describe())
            release = self._create_release(build)
            location = str(release.get("html_url", ""))
        assets = self._assets(release)
        files = {f.name: f for f in build.files}
        for action in actions:
            if action.verb in ("create", "skip"):
                if action.verb == "skip":
                    say(action.describe())
                continue
            say(action.describe())
            old = assets.get(action.name)
            if old is not None:
                self._call(
                    "DELETE",
                    self._repo_url(f"releases/assets/{old['id']}"),
                    ok=(204,),
                    allow=(404,),
                )
            self._upload(release, files[action.name])
        return _result(self.name, location, actions, dry_run)

    def _create_release(self, build: Build) -> dict[str, Any]:
        payload = {
            "tag_name": build.build_id,
            "name": release_title(build),
            "body": release_notes(build),
            "draft": False,
            "prerelease": "-" in build.tag,
            "make_latest": "false",
        }
        reply = self._call(
            "POST", self._repo_url("releases"), payload=payload, ok=(201,), allow=(422,)
        )
        if reply.status == 422:  # made meanwhile by a concurrent run: use that one
            existing = self._release(build)
            if existing is None:
                raise PublishError(
                    f"{self.name}: creating release {build.build_id} was refused: "
                    f"{reply.message()}",
                    "check that the tag name is free in the repository",
                )
            return existing
        data = reply.json()
        if not isinstance(data, dict) or "upload_url" not in data:
            raise PublishError(f"{self.name}: creating release {build.build_id} gave no upload URL")
        return data

    def _upload(self, release: Mapping[str, Any], item: BuildFile) -> None:
        base = str(release["upload_url"]).split("{", 1)[0]
        url = f"{base}?{urllib.parse.urlencode({'name': item.name})}"
        try:
            self._call(
                "POST",
                url,
                body=item.path,
                ok=(201,),
                content_type=CONTENT_TYPES.get(item.name, "application/octet-stream"),
            )
        except PublishError as err:
            raise PublishError(
                f"uploading {item.name} to {self.name} failed: {err.message}",
                "run the same command again: assets already uploaded are skipped and an "
                "unfinished one is replaced",
            ) from None


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


# --------------------------------------------------------------------------- OCI registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join(
    (
        OCI_INDEX,
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
GOARM_VARIANT = {"arm": "v7"}  # Kubernetes builds linux/arm with GOARM=7


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


@dataclass(frozen=True)
class PlatformImage:
    platform: str
    binary: str  # path inside the image, e.g. /kubeadm
    layer: Blob
    config: Blob
    manifest: Blob


@dataclass(frozen=True)
class ImageSet:
    """One image per platform and the index over them; byte-for-byte reproducible."""

    images: tuple[PlatformImage, ...]
    index: Blob


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _layer(files: list[tuple[str, Path, int]]) -> tuple[bytes, str]:
    """A gzipped tar of ``files`` (name, source, mode), with fixed owners and times."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, source, mode in files:
            info = tarfile.TarInfo(name)
            info.size = source.stat().st_size
            info.mode = mode
            info.mtime = 0
            info.uname = info.gname = ""
            with open(source, "rb") as handle:
                tar.addfile(info, handle)
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(tar_bytes)
    return packed.getvalue(), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def oci_images(build: Build) -> ImageSet:
    """For each binary: a one-layer image holding it (and the manifest and diff) plus an index."""
    common = {
        "org.opencontainers.image.title": "kubeadm",
        "org.opencontainers.image.version": build.tag,
        "org.opencontainers.image.description": release_title(build),
        "org.opencontainers.image.created": str(build.manifest.get("created", "")),
        "io.longcert.build-id": build.build_id,
        "io.longcert.leaf-years": str(build.leaf_years),
        "io.longcert.ca-years": str(build.ca_years),
    }
    metadata = {f.name: f for f in build.files if not f.platform}
    images = []
    for binary in build.binaries:
        goos, goarch = binary.platform.split("/")
        in_image = "kubeadm.exe" if goos == "windows" else "kubeadm"
        layer_bytes, diff_id = _layer(
            [
                (in_image, binary.path, 0o755),
                ("longcert/manifest.json", metadata["manifest.json"].path, 0o644),
                ("longcert/patch.diff", metadata["patch.diff"].path, 0o644),
            ]
        )
        layer = Blob(OCI_LAYER, layer_bytes)
        platform: dict[str, str] = {"architecture": goarch, "os": goos}
        if goarch in GOARM_VARIANT:
            platform["variant"] = GOARM_VARIANT[goarch]
        labels = {**common, "io.longcert.kubeadm.sha256": binary.sha256}
        config = Blob(
            OCI_CONFIG,
            _canonical(
                {
                    **platform,
                    "created": common["org.opencontainers.image.created"] or "1970-01-01T00:00:00Z",
                    "config": {"Entrypoint": [f"/{in_image}"], "Labels": labels},
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                    "history": [
                        {
                            "created_by": f"longcert {__version__} publish",
                            "comment": f"{binary.name} sha256 {binary.sha256}",
                        }
                    ],
                }
            ),
        )
        manifest = Blob(
            OCI_MANIFEST,
            _canonical(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": config.descriptor(),
                    "layers": [
                        layer.descriptor(annotations={"org.opencontainers.image.title": in_image})
                    ],
                    "annotations": labels,
                }
            ),
        )
        images.append(PlatformImage(binary.platform, f"/{in_image}", layer, config, manifest))
    index = Blob(
        OCI_INDEX,
        _canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    image.manifest.descriptor(platform=_platform_of(image.platform))
                    for image in images
                ],
                "annotations": common,
            }
        ),
    )
    return ImageSet(tuple(images), index)


def _platform_of(platform: str) -> dict[str, str]:
    goos, goarch = platform.split("/")
    out = {"architecture": goarch, "os": goos}
    if goarch in GOARM_VARIANT:
        out["variant"] = GOARM_VARIANT[goarch]
    return out


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {realm: ..., service: ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


def registry_credentials(host: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """OCI_USERNAME/OCI_PASSWORD, else the host's entry in the docker config (docker login)."""
    if environ.get(OCI_USER_ENV) and environ.get(OCI_PASSWORD_ENV):
        return environ[OCI_USER_ENV], environ[OCI_PASSWORD_ENV]
    config_dir = Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        auths = json.loads((config_dir / "config.json").read_text()).get("auths", {})
    except (OSError, ValueError, AttributeError):
        return None
    for key in (host, f"https://{host}", f"http://{host}"):
        entry = auths.get(key) if isinstance(auths, dict) else None
        if isinstance(entry, dict) and entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return user, password
    return None


class OciTarget:
    """``oci://HOST[:PORT]/REPOSITORY``: an image per platform and an index, tagged
    ``<tag>-leafNy-caNy``, through the OCI distribution API."""

    def __init__(
        self,
        host: str,
        repository: str,
        *,
        insecure: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.repository = repository
        scheme = "http" if insecure or is_local_host(host) else "https"
        self.base = f"{scheme}://{host}/v2/{repository}"
        self._credentials = credentials
        self._auth_header = ""
        self.http = Http(self.name, secrets=tuple(credentials or ()))
        self._images: dict[Path, ImageSet] = {}

    @property
    def name(self) -> str:
        return f"oci://{self.host}/{self.repository}"

    def reference(self, build: BuildRef) -> str:
        return f"{self.host}/{self.repository}:{build.image_tag}"

    def images(self, build: Build) -> ImageSet:
        if build.path not in self._images:
            self._images[build.path] = oci_images(build)
        return self._images[build.path]

    def _call(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        ok: tuple[int, ...] = (200,),
        allow: tuple[int, ...] = (),
    ) -> Response:
        hint = (
            "is the registry running? Without TLS on a host other than localhost set "
            "oci_insecure (LONGCERT_OCI_INSECURE=true)"
            if url.startswith("https")
            else "is the registry running and listening there?"
        )
        all_headers = {"User-Agent": f"longcert/{__version__}", **(headers or {})}
        reply = self._send(method, url, all_headers, body, hint)
        # Only the registry itself may ask for credentials: a challenge from an upload location
        # or redirect on another server is not answered.
        own = self._own(reply.url or url)
        if reply.status == 401 and "www-authenticate" in reply.headers and own:
            self._authenticate(reply.headers["www-authenticate"], hint)
            reply = self._send(method, url, all_headers, body, hint)
        if reply.status in ok or reply.status in allow:
            return reply
        advice = (
            f"set {OCI_USER_ENV} and {OCI_PASSWORD_ENV} (or docker login {self.host}) with "
            f"push rights on {self.repository}"
            if reply.status in (401, 403)
            else "run the same command again; what the registry already has is skipped"
        )
        raise PublishError(
            self.http.redact(
                f"{self.name}: {method} {_strip_query(url)} answered "
                f"{reply.status} {reply.message()}"
            ),
            advice,
        )

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, hint: str
    ) -> Response:
        # The registry's credentials go to the registry's own address (scheme, host and port)
        # and nowhere else: an upload location on another server gets no Authorization header.
        own = self._own(url) and credentials_allowed(url)
        secret = {"Authorization": self._auth_header} if self._auth_header and own else {}
        return self.http.request(
            method, url, headers=headers, secret_headers=secret, body=body, hint=hint
        )

    def _own(self, url: str) -> bool:
        """Whether ``url`` is on the registry's own address (scheme, host and port)."""
        return _origin(url) == _origin(self.base)

    def _authenticate(self, challenge: str, hint: str) -> None:
        """Answer the registry's challenge: Basic to the registry itself, or a token from the
        token service it names, which gets the credentials only over HTTPS unless it is the
        registry's own loopback address."""
        if not credentials_allowed(self.base):
            raise PublishError(
                f"{self.name} asks for credentials, and longcert sends none over plain HTTP to "
                "a registry off this machine",
                "serve the registry over HTTPS; oci_insecure is for registries without login",
            )
        scheme, params = parse_challenge(challenge)
        basic = ""
        if self._credentials:
            user, password = self._credentials
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if scheme == "basic":
            if not basic:
                raise PublishError(
                    f"{self.name} wants a user name and password",
                    f"set {OCI_USER_ENV} and {OCI_PASSWORD_ENV}, or docker login {self.host}",
                )
            self._auth_header = basic
            return
        if scheme != "bearer" or "realm" not in params:
            raise PublishError(f"{self.name}: unsupported authentication {scheme!r}")
        realm = params["realm"]
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PublishError(
                f"{self.name}: the registry names a token service {realm!r} that is not an "
                "http(s) URL"
            )
        if basic and parts.scheme != "https" and not self._own(realm):
            raise PublishError(
                f"{self.name}: will not send credentials to the token service "
                f"{_strip_query(realm)}: plain HTTP to another server than the registry",
                "a token service on another host or port gets credentials only over HTTPS",
            )
        query = {"scope": f"repository:{self.repository}:pull,push"}
        if "service" in params:
            query["service"] = params["service"]
        url = f"{realm}{'&' if parts.query else '?'}{urllib.parse.urlencode(query)}"
        reply = self.http.request(
            "GET", url, secret_headers={"Authorization": basic} if basic else None, hint=hint
        )
        data = reply.json()
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if reply.status != 200 or not token:
            raise PublishError(
                f"{self.name}: the token service {_strip_query(url)} answered {reply.status}",
                f"set {OCI_USER_ENV} and {OCI_PASSWORD_ENV} (or docker login {self.host})",
            )
        self.http.secrets = (*self.http.secrets, str(token))
        self._auth_header = f"Bearer {token}"

    def _existing(self, reference: str) -> Response | None:
        reply = self._call(
            "GET",
            f"{self.base}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
            allow=(404,),
        )
        return reply if reply.status == 200 else None

    def _has_blob(self, digest: str) -> bool:
        return self._call("HEAD", f"{self.base}/blobs/{digest}", allow=(404,)).status == 200

    def _has_manifest(self, digest: str) -> bool:
        reply = self._call(
            "HEAD",
            f"{self.base}/manifests/{digest}",
            headers={"Accept": MANIFEST_ACCEPT},
            allow=(404,),
        )
        return reply.status == 200

    def has(self, build: BuildRef) -> bool:
        return self._existing(build.image_tag) is not None

    def plan(self, build: Build) -> list[Action]:
        images = self.images(build)
        ref = self.reference(build)
        existing = self._existing(build.image_tag)
        if existing is not None:
            digest = "sha256:" + hashlib.sha256(existing.body).hexdigest()
            if digest != images.index.digest:
                raise PublishError(
                    f"{ref} already exists with different content ({digest[:19]}, this build "
                    f"{images.index.digest[:19]})",
                    "a published tag is never moved: delete it in the registry, or publish to "
                    "another repository",
                )
            return [Action("skip", ref, self.name, reason="already there, same digest")]
        actions = []
        for image in images.images:
            for blob, what in ((image.layer, "layer"), (image.config, "config")):
                label = f"{image.platform} {what} {blob.digest[:19]}"
                if self._has_blob(blob.digest):
                    actions.append(Action("skip", label, self.name, reason="blob already there"))
                else:
                    actions.append(Action("upload", label, self.name, len(blob.data)))
            label = f"{image.platform} image {image.manifest.digest[:19]}"
            if self._has_manifest(image.manifest.digest):
                actions.append(Action("skip", label, self.name, reason="already there"))
            else:
                actions.append(Action("upload", label, self.name, len(image.manifest.data)))
        actions.append(Action("upload", f"index {ref}", self.name, len(images.index.data)))
        return actions

    def push(
        self, build: Build, dry_run: bool = False, progress: ProgressFn | None = None
    ) -> PublishResult:
        say = progress or _quiet
        actions = self.plan(build)
        ref = self.reference(build)
        if dry_run or all(a.verb == "skip" for a in actions):
            for action in actions:
                say(action.describe(dry_run))
            return _result(self.name, ref, actions, dry_run)
        images = self.images(build)
        steps: list[tuple[Blob, str]] = []
        for image in images.images:
            steps += [(image.layer, "blob"), (image.config, "blob"), (image.manifest, "manifest")]
        steps.append((images.index, "tag"))
        for action, (blob, kind) in zip(actions, steps, strict=True):
            say(action.describe())
            if action.verb == "skip":
                continue
            if kind == "blob":
                self._put_blob(blob)
            else:
                reference = build.image_tag if kind == "tag" else blob.digest
                self._call(
                    "PUT",
                    f"{self.base}/manifests/{reference}",
                    body=blob.data,
                    headers={"Content-Type": blob.media_type},
                    ok=(201, 200),
                )
        return _result(self.name, ref, actions, dry_run)

    def _put_blob(self, blob: Blob) -> None:
        started = self._call("POST", f"{self.base}/blobs/uploads/", ok=(202,))
        location = started.headers.get("location")
        if not location:
            raise PublishError(f"{self.name}: the registry gave no upload location")
        location = urllib.parse.urljoin(self.base + "/", location)
        parts = urllib.parse.urlsplit(location)
        plain_elsewhere = parts.scheme == "http" and not (
            self._own(location) or is_local_host(parts.netloc)
        )
        if parts.scheme not in ("http", "https") or plain_elsewhere:
            raise PublishError(
                f"{self.name}: the registry sends the upload to {_strip_query(location)}, "
                "plain HTTP to another host (or not http at all); refused",
                "check the registry's configuration (its http.host setting)",
            )
        separator = "&" if "?" in location else "?"
        url = f"{location}{separator}{urllib.parse.urlencode({'digest': blob.digest})}"
        self._call(
            "PUT",
            url,
            body=blob.data,
            headers={"Content-Type": "application/octet-stream"},
            ok=(201,),
        )


# --------------------------------------------------------------------------- target strings

_GITHUB = re.compile(r"github:([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100})")
_OCI = re.compile(
    r"oci://((?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::\d{1,5})?)/"
    r"([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
)


def parse_target(text: str, settings: Settings, environ: Mapping[str, str] | None = None) -> Target:
    """A target from its text form (see TARGET_FORMS); ConfigError for anything else."""
    env = os.environ if environ is None else environ
    value = text.strip()
    if not value:
        raise ConfigError("no publish target given", f"give {TARGET_FORMS}")
    if value.startswith("github:"):
        match = _GITHUB.fullmatch(value)
        if not match:
            raise ConfigError(
                f"publish target {value!r} is not github:OWNER/REPO",
                "e.g. github:example/kubeadm-builds",
            )
        return GitHubTarget(
            match.group(1), match.group(2), settings.github_api_url, env.get(TOKEN_ENV)
        )
    if value.startswith("oci://"):
        match = _OCI.fullmatch(value.rstrip("/"))
        if not match:
            raise ConfigError(
                f"publish target {value!r} is not oci://HOST[:PORT]/REPOSITORY",
                "the repository is lower-case, e.g. oci://registry.example:5000/tools/kubeadm",
            )
        host = match.group(1)
        return OciTarget(
            host,
            match.group(2),
            insecure=settings.oci_insecure,
            credentials=registry_credentials(host, env),
        )
    if value.startswith("dir:"):
        value = value.removeprefix("dir:")
        if not value:
            raise ConfigError("publish target 'dir:' names no directory", "e.g. dir:/srv/kubeadm")
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value) and not re.match(r"^[A-Za-z]:[\\/]", value):
        scheme = value.split(":", 1)[0]
        raise ConfigError(
            f"unknown publish target kind {scheme!r} in {value!r}", f"give {TARGET_FORMS}"
        )
    return DirectoryTarget(Path(value).expanduser().absolute())


def open_target(
    text: str, settings: Settings, *, dry_run: bool, environ: Mapping[str, str] | None = None
) -> Target:
    """parse_target, and refuse (before any build) a GitHub target without a token."""
    target = parse_target(text, settings, environ)
    env = os.environ if environ is None else environ
    if isinstance(target, GitHubTarget) and not env.get(TOKEN_ENV) and not dry_run:
        raise ConfigError(
            f"{target.name} needs a token in the {TOKEN_ENV} environment variable",
            "in GitHub Actions: env GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }} and "
            "permissions contents: write",
        )
    return target


# --------------------------------------------------------------------------- entry points


def push(
    build: Build, target: Target, reporter: Reporter, *, dry_run: bool = False
) -> PublishResult:
    """Publish one loaded build to one target, reporting each action."""
    with reporter.stage(f"publish {'(dry run) ' if dry_run else ''}to {target.name}"):
        result = target.push(build, dry_run=dry_run, progress=reporter.step)
        if not result.changed:
            reporter.step(f"nothing to publish: {target.name} already has {build.build_id}")
        elif dry_run:
            reporter.step(f"dry run: {result.changed} action(s) not carried out")
    return result


def publish_directory(
    build_dir: str | Path | None, settings: Settings, reporter: Reporter, *, dry_run: bool
) -> PublishResult:
    """`invoke publish`: load and check the build, open the target, push, print a summary."""
    if not build_dir:
        raise ConfigError(
            "--build is required", "e.g. --build builds/kubeadm-v1.33.7-leaf10y-ca10y"
        )
    if not settings.publish:
        raise ConfigError("--to is required", f"give {TARGET_FORMS}")
    build = load_build(Path(build_dir))
    target = open_target(settings.publish, settings, dry_run=dry_run)
    result = push(build, target, reporter, dry_run=dry_run)
    sums = {f.name: f.sha256 for f in build.files}
    rows = []
    for action in result.actions:  # files for a directory or release, blobs for a registry
        state = f"would {action.verb}" if dry_run and action.verb != "skip" else action.verb
        size = _size(action.size) if action.size else "-"
        rows.append([action.name, size, sums.get(action.name, "-"), state])
    verb = "would publish" if dry_run else "published"
    if not result.changed:
        verb = "already published"
    reporter.summary(
        f"{verb} {build.build_id} to {result.location}", rows, ["file", "size", "sha256", "action"]
    )
    return result
