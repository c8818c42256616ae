"""`invoke build` end to end on every era's stand-in tag, through a real Docker engine."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import docker
import pytest
import yaml

from longcert import build, verify
from longcert.package import build_id
from longcert.versions import KubeVersion
from tests.attestation_check import statement_problems
from tests.cli import ROOT
from tests.fixtures import standin
from tests.integration.conftest import (
    TEST_GO,
    TEST_IMAGE,
    Cli,
    EraBuilds,
    go_flags,
)
from tests.sbom_check import sbom_problems

pytestmark = pytest.mark.docker

# One tag per era and sub-era the stand-in covers (v1.9.3 only exists for tag suggestions).
ERA_TAGS = [t for t in standin.STANDIN_TAGS if t != "v1.9.3"]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def generate_with(engine: docker.DockerClient, binary: Path, version: KubeVersion,
                  scratch: Path) -> Path:
    """Independently of longcert.verify's runner: run the binary in ``scratch`` (a test's own
    temporary directory), return /etc/kubernetes."""
    (scratch / "bin").mkdir(parents=True)
    shutil.copy2(binary, scratch / "bin" / "kubeadm")
    (scratch / "kubeadm.yaml").write_text(verify.kubeadm_config(version))
    (scratch / "etc").mkdir()
    for argv in verify.generate_commands(version, "/cfg/kubeadm.yaml"):
        engine.containers.run(
            TEST_IMAGE, argv[1:], entrypoint=["/longcert-test/kubeadm"], remove=True,
            network_mode="none",
            volumes={str(scratch / "bin"): {"bind": "/longcert-test", "mode": "ro"},
                     str(scratch / "kubeadm.yaml"): {"bind": "/cfg/kubeadm.yaml", "mode": "ro"},
                     str(scratch / "etc"): {"bind": "/etc/kubernetes", "mode": "rw"}})
    return scratch / "etc"


def read_validities(kube_dir: Path) -> dict[str, float]:
    """Days of validity of every certificate: pki/*.crt and kubeconfig client certs."""
    days: dict[str, float] = {}
    for crt in (kube_dir / "pki").rglob("*.crt"):
        cert = verify.load_certificate(crt.read_bytes())
        days[crt.relative_to(kube_dir).as_posix()] = (
            cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 86400
    for conf in kube_dir.glob("*.conf"):
        user = yaml.safe_load(conf.read_text())["users"][0]["user"]
        cert = verify.load_certificate(base64.b64decode(user["client-certificate-data"]))
        days[conf.name] = (cert.not_valid_after_utc - cert.not_valid_before_utc
                           ).total_seconds() / 86400
    return days


# v1.38.0 (newer than every patch set, Go 1.27.1) has its own test, test_newest_minor.
# The stock-image builds carry upstream's own values (1y leaves, 10y CAs): the renew-check tests
# make a cluster's PKI with them (a "stock" kubeadm) and renew it with the 100y builds.
EVERY_ERA = [(tag, 1, 10, "stock") for tag in ERA_TAGS if tag != standin.NEWEST_TAG] + [
    (tag, 100, 100, "auto") for tag in ERA_TAGS if tag != standin.NEWEST_TAG]


@pytest.mark.parametrize(("tag", "years", "ca_years", "image"), EVERY_ERA)
def test_build_every_era(tag: str, years: int, ca_years: int, image: str,
                         era_build: EraBuilds, engine: docker.DockerClient,
                         tmp_path: Path) -> None:
    """Every era twice: with a stock-shaped golang image (no rsync) from the local registry
    that stands in for Docker Hub, pulled through --registry-mirror; and with the local
    builder image (Go TEST_GO, asked with --go-version where the tree names another Go: a Go
    above the minor's ceiling is never chosen automatically, and the build warns of it). The
    builds are the session's (era_build), shared with the kit, ca and renew-check tests."""
    out = era_build(tag, years, ca_years, image)
    stdout = era_build.stdout(out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["REPORT.md", "SHA256SUMS", "build.log", "kubeadm-linux-amd64",
                     "kubeadm-linux-amd64.spdx.json", "manifest.json", "patch.diff",
                     "provenance.json", "report.html", "verify.json"]
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, check=True)
    # the SBOM passes pyspdxtools and the NTIA minimum elements (issue 20), every era
    assert sbom_problems(out / "kubeadm-linux-amd64.spdx.json") == []
    assert statement_problems(json.loads((out / "provenance.json").read_text())) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kubernetes"]["tag"] == tag
    assert manifest["validity"] == {"leaf_years": years, "ca_years": ca_years,
                                    "leaf_hours": years * 8760, "ca_hours": ca_years * 8760}
    assert manifest["verification"]["passed"] is True
    native = manifest["verification"]["platforms"]["linux/amd64"]
    assert native["status"] == "verified"
    assert native["reported_version"] == tag
    report = json.loads((out / "verify.json").read_text())
    assert report["passed"] is True
    stages = {c["stage"] for c in report["platforms"][0]["checks"]}
    version = KubeVersion.parse(tag)
    assert ("init-renew" in stages) is (verify.renew_command(version, "/c") is not None)
    assert "==> verify" in stdout and "kubeadm-linux-amd64" in stdout

    # Read every certificate the packaged binary makes, independently of longcert.verify.
    days = read_validities(generate_with(engine, out / "kubeadm-linux-amd64", version,
                                         tmp_path / "pki"))
    expected_files = {f"pki/{n}.crt" for n in verify.expected_certs(version)} | set(
        verify.expected_kubeconfigs(version))
    assert expected_files <= set(days)
    for name, value in days.items():
        want = (ca_years if name.removeprefix("pki/").removesuffix(".crt") in verify.CA_CERTS
                else years) * 365
        assert abs(value - want) <= 1, (name, value, want)


def test_platforms_without_linux_amd64(cli: Cli, standin_repo: Path, tmp_path: Path) -> None:
    """linux/amd64 is built to verify, but only the asked platforms are packaged. (linux/arm64
    under qemu is the session's one multi-platform build: test_verify_cli, test_publish.)"""
    tag = standin.DEMO_TAG
    result = cli("build", "--version", tag, "--years", "5", "--repo", str(standin_repo),
                 "--platforms", "windows/amd64")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "builds" / build_id(tag, 5, 10, platforms=("windows/amd64",))
    assert (out / "kubeadm-windows-amd64.exe").read_bytes()[:2] == b"MZ"
    assert not (out / "kubeadm-linux-amd64").exists()
    sums = (out / "SHA256SUMS").read_text()
    assert "kubeadm-windows-amd64.exe" in sums and "linux-amd64" not in sums
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["platforms"]["linux/amd64"]["status"] == "verified"
    assert manifest["verification"]["platforms"]["windows/amd64"]["status"] == "not-executed"


def _retagged_repo(standin_repo: Path, tmp_path: Path, base_tag: str, new_tag: str,
                   path: str, old: str, new: str) -> Path:
    repo = tmp_path / "edited"
    subprocess.run(["git", "clone", "-q", str(standin_repo), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", base_tag], check=True)
    target = repo / path
    target.write_text(target.read_text().replace(old, new))
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qam", new_tag], check=True)
    subprocess.run([*GIT, "-C", str(repo), "tag", "-a", new_tag, "-m", new_tag], check=True)
    return repo


def test_anchor_that_no_longer_matches_stops_the_build(cli: Cli, standin_repo: Path,
                                                      tmp_path: Path) -> None:
    base = next(t for t in ERA_TAGS if t.startswith("v1.28."))
    repo = _retagged_repo(standin_repo, tmp_path, base, "v1.28.99",
                          "cmd/kubeadm/app/constants/constants.go",
                          "CertificateValidity = time.Hour * 24 * 365",
                          "CertificateValidity = 365 * 24 * time.Hour")
    result = cli("build", "--version", "v1.28.99", "--repo", str(repo),
                 *go_flags(standin_repo, base))
    assert result.returncode == 6, result.stderr
    line = result.stderr.strip()
    assert "v1.28.99: cmd/kubeadm/app/constants/constants.go" in line
    assert "'CertificateValidity = time.Hour * 24 * 365' matched 0 times" in line
    assert not (tmp_path / "builds").exists()


def test_patch_set_that_misses_a_site_fails_verification(cli: Cli, standin_repo: Path,
                                                        tmp_path: Path) -> None:
    tag = next(t for t in ERA_TAGS if t.startswith("v1.28."))
    patches = tmp_path / "patches"
    patches.mkdir()
    bundled = yaml.safe_load((ROOT / "patches/e3-certificate-validity.yaml").read_text())
    bundled["edits"] = [e for e in bundled["edits"] if e["governs"] == "ca"]  # leaf site missed
    (patches / "broken.yaml").write_text(yaml.safe_dump(bundled))
    result = cli("build", "--version", tag, "--years", "10", "--ca-years", "20",
                 "--repo", str(standin_repo), "--patches-dir", str(patches),
                 *go_flags(standin_repo, tag))
    assert result.returncode == 8, result.stderr
    assert "pki/apiserver.crt: valid 365.0 days, expected 3650" in result.stderr
    assert "admin.conf: valid 365.0 days" in result.stderr
    assert not (tmp_path / "builds").exists()
    # what failed is kept beside the log, for a look (and the workflow's failure upload)
    kept = re.search(r"kept (\S+\.verify\.json), (\S+\.patch\.diff), (\S+\.report\.html) "
                     r"for a look", result.stdout)
    assert kept is not None, result.stdout
    report = json.loads(Path(kept.group(1)).read_text())
    assert report["passed"] is False
    assert "client-go/util/cert/cert.go" in Path(kept.group(2)).read_text()  # the CA edit
    page = Path(kept.group(3)).read_text()  # the report to open, failures and all
    assert "FAILED" in page and 'data-label="pki/apiserver.crt"' in page


def test_missing_image_that_cannot_be_pulled(cli: Cli, standin_repo: Path,
                                             tmp_path: Path) -> None:
    result = cli("build", "--version", standin.DEMO_TAG, "--repo", str(standin_repo),
                 "--go-version", "1.24.11", "--image", "longcert-test/absent:{go_version}")
    assert result.returncode == 4, result.stderr
    assert "builder image longcert-test/absent:1.24.11 for Go 1.24.11" in result.stderr
    assert ("`longcert builder-image --go-version 1.24.11 --tag longcert-test/absent:1.24.11`"
            in result.stderr)
    assert "==> fetch" not in result.stdout  # refused before cloning
    assert not (tmp_path / "builds").exists()


def test_missing_tag_names_nearest(cli: Cli, standin_repo: Path) -> None:
    result = cli("fetch", "--version", "v1.9.5", "--repo", str(standin_repo))
    assert result.returncode == 5
    assert "tag v1.9.5 does not exist" in result.stderr
    assert "nearest tags: v1.9.4, v1.9.3" in result.stderr


def test_demo_runs_twice(cli: Cli, tmp_path: Path) -> None:
    for _ in range(2):
        result = cli("demo")
        assert result.returncode == 0, result.stderr
    out = tmp_path / "builds" / "demo" / build_id(standin.DEMO_TAG, 10, 10)
    assert json.loads((out / "manifest.json").read_text())["verification"]["passed"] is True


@pytest.mark.parametrize(("pin", "stored_leaf_days", "stored_ca_days"),
                         [(False, 365, 3650), (True, 20 * 365, 30 * 365)])
def test_v131_config_override_both_behaviours(pin: bool, stored_leaf_days: int,
                                               stored_ca_days: int, cli: Cli,
                                               standin_repo: Path, tmp_path: Path) -> None:
    """Upstream: a config storing 8760h (as every existing cluster's ConfigMap does) wins, so a
    renewal there still gives one year. --pin-validity: the patched durations win."""
    tag = next(t for t in ERA_TAGS if t.startswith("v1.33."))
    result = cli("build", "--version", tag, "--years", "20", "--ca-years", "30", "--repo",
                 str(standin_repo), *go_flags(standin_repo, tag),
                 *(["--pin-validity"] if pin else []))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "builds" / build_id(tag, 20, 30, pinned=pin)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config_override"].startswith("ignored" if pin else "honoured")
    assert ("cmd/kubeadm/app/util/pkiutil/pki_helpers.go" in manifest["patch"]["files"]) is pin
    checks = json.loads((out / "verify.json").read_text())["platforms"][0]["checks"]
    by_stage: dict[str, set[tuple[str, int]]] = {}
    for check in checks:
        assert check["ok"], check
        by_stage.setdefault(check["stage"], set()).add((check["kind"], round(check["days"])))
    assert by_stage["init"] == {("leaf", 20 * 365), ("ca", 30 * 365)}
    assert by_stage["init-renew"] == {("leaf", 20 * 365)}
    assert by_stage["config-8760h-ecdsa"] == {("leaf", stored_leaf_days), ("ca", stored_ca_days)}
    assert by_stage["config-8760h-ecdsa-renew"] == {("leaf", stored_leaf_days)}


def test_newest_minor_builds_with_a_warning_and_its_newest_config_api(
        era_build: EraBuilds) -> None:
    """A minor newer than every patch set (v1.38.0, whose kubeadm knows the v1 config API) is
    tried with the newest set, warned about, and verified with the API the binary prints.
    (The session's build: the kit tests use it too.)"""
    tag = standin.NEWEST_TAG
    out = era_build(tag, 15, 20)
    assert f"warning: {tag} is newer than every patch set" in era_build.stdout(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["patch"]["set"] == "e4-validity-period"
    assert manifest["go"]["version"] == "1.27.1"  # the tree's .go-version, as upstream built it
    native = manifest["verification"]["platforms"]["linux/amd64"]
    assert native["config_api"] == "kubeadm.k8s.io/v1"
    assert native["config_api_source"] == "config print init-defaults"
    assert native["stored_config_checked"] > 0 and native["renewals_checked"] > 0


def test_tree_without_go_version_dotfile(cli: Cli, standin_repo: Path, tmp_path: Path,
                                        shared_cache: Path) -> None:
    """Some distribution imports drop .go-version: the Go comes from cross/VERSION and
    hack/lib/golang.sh gets it through GO_VERSION instead of reading the missing file."""
    repo = tmp_path / "nodot"
    subprocess.run(["git", "clone", "-q", str(standin_repo), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "v1.33.7"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "rm", "-q", ".go-version"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "import"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "tag", "-a", "v1.33.8", "-m", "v1.33.8"], check=True)
    # with longcert's default Go caches (the tests share one pair): this remote's own volumes
    result = cli("build", "--version", "v1.33.8", "--repo", str(repo),
                 env={"LONGCERT_BUILD_CACHE_VOLUME": "", "LONGCERT_MODULE_CACHE_VOLUME": ""})
    assert result.returncode == 0, result.stderr
    assert re.search(r"Go caches longcert-go-build-[0-9a-f]{12}, longcert-go-mod-[0-9a-f]{12} "
                     rf"\(remote {re.escape(str(repo))}\)", result.stdout), result.stdout
    manifest = json.loads(
        (tmp_path / "builds" / build_id("v1.33.8", 10, 10) / "manifest.json").read_text())
    assert manifest["go"]["wanted"] == {"version": TEST_GO,
                                        "source": "build/build-image/cross/VERSION"}
    assert manifest["go_caches"] == f"remote {repo}"
    # remembered in the cache directory, for `clean --go-caches` (its volumes and no others)
    used = re.search(r"Go caches (longcert-go-build-[0-9a-f]{12}), (longcert-go-mod-[0-9a-f]{12})",
                     result.stdout)
    assert used is not None
    assert set(used.groups()) <= build.noted_cache_volumes(shared_cache)


def test_an_identical_build_is_answered_from_the_existing_one(cli: Cli, standin_repo: Path,
                                                              tmp_path: Path) -> None:
    args = ("build", "--version", "v1.28.7", "--years", "6", "--repo", str(standin_repo),
            *go_flags(standin_repo, "v1.28.7"))
    assert cli(*args).returncode == 0
    out = tmp_path / "builds" / build_id("v1.28.7", 6, 10)
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout and "==> fetch" not in again.stdout
    # says so, and shows the build's artifacts (not an empty table)
    assert f"up to date {out}" in again.stdout and "built " not in again.stdout
    sha = json.loads((out / "manifest.json").read_text())["artifacts"][0]["sha256"]
    assert re.search(rf"kubeadm-linux-amd64 +\S+ MiB +{sha[:12]} +verified: leaf 6y, CA 10y",
                     again.stdout), again.stdout

    # The same name from another remote is another build: refused, never taken for this one.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", "--mirror", str(standin_repo), str(other)], check=True)
    different = cli("build", "--version", "v1.28.7", "--years", "6", "--repo", str(other),
                    *go_flags(standin_repo, "v1.28.7"))
    assert different.returncode == 9, different.stderr
    assert "already exists and is a different build: remote" in different.stderr

    # A binary changed after verification is not answered for.
    with (out / "kubeadm-linux-amd64").open("ab") as handle:
        handle.write(b"\0")
    changed = cli(*args)
    assert changed.returncode == 9, changed.stderr
    assert "kubeadm-linux-amd64 changed after verification" in changed.stderr


def test_pinned_and_multi_platform_builds_have_their_own_ids() -> None:
    assert build_id("v1.33.7", 10, 10, pinned=True) == "kubeadm-v1.33.7-leaf10y-ca10y-pinned"
    assert build_id("v1.33.7", 10, 10, platforms=("linux/arm64", "linux/amd64")) == (
        "kubeadm-v1.33.7-leaf10y-ca10y-linux-amd64.linux-arm64")


def test_a_build_from_nothing_is_the_build_from_warm_caches(
    cli: Cli, standin_repo: Path, tmp_path: Path, engine: docker.DockerClient,
    era_build: EraBuilds,
) -> None:
    """A --no-cache build (fresh Go cache volumes, removed afterwards) gives byte for byte the
    binaries, SBOMs, sums and patch diff of the same build made with the session's warm caches:
    nothing a cache holds reaches a binary."""
    tag = "v1.28.7"
    warm = era_build(tag, 100, 100)
    builds = tmp_path / "fresh"
    result = cli("build", "--version", tag, "--years", "100", "--ca-years", "100", "--repo",
                 str(standin_repo), "--no-cache", *go_flags(standin_repo, tag),
                 env={"LONGCERT_BUILDS_DIR": str(builds)})
    assert result.returncode == 0, result.stderr
    assert re.search(r"Go caches longcert-fresh-\S+-build, \S+ \(this build\)", result.stdout)
    outputs = []
    for out in (warm, builds / build_id(tag, 100, 100)):
        outputs.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(out.iterdir())
                        # (SHA256SUMS lists manifest.json too, which records the time)
                        if p.name.startswith("kubeadm-") or p.name == "patch.diff"})
    assert outputs[0] == outputs[1]
    assert "kubeadm-linux-amd64.spdx.json" in outputs[0]
    assert not [v.name for v in engine.volumes.list() if v.name.startswith("longcert-fresh-")]


def test_an_identical_build_is_not_reused_once_its_tag_moved(cli: Cli, standin_repo: Path,
                                                             tmp_path: Path) -> None:
    """Reuse answers only while the tag still names the recorded commit (issue 22)."""
    tag = standin.DEMO_TAG
    repo = tmp_path / "moving"
    subprocess.run(["git", "clone", "-q", str(standin_repo), str(repo)], check=True)
    args = ("build", "--version", tag, "--years", "6", "--repo", str(repo))
    assert cli(*args).returncode == 0
    again = cli(*args)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr
    subprocess.run([*GIT, "-C", str(repo), "checkout", "-q", tag], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "moved"],
                   check=True)
    subprocess.run([*GIT, "-C", str(repo), "tag", "-f", "-a", tag, "-m", tag], check=True,
                   capture_output=True)
    moved = cli(*args)
    assert moved.returncode == 9, moved.stdout + moved.stderr
    assert "but the tag now names" in moved.stderr and "the tag moved" in moved.stderr
    assert "--force" in moved.stderr
