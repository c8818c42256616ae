"""`invoke verify` on binaries built from the stand-in trees (real engine, real certificates)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from longcert.package import build_id
from tests.cli import ROOT
from tests.fixtures import standin
from tests.integration.conftest import Cli, RealBuild, go_flags

pytestmark = pytest.mark.docker

TAG = "v1.28.7"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verify-builds")


def built(cli: Cli, repo: Path, builds: Path, years: int, ca_years: int,
          *extra: str) -> Path:
    platforms = ("linux/amd64",)
    if "--platforms" in extra:
        platforms = tuple(extra[extra.index("--platforms") + 1].split(","))
    out = builds / build_id(TAG, years, ca_years, platforms=platforms)
    if not out.exists():
        result = cli("build", "--version", TAG, "--years", str(years), "--ca-years",
                     str(ca_years), "--repo", str(repo), "--builds-dir", str(builds),
                     *go_flags(repo, TAG), *extra)
        assert result.returncode == 0, result.stderr
    return out


def test_patched_binary_passes_with_table_and_json(cli: Cli, standin_repo: Path, builds: Path,
                                                   tmp_path: Path) -> None:
    out = built(cli, standin_repo, builds, 10, 10)
    report_path = tmp_path / "report.json"
    result = cli("verify", "--binary", str(out / "kubeadm-linux-amd64"), "--years", "10",
                 "--json", str(report_path))
    assert result.returncode == 0, result.stderr
    # version from the build's manifest.json; the verdict first and last, then per scenario a
    # table of every file with years, days, expected and issuer (issue 19)
    lines = result.stdout.splitlines()
    verdict = f"passed: {TAG}, leaf 10y, CA 10y; linux/amd64 verified"
    assert verdict in lines[:3] and verdict in lines[-3:], result.stdout
    assert f"linux/amd64: verified (native), kubeadm {TAG}" in result.stdout
    for header in ("file", "years", "days", "expected", "issuer"):
        assert header in result.stdout
    assert re.search(r"pki/apiserver\.crt +10\.0 +3650 +3650 +ok +CN=kuber", result.stdout)
    assert re.search(r"  init-renew: \d+ checked, all ok", result.stdout)
    data = json.loads(report_path.read_text())
    assert data["status"] == "verified"
    assert data["reported_version"] == TAG
    assert {c["stage"] for c in data["checks"]} == {"init", "init-renew"}


def test_stock_binary_fails_listing_every_one_year_file(cli: Cli, standin_repo: Path,
                                                       builds: Path) -> None:
    stock = built(cli, standin_repo, builds, 1, 10)  # 1y/10y is upstream: nothing patched
    assert (stock / "patch.diff").read_text() == ""
    result = cli("verify", "--binary", str(stock / "kubeadm-linux-amd64"), "--years", "10",
                 "--version", TAG)
    assert result.returncode == 8
    assert "Traceback" not in result.stderr
    for name in ("pki/apiserver.crt", "pki/apiserver-kubelet-client.crt",
                 "pki/front-proxy-client.crt", "pki/etcd/server.crt", "pki/etcd/peer.crt",
                 "pki/etcd/healthcheck-client.crt", "pki/apiserver-etcd-client.crt",
                 "admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf"):
        assert f"linux/amd64: {name}: valid 365.0 days, expected 3650" in result.stderr, name


def test_ca_left_at_ten_years_fails_on_leaf_outliving_ca(cli: Cli, standin_repo: Path,
                                                        tmp_path: Path) -> None:
    patches = tmp_path / "patches"
    patches.mkdir()
    data = yaml.safe_load((ROOT / "patches/e3-certificate-validity.yaml").read_text())
    data["edits"] = [e for e in data["edits"] if e["governs"] == "leaf"]  # CA site left alone
    (patches / "leaf-only.yaml").write_text(yaml.safe_dump(data))
    result = cli("compile", "--version", TAG, "--years", "100", "--ca-years", "100",
                 "--repo", str(standin_repo), "--patches-dir", str(patches), "--keep-worktree",
                 *go_flags(standin_repo, TAG))
    assert result.returncode == 0, result.stderr
    binary = next(line.split()[1] for line in result.stdout.splitlines()
                  if line.startswith("linux/amd64 "))
    verdict = cli("verify", "--binary", binary, "--years", "100", "--ca-years", "100",
                  "--version", TAG)  # a worktree's binary: no manifest.json says its tag
    assert verdict.returncode == 8
    assert "linux/amd64: pki/apiserver.crt: leaf outlives its CA" in verdict.stderr
    assert "pki/ca.crt: valid 3650.0 days, expected 36500" in verdict.stderr


def test_arm64_build_is_executed_through_emulation(real_build: RealBuild) -> None:
    out = real_build.path  # the session's one multi-platform build (qemu runs once)
    assert (out / "kubeadm-linux-arm64").read_bytes()[18] == 183  # e_machine EM_AARCH64
    manifest = json.loads((out / "manifest.json").read_text())
    arm = manifest["verification"]["platforms"]["linux/arm64"]
    assert arm["status"] == "verified"
    assert arm["executed_with"] == "qemu-aarch64-static"
    assert arm["certificates_checked"] >= 14
    report = json.loads((out / "verify.json").read_text())
    arm_checks = next(p for p in report["platforms"] if p["platform"] == "linux/arm64")["checks"]
    assert all(c["ok"] for c in arm_checks)
    assert any(c["file"] == "pki/apiserver.crt" and c["expected_days"] == 7 * 365
               for c in arm_checks)


def test_windows_binary_is_header_checked_never_verified(cli: Cli,
                                                         real_build: RealBuild) -> None:
    out = real_build.path
    manifest = json.loads((out / "manifest.json").read_text())
    win = manifest["verification"]["platforms"]["windows/amd64"]
    assert win["status"] == "not-executed"
    assert win["header"] == "PE amd64"
    result = cli("verify", "--binary", str(out / "kubeadm-windows-amd64.exe"), "--years", "7",
                 "--version", standin.DEMO_TAG)
    assert result.returncode == 8
    assert "nothing is verified" in result.stderr


def test_a_binary_that_is_not_kubeadm_is_named_so(cli: Cli, tmp_path: Path) -> None:
    """An executable that answers no kubeadm version is "not kubeadm", not "pass --version"."""
    other = tmp_path / "ls"
    shutil.copy2("/bin/ls", other)
    result = cli("verify", "--binary", str(other), "--years", "10", "--version", TAG)
    assert result.returncode == 8, result.stderr
    assert f"{other} is not kubeadm: `ls version -o json` answered no kubeadm version" in (
        result.stderr)
    assert "pass a kubeadm binary to --binary" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # and without --version, beside no manifest.json: refused before anything runs
    unsaid = cli("verify", "--binary", str(other), "--years", "10")
    assert unsaid.returncode == 2, unsaid.stderr
    assert "--version is required: nothing beside" in unsaid.stderr
