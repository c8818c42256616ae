"""The build to publish: load ``builds/<id>/`` and check everything publish will use.

:func:`load_build` checks ``manifest.json``, ``verify.json``, ``SHA256SUMS`` and every binary's
sha256 and executable header before any target is touched, and hands on a :class:`Build` of
checked, typed fields; :func:`existing_build` also compares the inputs a manifest records.
:class:`BuildRef` names a build on every target before it is built.
"""

from __future__ import annotations

import hashlib
import re
import stat
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longcert import package
from longcert.build import Artifact, sha256_file
from longcert.errors import ConfigError, PublishError
from longcert.package import KIT_ARCHIVE, REPORT_FILES, SUMS_FILE
from longcert.provenance import PROVENANCE_FILE
from longcert.publish.fields import (
    COMMIT,
    CREATED,
    SHA256,
    Fields,
    check_regular,
    read_json,
    shown,
)
from longcert.sbom import SBOM_SUFFIX
from longcert.settings import KNOWN_PLATFORMS, MAX_YEARS
from longcert.verify.header import file_platform
from longcert.versions import KubeVersion

# Published beside the binaries (after them, their attestations, the kit and the reports), in
# this order: manifest.json last, because its presence is what
# `has` takes as "this build is completely published".
METADATA_FILES = ("SHA256SUMS", "patch.diff", "manifest.json")


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
    # binaries, SBOMs, provenance.json, kit.tar.gz, report.html and REPORT.md, METADATA_FILES
    files: tuple[BuildFile, ...]

    @property
    def binaries(self) -> tuple[BuildFile, ...]:
        return tuple(f for f in self.files if f.platform)


VERIFIED_STATUSES = ("verified", "not-executed")  # longcert.verify.VerifyReport.status


def _builds_near(path: Path) -> str:
    """The builds in the directory ``path`` would be in, for the hint."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        found = sorted(p.name for p in parent.iterdir()
                       if p.is_dir() and (p / "manifest.json").is_file())
    except OSError:
        found = []
    if not found:
        return f"no build in {parent}; give builds/<id> as `longcert build` writes it"
    more = f" and {len(found) - 8} more" if len(found) > 8 else ""
    return f"builds in {parent}: {', '.join(found[:8])}{more}"


def load_build(path: Path, *, kit_rewrite: bool = False) -> Build:
    """Load ``builds/<id>/`` and refuse anything not verified or changed since it was written.

    Every manifest field publish uses is checked against what `invoke build` writes (file names,
    release tag, validities, build id, sums, text for the notes), each binary's sha256 and its
    executable header against the platform it is listed for, and verify.json must hold a passing
    report of this tag and validities for every platform published; a kit must be recorded in
    manifest.json, provenance.json and SHA256SUMS alike.

    ``kit_rewrite``: for ``longcert kit``, which writes kit.tar.gz again and records it anew.
    The kit is left out (neither checked nor in ``files``), and what a stopped ``longcert kit``
    left half recorded is taken (see :func:`package.record_kit`): provenance.json, manifest.json
    and SHA256SUMS that differ only in the kit each records.
    """
    path = Path(path)
    if not path.is_dir():
        # a wrong path is bad input (exit 2) wherever a build is asked for: publish and kit
        raise ConfigError(f"{path} is not a build directory", _builds_near(path))
    if not (path / "manifest.json").exists():
        raise ConfigError(f"{path} is not a build directory: it has no manifest.json",
                          _builds_near(path))
    data = read_json(path / "manifest.json", "manifest")
    m = Fields(path, "manifest.json")
    if not isinstance(data, dict):
        raise m.bad("", f"is {shown(data)}, not an object")
    kube = m.obj(data, "kubernetes")
    tag = m.text(kube, "kubernetes.tag")
    try:
        release_tag = KubeVersion.parse(tag).tag
    except ConfigError:
        release_tag = ""
    if tag != release_tag:
        raise m.bad("kubernetes.tag", f"{shown(tag)} is not a Kubernetes release tag")
    m.text(kube, "kubernetes.commit", COMMIT)
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
    m.text(data, "created", CREATED)
    m.text(m.obj(data, "tool"), "tool.version")
    go = m.obj(data, "go")
    m.text(go, "go.version")
    m.text(go, "go.source")
    patch = m.obj(data, "patch")
    m.text(patch, "patch.set")
    diff_sha256 = m.text(patch, "patch.diff_sha256", SHA256)
    _check_verified(path, m, data, ref, [platform for platform, _, _, _ in artifacts])
    sums = _read_sums(path)
    files = []
    for platform, name, want, size in artifacts:
        binary = path / name
        check_regular(path, name)
        if not binary.is_file():
            raise PublishError(f"{path}: {name} is missing", "rebuild it")
        have = sha256_file(binary)
        if have != want or sums.get(name) != want:
            raise PublishError(
                f"{path}: {name} changed after verification (sha256 {have[:16]}, "
                f"manifest.json says {want[:16]}, SHA256SUMS {sums.get(name, 'nothing')[:16]})",
                "rebuild it",
            )
        real_size = binary.stat().st_size
        if real_size != size:
            raise m.bad(f"size of {name}", f"is {size}, the file has {real_size} bytes")
        found, header = file_platform(binary)
        if found != platform:
            raise PublishError(
                f"{path}: {name} is not a {platform} executable ({header})",
                "only the binary the build made for that platform is published; rebuild it",
            )
        files.append(BuildFile(name, binary, real_size, have, platform))
    attestations, statement = _attestations(path, m, data, artifacts, kit_rewrite=kit_rewrite)
    files.extend(attestations)
    kit_present = (path / KIT_ARCHIVE).exists() or (path / KIT_ARCHIVE).is_symlink()
    if kit_present and not kit_rewrite:
        files.append(_kit(path, data))
    elif "kit" in data and not kit_rewrite:
        raise PublishError(f"{path}: manifest.json records a {KIT_ARCHIVE}, and there is none",
                           "run `longcert kit` again")
    files.extend(_reports(path, m, data))
    for name in METADATA_FILES:
        meta = path / name
        check_regular(path, name)
        if not meta.is_file():
            raise PublishError(f"{path}: {name} is missing", "rebuild it")
        files.append(BuildFile(name, meta, meta.stat().st_size, sha256_file(meta)))
    _check_sums_cover(path, sums, files, statement, kit_rewrite=kit_rewrite)
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


def _checked_file(path: Path, name: str, want: str) -> BuildFile:
    check_regular(path, name)
    item = path / name
    if not item.is_file():
        raise PublishError(f"{path}: {name} is missing", "rebuild it")
    have = sha256_file(item)
    if have != want:
        raise PublishError(
            f"{path}: {name} changed after the build (sha256 {have[:16]}, manifest.json says "
            f"{want[:16]})",
            "rebuild it",
        )
    return BuildFile(name, item, item.stat().st_size, have)


def _attestations(
    path: Path,
    m: Fields,
    data: Mapping[str, Any],
    artifacts: list[tuple[str, str, str, int]],
    *,
    kit_rewrite: bool = False,
) -> tuple[list[BuildFile], Any]:
    """Each binary's SBOM, then provenance.json, checked against manifest.json; provenance.json
    must name exactly the binaries, by sha256, as its subjects, and kit.tar.gz too when the
    manifest records a kit (with the sha256 it records). Also provenance.json as read.

    ``kit_rewrite`` (``longcert kit`` about to write the kit again) also takes a provenance.json
    that an interrupted ``longcert kit`` rewrote before manifest.json: one that is what the
    manifest records but for its kit subject."""
    recorded = m.obj(data, "attestations")
    listed = m.get(recorded, "attestations.sbom")
    if not isinstance(listed, list) or len(listed) != len(artifacts):
        raise m.bad("attestations.sbom", "does not list one SBOM per binary")
    files = []
    for (platform, binary, _, _), entry in zip(artifacts, listed, strict=True):
        name = m.text(entry, "attestations.sbom[].file")
        if name != binary + SBOM_SUFFIX or entry.get("platform") != platform:
            raise m.bad("attestations.sbom", f"lists {shown(name)} for {binary}")
        want = m.text(entry, "attestations.sbom[].sha256", SHA256)
        files.append(_checked_file(path, name, want))
    record = m.obj(recorded, "attestations.provenance")
    if m.text(record, "attestations.provenance.file") != PROVENANCE_FILE:
        raise m.bad("attestations.provenance.file", f"is not {PROVENANCE_FILE}")
    want = m.text(record, "attestations.provenance.sha256", SHA256)
    check_regular(path, PROVENANCE_FILE)
    statement = read_json(path / PROVENANCE_FILE, "provenance")
    kit = _recorded_kit(m, data)
    have = sha256_file(path / PROVENANCE_FILE)
    if have != want:
        # one an interrupted `longcert kit` wrote: the recorded one but for its kit subject
        half_kit = isinstance(statement, dict) and _sha256_text(
            package.kit_provenance(statement, kit)) == want
        if not half_kit:
            files.append(_checked_file(path, PROVENANCE_FILE, want))  # raises: changed
        if not kit_rewrite:
            raise PublishError(
                f"{path}: {PROVENANCE_FILE} names a {KIT_ARCHIVE} manifest.json does not record "
                "(a `longcert kit` was stopped while it recorded the kit)", _KIT_AGAIN)
    files.append(BuildFile(PROVENANCE_FILE, path / PROVENANCE_FILE,
                           (path / PROVENANCE_FILE).stat().st_size, have))
    named = (
        {
            (s.get("name"), (s.get("digest") or {}).get("sha256"))
            for s in statement.get("subject") or []
            if isinstance(s, dict) and isinstance(s.get("digest"), dict)
        }
        if isinstance(statement, dict)
        else set()
    )
    binaries = {(binary, digest) for _, binary, digest, _ in artifacts}
    if {item for item in named if item[0] != KIT_ARCHIVE} != binaries:
        raise PublishError(
            f"{path}: {PROVENANCE_FILE} does not name the binaries, by sha256, as its subjects",
            "rebuild it",
        )
    kit_named = {digest for name, digest in named if name == KIT_ARCHIVE}
    if not kit_rewrite and kit_named != ({kit} if kit else set()):
        named_kits = ", ".join(sorted(str(d)[:16] for d in kit_named)) or "none"
        raise PublishError(
            f"{path}: {PROVENANCE_FILE} does not name the {KIT_ARCHIVE} manifest.json records "
            f"as a subject (it names {named_kits}, manifest.json records "
            f"{kit[:16] if kit else 'no kit'})",
            _KIT_AGAIN,
        )
    return files, statement


_KIT_AGAIN = "run `longcert kit` again to record the kit everywhere, then publish"


def _recorded_kit(m: Fields, data: Mapping[str, Any]) -> str | None:
    """The kit's sha256 manifest.json records (``kit``), None when it records none."""
    if "kit" not in data:
        return None
    return m.text(m.obj(data, "kit"), "kit.sha256", SHA256)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _reports(path: Path, m: Fields, data: Mapping[str, Any]) -> list[BuildFile]:
    """report.html and REPORT.md, checked against the sha256 manifest.json lists for them
    (``reports``); none for a build written before builds had them."""
    if "reports" not in data:
        return []
    listed = m.get(data, "reports")
    names = [entry.get("file") if isinstance(entry, dict) else None
             for entry in (listed if isinstance(listed, list) else [])]
    if not isinstance(listed, list) or sorted(map(str, names)) != sorted(REPORT_FILES):
        raise m.bad("reports", f"is {shown(listed)}, not one entry for each of "
                    f"{', '.join(REPORT_FILES)}")
    return [
        _checked_file(path, m.text(entry, "reports[].file"),
                      m.text(entry, "reports[].sha256", SHA256))
        for entry in listed
    ]


MAX_KIT_BYTES = 16 << 20


def _check_sums_cover(
    path: Path,
    sums: Mapping[str, str],
    files: list[BuildFile],
    statement: Any,
    *,
    kit_rewrite: bool = False,
) -> None:
    """SHA256SUMS lists every published file but itself, each with its sha256 (issue 20).

    With ``kit_rewrite`` the kit is not looked at, and manifest.json and provenance.json may
    differ from SHA256SUMS when provenance.json differs from it only in its kit subject: a
    `longcert kit` stopped before it wrote SHA256SUMS (the manifest and provenance it had
    written were checked against each other by then)."""
    published = {item.name: item.sha256 for item in files if item.name != SUMS_FILE}
    listed = dict(sums)
    if kit_rewrite:
        listed.pop(KIT_ARCHIVE, None)
    if set(listed) != set(published):
        missing = sorted(set(published) - set(listed))
        extra = sorted(set(listed) - set(published))
        raise PublishError(
            f"{path}: SHA256SUMS does not list every published file"
            + (f" (lacks {', '.join(missing)})" if missing else "")
            + (f" (lists {', '.join(extra)}, which the build does not publish)" if extra else ""),
            "rebuild it (a build by an older longcert listed only the binaries)"
            if set(missing) | set(extra) != {KIT_ARCHIVE} else _KIT_AGAIN,
        )
    changed = sorted(name for name, digest in published.items() if listed[name] != digest)
    # what a `longcert kit` stopped after provenance.json or manifest.json leaves
    half_kit = (
        PROVENANCE_FILE in changed
        and set(changed) <= {"manifest.json", PROVENANCE_FILE, KIT_ARCHIVE}
        and isinstance(statement, dict)
        and _sha256_text(package.kit_provenance(statement, sums.get(KIT_ARCHIVE)))
        == sums.get(PROVENANCE_FILE)
    )
    if half_kit and kit_rewrite:
        return
    if half_kit:
        raise PublishError(
            f"{path}: SHA256SUMS does not list the {', '.join(changed)} the build has now "
            "(a `longcert kit` was stopped before it rewrote SHA256SUMS)",
            _KIT_AGAIN,
        )
    if changed:
        name = changed[0]
        raise PublishError(
            f"{path}: {name} changed after the build (sha256 {published[name][:16]}, "
            f"SHA256SUMS says {listed[name][:16]})",
            "rebuild it, or `longcert kit` again for kit.tar.gz",
        )


def _kit(path: Path, data: Mapping[str, Any]) -> BuildFile:
    """The rollout kit (``invoke kit``), published when the build has one and manifest.json
    records it as it is: a gzipped tar of regular files directly under ``kit/`` with plain
    modes (0644, 0755), nothing else (no links, devices, set-id bits, paths out)."""
    check_regular(path, KIT_ARCHIVE)
    archive = path / KIT_ARCHIVE
    bad = f"{path}: {KIT_ARCHIVE} is not a kit written by `invoke kit`"
    record = data.get("kit")
    digest = sha256_file(archive)
    if not isinstance(record, Mapping) or record.get("sha256") != digest:
        recorded = str(record.get("sha256", ""))[:16] if isinstance(record, Mapping) else ""
        raise PublishError(
            f"{path}: {KIT_ARCHIVE} is not the kit manifest.json records (sha256 "
            f"{digest[:16]}, recorded {recorded or 'none'})",
            "run `longcert kit` again",
        )
    try:
        with tarfile.open(archive, "r:gz") as tar:
            total = 0
            for member in tar:
                name = member.name.split("/")
                total += member.size
                if not (
                    member.isfile()
                    and member.mode in (0o644, 0o755)
                    and len(name) == 2
                    and name[0] == "kit"
                    and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name[1])
                ) or total > MAX_KIT_BYTES:
                    raise PublishError(f"{bad} ({member.name!r})", "run `invoke kit` again")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise PublishError(f"{bad}: {exc}", "run `invoke kit` again") from exc
    return BuildFile(KIT_ARCHIVE, archive, archive.stat().st_size, digest)


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
    except (PublishError, ConfigError) as err:  # something else holds the build's name
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
    _check_as_written(build, hint)
    return build


def _check_as_written(build: Build, hint: str) -> None:
    """What reuse re-checks beyond load_build: every file is a regular file nobody but its
    owner may write, the binaries keep their mode, and the evidence (patch.diff, verify.json,
    the reports, build.log) has the sha256 manifest.json recorded when it was written
    (SHA256SUMS, which lists manifest.json, is checked file by file by load_build)."""
    evidence = build.manifest.get("evidence")
    if not isinstance(evidence, Mapping) or not evidence:
        raise PublishError(
            f"{build.path} records no sha256 of its evidence (written by an older longcert): "
            "it cannot be re-checked for reuse", hint)
    binaries = {item.name for item in build.binaries}
    for path in sorted(build.path.iterdir()):
        mode = path.lstat().st_mode
        if not stat.S_ISREG(mode):
            raise PublishError(f"{path} is not a regular file; a build holds only the files "
                               "it wrote", hint)
        if mode & 0o002:  # (group write is a umask's choice, 0002 on many systems)
            raise PublishError(f"{path} is writable by anyone (mode {mode & 0o777:04o}): not "
                               "as it was written, so not reused", hint)
        if path.name in binaries and not mode & 0o100:
            raise PublishError(f"{path} is no longer executable (mode {mode & 0o777:04o})", hint)
    for name, recorded in evidence.items():
        path = build.path / str(name)
        have = sha256_file(path) if path.is_file() else "missing"
        if have != recorded:
            raise PublishError(f"{path} changed after the build wrote it (sha256 "
                               f"{have[:16]}, recorded {str(recorded)[:16]})", hint)


def _artifacts(m: Fields, data: Mapping[str, Any]) -> list[tuple[str, str, str, int]]:
    """(platform, file, sha256, size) of every binary; file names are the build's own."""
    listed = m.get(data, "artifacts")
    if not isinstance(listed, list) or not listed:
        raise m.bad("artifacts", f"is {shown(listed)}, not a list of the binaries")
    out: list[tuple[str, str, str, int]] = []
    for number, item in enumerate(listed):
        field_name = f"artifacts[{number}]"
        platform = m.text(item, f"{field_name}.platform")
        if platform not in KNOWN_PLATFORMS:
            raise m.bad(f"{field_name}.platform", f"{shown(platform)} is not a known platform")
        if any(platform == seen for seen, _, _, _ in out):
            raise m.bad(f"{field_name}.platform", f"lists {platform} a second time")
        name = Artifact(platform, Path(), 0, "").file_name
        if m.get(item, f"{field_name}.file") != name:
            raise m.bad(
                f"{field_name}.file",
                f"is {shown(item['file'])}, not {name} (the name a build gives {platform})",
            )
        digest = m.text(item, f"{field_name}.sha256", SHA256)
        size = m.integer(item, f"{field_name}.size", 1, 2**40)
        out.append((platform, name, digest, size))
    return out


def _check_verified(
    path: Path, m: Fields, data: Mapping[str, Any], ref: BuildRef, platforms: list[str]
) -> None:
    """manifest.json and verify.json both say every published platform passed, for this build."""
    verification = m.obj(data, "verification")
    checked = m.obj(verification, "verification.platforms")
    report = read_json(path / "verify.json", "verification report")
    v = Fields(path, "verify.json")
    reports = v.get(report, "platforms")
    if not isinstance(reports, list):
        raise v.bad("platforms", f"is {shown(reports)}, not a list of reports")
    passed = verification.get("passed") is True and report.get("passed") is True
    if not passed:
        raise PublishError(
            f"{path}: verification did not pass; only a verified build can be published",
            "rebuild it with `invoke build`, which verifies before it packages",
        )
    for key, entry in checked.items():
        if key not in KNOWN_PLATFORMS:
            raise m.bad("verification.platforms", f"names {shown(key)}, not a known platform")
        m.text(entry, f"verification.platforms.{key}.status")
        m.integer(entry, f"verification.platforms.{key}.certificates_checked", 0, 10**6)
        for count in ("checks", "scenarios"):  # written since the reports (may be absent)
            if isinstance(entry, dict) and count in entry:
                m.integer(entry, f"verification.platforms.{key}.{count}", 0, 10**6)
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
    """SHA256SUMS as `sha256sum` writes it: one ``<sha256>  <name>`` line per published file."""
    path = build_dir / "SHA256SUMS"
    check_regular(build_dir, path.name)
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
