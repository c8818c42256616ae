"""`invoke ca` + `invoke verify --ca-dir`, and `invoke renew-check`, on every era's stand-in
builds (the session's, era_build: the 100y builds and the stock-valued 1y/10y ones)."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest
import yaml

from longcert import ca, verify
from longcert.versions import KubeVersion
from tests import node_harness
from tests.cli import run_invoke
from tests.fixtures import standin
from tests.integration.conftest import EraBuilds

pytestmark = pytest.mark.docker

ERAS = [t for t in standin.STANDIN_TAGS if t not in ("v1.9.3", standin.NEWEST_TAG)]
PATCHED = (100, 100)  # the era builds renew-check renews with and the CA tests check
STOCK = (1, 10)  # upstream's own values: the "stock" kubeadm that made the cluster's PKI


def _invoke(*args: str, cwd: Path) -> tuple[int, str, str]:
    result = run_invoke(*args, cwd=cwd, timeout=600, env={"LONGCERT_CACHE_DIR": str(cwd / "c")})
    print(result.stdout[-6000:], result.stderr[-3000:])
    return result.returncode, result.stdout, result.stderr


# Every era with its 100-year build; the newest minor (no patch set of its own, Go 1.27.1) with
# the 15/20-year build the session already makes for it (test_newest_minor, the kit tests).
EVERY_ERA = [(tag, "stock", PATCHED) for tag in ERAS] + [(standin.NEWEST_TAG, "auto", (15, 20))]


@pytest.mark.parametrize(("tag", "stock_image", "patched"), EVERY_ERA)
def test_own_ca_signs_every_leaf_of_every_era(tag: str, stock_image: str,
                                              patched: tuple[int, int], era_build: EraBuilds,
                                              tmp_path: Path) -> None:
    binary = era_build(tag, *patched) / "kubeadm-linux-amd64"
    ca_dir = tmp_path / "pki"
    code, _, err = _invoke("ca", "--ca-years", "100", "--out", str(ca_dir), "--version", tag,
                           cwd=tmp_path)
    assert code == 0, err
    before = ca.checksums(ca_dir)
    code, out, err = _invoke("verify", "--binary", str(binary), "--years", str(patched[0]),
                             "--ca-years", "100", "--ca-dir", str(ca_dir),
                             "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    assert code == 0, err
    assert ca.checksums(ca_dir) == before
    report = json.loads((tmp_path / "r.json").read_text())
    serials = {f"pki/{name}.crt": format(verify.serial_number(cert), "x")
               for name, cert in ca.load_ca_dir(ca_dir, 1).certs.items()}
    version = KubeVersion.parse(tag)
    leaves = [c for c in report["checks"] if c["kind"] == "leaf"]
    assert {c["file"] for c in leaves if c["stage"] == "init"} >= (
        {f"pki/{n}.crt" for n in verify.expected_certs(version) if n not in verify.CA_CERTS}
        | set(verify.expected_kubeconfigs(version)))
    assert all(c["ok"] for c in report["checks"])
    for check in report["checks"]:
        if check["kind"] == "ca":
            assert check["serial"] == serials[check["file"]], check  # the given CA, kept
    assert "PRIVATE KEY" not in out + err


def test_ecdsa_ca_where_kubeadm_has_encryption_algorithm(era_build: EraBuilds,
                                                         tmp_path: Path) -> None:
    tag = next(t for t in ERAS if t.startswith("v1.33."))
    binary = era_build(tag, *PATCHED) / "kubeadm-linux-amd64"
    code, _, err = _invoke("ca", "--ca-years", "100", "--out", str(tmp_path / "ec"),
                           "--algorithm", "ecdsa", "--version", tag, cwd=tmp_path)
    assert code == 0, err
    code, _, err = _invoke("verify", "--binary", str(binary), "--years", "100",
                           "--ca-dir", str(tmp_path / "ec"), cwd=tmp_path)
    assert code == 0, err


def test_a_ca_shorter_than_the_leaves_fails_and_is_left_alone(era_build: EraBuilds,
                                                              tmp_path: Path) -> None:
    binary = era_build(ERAS[-1], *PATCHED) / "kubeadm-linux-amd64"
    ca.make_ca_dir(tmp_path / "short", 50)
    before = ca.checksums(tmp_path / "short")
    code, _, err = _invoke("verify", "--binary", str(binary), "--years", "100",
                           "--ca-dir", str(tmp_path / "short"), cwd=tmp_path)
    assert code == 2
    assert "shorter than the asked leaf validity of 100 years" in err
    assert err.strip().count("\n") == 0
    assert ca.checksums(tmp_path / "short") == before


def _days_left(seen: dict[str, str], now: datetime) -> float:
    ends = datetime.strptime(seen["not_after"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (ends - now).total_seconds() / 86400


def stock_cluster(engine: docker.DockerClient, binary: Path, tag: str, etc: Path) -> Path:
    """/etc/kubernetes as a stock kubeadm of ``tag`` leaves it: every certificate and
    kubeconfig from the init phases, and the kube-apiserver manifest naming the version."""
    version = KubeVersion.parse(tag)
    work = etc.parent / "stock-run"
    (work / "bin").mkdir(parents=True)
    shutil.copy2(binary, work / "bin" / "kubeadm")
    (work / "kubeadm.yaml").write_text(verify.kubeadm_config(version))
    etc.mkdir()
    for argv in verify.generate_commands(version, "/cfg/kubeadm.yaml"):
        engine.containers.run(
            "longcert/debian-base:bookworm", argv[1:], entrypoint=["/longcert-test/kubeadm"],
            remove=True, network_mode="none", user=f"{os.getuid()}:{os.getgid()}",
            volumes={str(work / "bin"): {"bind": "/longcert-test", "mode": "ro"},
                     str(work / "kubeadm.yaml"): {"bind": "/cfg/kubeadm.yaml", "mode": "ro"},
                     str(etc): {"bind": "/etc/kubernetes", "mode": "rw"}})
    if (version.major, version.minor) >= (1, 17):
        # kubeadm's kubelet-finalize phase (v1.17+) points kubelet.conf at the kubelet's rotated
        # certificate; before, an init node's kubelet.conf embeds it.
        node_harness.point_kubelet_conf_at_pem(etc)
    (etc / "manifests").mkdir()
    (etc / "manifests" / "kube-apiserver.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-apiserver"},
        "spec": {"containers": [{"name": "kube-apiserver",
                                 "image": f"registry.k8s.io/kube-apiserver:{tag}"}]}}))
    return etc


@pytest.mark.parametrize(("tag", "stock_image", "patched_years"), EVERY_ERA)
def test_renew_check_of_a_stock_cluster_of_every_era(tag: str, stock_image: str,
                                                     patched_years: tuple[int, int],
                                                     era_build: EraBuilds,
                                                     engine: docker.DockerClient,
                                                     tmp_path: Path) -> None:
    # the stock-image builds carry Go 1.24.11, below v1.38's go.mod floor: its stock-valued
    # build uses the tree's own Go instead
    stock = era_build(tag, *STOCK, image=stock_image) / "kubeadm-linux-amd64"
    patched = era_build(tag, *patched_years) / "kubeadm-linux-amd64"
    years = patched_years[0]
    etc = stock_cluster(engine, stock, tag, tmp_path / "etc")
    before = ca.checksums(etc)
    version = KubeVersion.parse(tag)
    args = ["renew-check", "--binary", str(patched), "--etc", str(etc), "--years", str(years),
            "--json", str(tmp_path / "r.json")]
    config = tmp_path / "cluster.yaml"
    if verify.has_validity_config(version):
        # What every v1.31+ cluster's kubeadm-config stores pulls the renewal back to one year
        # (the patched build is not --pin-validity): the dry run says so ...
        code, _, err = _invoke(*args, cwd=tmp_path)
        assert code == 8
        assert ("pki/apiserver.crt: ends in 365 days, shorter than the asked "
                f"{365 * years}") in err
        # ... and passes with the ConfigMap edited as the kit says.
        config.write_text(verify.kubeadm_config(version, stored_periods=True).replace(
            f"{verify.STORED_LEAF_HOURS}h0m0s", f"{years * 8760}h0m0s"))
        args += ["--config", str(config)]
    code, out, err = _invoke(*args, cwd=tmp_path)
    assert code == 0, err
    assert ca.checksums(etc) == before
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and report["pki_version"] == tag
    files = {f["file"]: f for f in report["files"]}
    renewed = [f"pki/{n}.crt" for n in verify.expected_certs(version)
               if n not in verify.CA_CERTS] + [
        c for c in verify.expected_kubeconfigs(version)
        if c != "kubelet.conf" or (version.major, version.minor) < (1, 15)]
    assert {f for f, row in files.items() if row["renewed"]} == set(renewed)
    now = datetime.now(UTC)
    for name in renewed:
        row = files[name]
        assert abs(_days_left(row["before"], now) - 365) < 1, row  # the stock one-year leaf
        assert abs(_days_left(row["after"], now) - 365 * years) < 1, row  # now the asked years
        assert row["after"]["signer"] == row["before"]["signer"] != ""
        assert row["after"]["sans"] == row["before"]["sans"]
    for name in verify.CA_CERTS:
        if f"pki/{name}.crt" in files:
            assert files[f"pki/{name}.crt"]["after"] == files[f"pki/{name}.crt"]["before"]
    assert "renew-check of" in out and "passed" in out


def test_renew_check_refuses_a_cluster_of_another_minor(era_build: EraBuilds,
                                                        engine: docker.DockerClient,
                                                        tmp_path: Path) -> None:
    old = next(t for t in ERAS if t.startswith("v1.28."))
    new = next(t for t in ERAS if t.startswith("v1.33."))
    etc = stock_cluster(engine, era_build(old, *STOCK, image="stock") / "kubeadm-linux-amd64",
                        old, tmp_path / "etc")
    before = ca.checksums(etc)
    code, _, err = _invoke("renew-check", "--binary",
                           str(era_build(new, *PATCHED) / "kubeadm-linux-amd64"),
                           "--etc", str(etc), "--years", "100", cwd=tmp_path)
    assert code == 2
    assert f"is a v1.28 cluster ({old}, from manifests/kube-apiserver.yaml) but the binary is " \
           f"kubeadm {new}" in err
    assert err.strip().count("\n") == 0
    assert ca.checksums(etc) == before
