"""The builds/ layout: one directory per build, written aside and renamed into place.

builds/<build-id>/
  kubeadm-<os>-<arch>   one per platform
  SHA256SUMS            `sha256sum -c SHA256SUMS` checks them
  patch.diff            the exact diff applied to the tree
  verify.json           the verification report
  report.html           the report people open: verdict, tables, validity timeline (SVG)
  REPORT.md             the verdict and the tables in Markdown
  kubeadm-<os>-<arch>.spdx.json   an SPDX SBOM of each binary, from `go version -m`
  provenance.json       in-toto / SLSA v1 provenance binding the binaries to their inputs
  build.log             the compile and verification output
  manifest.json         what was built, from what, how, and what was proven
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from longcert import __version__, gotrace, provenance, runs, sbom
from longcert.build import BuildResult, sha256_file
from longcert.errors import PublishError
from longcert.patching import PatchResult
from longcert.source import SourceTree
from longcert.verify import VerifyReport, has_validity_config
from longcert.verify.document import HTML_FILE, MARKDOWN_FILE, html_report, markdown_report
from longcert.verify.report import count_checks
from longcert.versions import KubeVersion

# The rollout kit as one file beside the binaries (written by longcert.kit, carried by publish: a
# release asset, a file in the shared directory). Reproducible: sorted members, fixed times and
# owners.
KIT_ARCHIVE = "kit.tar.gz"


@dataclass(frozen=True)
class BuildOutput:
    """A finished build directory and its manifest."""

    path: Path
    manifest: dict[str, Any]


DEFAULT_PLATFORMS = ("linux/amd64",)


def build_id(
    tag: str,
    leaf_years: int,
    ca_years: int,
    *,
    pinned: bool = False,
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS,
) -> str:
    """Directory name telling apart every build that differs in what it contains:
    kubeadm-v1.9.4-leaf10y-ca10y, plus ``-pinned`` for a --pin-validity build (v1.31+) and
    the platforms when they are not just linux/amd64
    (kubeadm-v1.33.7-leaf10y-ca10y-linux-amd64.linux-arm64)."""
    name = f"kubeadm-{tag}-leaf{leaf_years}y-ca{ca_years}y"
    if pinned:
        name += "-pinned"
    if tuple(sorted(platforms)) != DEFAULT_PLATFORMS:
        name += "-" + ".".join(p.replace("/", "-") for p in sorted(platforms))
    return name


def build_inputs(
    tag: str,
    remote: str,
    leaf_years: int,
    ca_years: int,
    *,
    pinned: bool,
    platforms: tuple[str, ...],
    patch_set: str,
    patch_set_sha256: str,
    go_version: str,
    image: str,
) -> dict[str, Any]:
    """Everything that goes into a build and is known before it starts: two builds with the
    same inputs are the same build (manifest.json records them as ``inputs``)."""
    return {
        "tag": tag,
        "remote": remote,
        "leaf_years": leaf_years,
        "ca_years": ca_years,
        "pin_validity": pinned,
        "platforms": sorted(platforms),
        "patch_set": patch_set,
        "patch_set_sha256": patch_set_sha256,
        "go_version": go_version,
        "image": image,
    }


def check_target(builds_dir: Path, name: str, force: bool) -> Path:
    """Refuse (before any work) to overwrite an existing build unless forced."""
    target = builds_dir / name
    if target.exists() and not force:
        raise PublishError(
            f"{target} already exists",
            "remove it, or pass --force to replace it once the new build passes",
        )
    return target


def config_override(tag: str, pinned: bool) -> str:
    """Whether a ClusterConfiguration validity period can override the compiled one."""
    if not has_validity_config(KubeVersion.parse(tag)):
        return "not applicable: before v1.31 the configuration cannot set validity"
    if pinned:
        return "ignored: the compiled validity wins (--pin-validity)"
    return "honoured, as upstream: a ClusterConfiguration validity period wins"


def manifest(
    tree: SourceTree,
    patch: PatchResult,
    result: BuildResult,
    reports: tuple[VerifyReport, ...],
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """manifest.json contents."""
    return {
        "tool": {"name": "longcert", "version": __version__},
        "inputs": inputs,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kubernetes": {"tag": tree.tag, "commit": tree.commit, "remote": tree.remote},
        "validity": {
            "leaf_years": patch.leaf_years,
            "ca_years": patch.ca_years,
            "leaf_hours": patch.leaf_years * 365 * 24,
            "ca_hours": patch.ca_years * 365 * 24,
        },
        "config_override": config_override(tree.tag, patch.pinned),
        "patch": {
            "set": patch.patch_set,
            "diff_sha256": patch.diff_sha256,
            "files": [c.path for c in patch.changes],
        },
        "go": _go_record(result),
        "go_caches": result.caches.scope if result.caches else None,
        "image": _image_record(result),
        "platforms": [a.platform for a in result.artifacts],
        "artifacts": [
            {"platform": a.platform, "file": a.file_name, "size": a.size, "sha256": a.sha256}
            for a in result.artifacts
        ],
        "verification": {
            "passed": all(r.passed for r in reports),
            "platforms": {
                r.platform: {
                    "status": r.status,
                    "executed_with": r.executed_with or None,
                    "header": r.header,
                    "reported_version": r.reported_version,
                    "config_api": r.config_api or None,
                    "config_api_source": r.config_api_source or None,
                    "certificates_checked": sum(1 for c in r.checks if c.stage == "init"),
                    "renewals_checked": sum(1 for c in r.checks if c.stage.endswith("-renew")),
                    "stored_config_checked": sum(
                        1 for c in r.checks if c.stage.startswith("config-")
                    ),
                    # every certificate and kubeconfig of every scenario: the count the
                    # build's lines, the reports and the release notes give
                    "checks": count_checks(r)[0],
                    "scenarios": count_checks(r)[1],
                }
                for r in reports
            },
        },
    }


def _go_record(result: BuildResult) -> dict[str, Any]:
    record: dict[str, Any] = {"version": result.go.version, "source": result.go.source}
    if result.choice is not None:
        record["wanted"] = {
            "version": result.choice.wanted.version,
            "source": result.choice.wanted.source,
        }
        record["chosen_by"] = result.choice.chosen_by
        if len(result.choice.toolchain) == 2:
            file, digest = result.choice.toolchain
            record["toolchain"] = {
                "file": file,
                "sha256": digest,
                **gotrace.origin_record(dict(result.choice.toolchain_origin)),
            }
    return record


def _image_record(result: BuildResult) -> dict[str, Any]:
    record: dict[str, Any] = {"name": result.image, "id": result.image_id}
    if result.choice is not None:
        probe = result.choice.probe
        record["platform"] = probe.platform
        record["digests"] = list(result.choice.digests)
        record["probe"] = {
            "tools": dict(probe.tools),
            "go_binary": probe.go_binary,
            "go_version": probe.go_version,
            "go_env": dict(probe.go_env),
        }
    if result.toolbox is not None:
        record["supplied"] = list(result.toolbox.supplied)
    return record


# The report people open, beside the binaries; manifest.json lists them (file and sha256) as
# ``reports``, and publishing carries them. Builds written before them have none.
REPORT_FILES = (HTML_FILE, MARKDOWN_FILE)

# The files besides the binaries and attestations whose sha256 manifest.json records.
# SHA256SUMS is not evidence: it lists manifest.json, so the manifest cannot record it.
EVIDENCE_FILES = ("patch.diff", "verify.json", *REPORT_FILES, "build.log")
SUMS_FILE = "SHA256SUMS"
# Written into builds/<id>/ but never published: the log names this machine's paths, and
# verify.json's verdicts are in the manifest and the reports.
UNPUBLISHED_FILES = ("build.log", "verify.json")


def sums_text(
    directory: Path, names: Iterable[str], known: Mapping[str, str] | None = None
) -> str:
    """SHA256SUMS as ``sha256sum`` writes it, for ``names`` in ``directory``, sorted; a file
    whose sha256 is ``known`` (just checked by the caller) is not read again."""
    known = known or {}
    return "".join(
        f"{known.get(name) or sha256_file(directory / name)}  {name}\n"
        for name in sorted(set(names))
    )


def published_names(directory: Path) -> list[str]:
    """Every file of a build directory that is published, SHA256SUMS itself aside: what
    SHA256SUMS lists (issue 20: every published file, manifest.json and the kit too)."""
    return sorted(
        path.name for path in directory.iterdir()
        if path.is_file() and not path.name.startswith(".")
        and path.name not in (SUMS_FILE, *UNPUBLISHED_FILES)
    )


def write(
    builds_dir: Path,
    name: str,
    tree: SourceTree,
    patch: PatchResult,
    result: BuildResult,
    reports: tuple[VerifyReport, ...],
    *,
    force: bool,
    inputs: dict[str, Any] | None = None,
) -> BuildOutput:
    """Write everything to a temporary directory, then rename it to builds/<name>."""
    target = check_target(builds_dir, name, force)
    builds_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=runs.tagged(f".{name}.staging-"), dir=builds_dir))
    try:
        for artifact in result.artifacts:
            dest = staging / artifact.file_name
            shutil.copy2(artifact.path, dest)
            if sha256_file(dest) != artifact.sha256:
                raise PublishError(f"{dest.name} changed while being copied")
        (staging / "patch.diff").write_text(patch.diff)
        verify_json = {
            "passed": all(r.passed for r in reports),
            "platforms": [r.to_dict() for r in reports],
        }
        (staging / "verify.json").write_text(json.dumps(verify_json, indent=2) + "\n")
        (staging / HTML_FILE).write_text(html_report(reports), encoding="utf-8")
        (staging / MARKDOWN_FILE).write_text(markdown_report(reports), encoding="utf-8")
        if result.log_path.is_file():
            shutil.copy2(result.log_path, staging / "build.log")
        data = manifest(tree, patch, result, reports, inputs)
        data["attestations"] = write_attestations(staging, tree, patch, result, data)
        data["reports"] = [
            {"file": file, "sha256": sha256_file(staging / file)} for file in REPORT_FILES
        ]
        # what an identical rebuild re-checks before it answers with this build
        data["evidence"] = {file: sha256_file(staging / file) for file in EVIDENCE_FILES
                            if (staging / file).is_file()}
        (staging / "manifest.json").write_text(json.dumps(data, indent=2) + "\n")
        checked = {artifact.file_name: artifact.sha256 for artifact in result.artifacts}
        (staging / SUMS_FILE).write_text(
            sums_text(staging, published_names(staging), checked)
        )
        staging.chmod(0o755)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuildOutput(target, data)


def json_text(data: Any) -> str:
    """A JSON file as builds write them (manifest.json, provenance.json): two-space indent and a
    final newline. Reading one and writing it with this gives the same bytes back."""
    return json.dumps(data, indent=2) + "\n"


def kit_provenance(statement: Mapping[str, Any], kit_sha256: str | None) -> str:
    """provenance.json's text with ``kit.tar.gz`` as its last subject at ``kit_sha256`` (none
    when None): how ``longcert kit`` writes it, and how publish tells one that differs only
    in its kit."""
    return json_text(provenance.with_subject(statement, KIT_ARCHIVE, kit_sha256))


def record_kit(build_dir: Path, checked: Mapping[str, str] | None = None) -> None:
    """After ``longcert kit`` put kit.tar.gz in place: provenance.json names it as a subject,
    manifest.json records it (file, sha256, size) and provenance.json's new sha256, and
    SHA256SUMS is written again over every published file; publish refuses a kit that is not
    recorded so everywhere.

    Each file is written through a temporary file renamed into place, in this order, so that a
    stop between any two leaves a build publish refuses in one line saying to run `longcert
    kit` again (which can, see :func:`longcert.publish.load_build` ``kit_rewrite``):
    provenance.json first (manifest.json still records the old one), then manifest.json (the
    kit and the provenance together, in one write), SHA256SUMS last (it lists them all).
    ``checked``: the sha256 of the build's files as loading the build checked them, so a file
    changed since is not blessed by the new SHA256SUMS (the files written here are read anew).
    """
    archive = build_dir / KIT_ARCHIVE
    kit_sha256 = sha256_file(archive)
    manifest_path = build_dir / "manifest.json"
    provenance_path = build_dir / provenance.PROVENANCE_FILE
    data = json.loads(manifest_path.read_text())
    statement = kit_provenance(json.loads(provenance_path.read_text()), kit_sha256)
    runs.write_atomic(provenance_path, statement)
    data["kit"] = {"file": KIT_ARCHIVE, "sha256": kit_sha256, "size": archive.stat().st_size}
    data["attestations"]["provenance"]["sha256"] = hashlib.sha256(statement.encode()).hexdigest()
    runs.write_atomic(manifest_path, json_text(data))
    fresh = ("manifest.json", KIT_ARCHIVE, SUMS_FILE, provenance.PROVENANCE_FILE)
    known = {name: digest for name, digest in (checked or {}).items() if name not in fresh}
    runs.write_atomic(build_dir / SUMS_FILE,
                      sums_text(build_dir, published_names(build_dir), known))


def write_attestations(
    staging: Path,
    tree: SourceTree,
    patch: PatchResult,
    result: BuildResult,
    data: dict[str, Any],
) -> dict[str, Any]:
    """Each binary's SBOM and the build's provenance.json, written into ``staging``; what the
    manifest records of them (file names and sha256)."""
    recorded = dict(result.modules)
    sboms = []
    for artifact in result.artifacts:
        document = sbom.spdx_document(
            file_name=artifact.file_name,
            sha256=artifact.sha256,
            platform=artifact.platform,
            tag=tree.tag,
            commit=tree.commit,
            remote=tree.remote,
            info=sbom.parse_go_version_m(recorded.get(artifact.platform, "")),
            created=tree.commit_time,
        )
        path = staging / (artifact.file_name + sbom.SBOM_SUFFIX)
        path.write_text(json.dumps(document, indent=2) + "\n")
        sboms.append(
            {"platform": artifact.platform, "file": path.name, "sha256": sha256_file(path)}
        )
    verification = data["verification"]
    statement = provenance.statement(
        subjects=[(a.file_name, a.sha256) for a in result.artifacts],
        external=data.get("inputs") or {},
        remote=tree.remote,
        tag=tree.tag,
        commit=tree.commit,
        patch_sha256=patch.diff_sha256,
        image=data["image"],
        go=data["go"],
        make_argv=result.argv,
        make_environment=result.environment,
        verification={
            "passed": verification["passed"],
            "platforms": {p: v["status"] for p, v in verification["platforms"].items()},
        },
        verify_sha256=sha256_file(staging / "verify.json"),
        invocation=runs.current_id() or "",
        environ=os.environ,
    )
    path = staging / provenance.PROVENANCE_FILE
    path.write_text(json.dumps(statement, indent=2) + "\n")
    return {
        "sbom": sboms,
        "provenance": {"file": path.name, "sha256": sha256_file(path)},
    }


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename staging to target; an existing target is moved aside first and dropped after.

    The two renames run with Ctrl-C/SIGTERM/SIGHUP held back, so a stop cannot fall between
    them; after a kill -9 there, the sweep of the dead run renames the old build back. The
    aside name carries the run id, so two runs never share it."""
    old = None
    with runs.signals_deferred():
        if target.exists():
            old = runs.aside_path(target)
            target.rename(old)
        try:
            staging.rename(target)
        except OSError as exc:
            if old is not None:
                old.rename(target)
            raise PublishError(f"cannot move the build into {target}: {exc}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
