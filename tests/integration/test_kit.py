"""`invoke kit` on every era's stand-in build (the session's builds, era_build), and the kit's
renew.sh run: --dry-run on the host, for real as root in a container on the build's own PKI."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest
import yaml

from longcert import kit, verify
from longcert.versions import KubeVersion
from tests.attestation_check import statement_problems
from tests.cli import run_invoke
from tests.fixtures import standin
from tests.integration.conftest import TEST_IMAGE, EraBuilds

pytestmark = pytest.mark.docker

MIRROR = "registry.example.com/mirror"
ERAS = [t for t in standin.STANDIN_TAGS if t != "v1.9.3"]


def _years(tag: str) -> tuple[int, int]:
    """The session build each era's kit is made from (shared with test_pipeline)."""
    return (15, 20) if tag == standin.NEWEST_TAG else (100, 100)


def _copy_of_build(era_build: EraBuilds, tag: str, where: Path) -> Path:
    """A copy of the shared build under its own name (load_build checks the name)."""
    source = era_build(tag, *_years(tag))
    target = where / "builds" / source.name
    shutil.copytree(source, target)
    return target


def _sums(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _archived(archive: Path) -> dict[str, str]:
    sums = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None, member.name
            sums[member.name] = hashlib.sha256(handle.read()).hexdigest()
    return sums


def _kit(build: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_invoke("kit", "--build", str(build), *args, cwd=build.parent, env={},
                        timeout=600)
    print(result.stdout[-3000:], result.stderr[-3000:])
    return result


def _fake_node(root: Path, running: str) -> Path:
    """A /etc/kubernetes with the two static pod manifests renew.sh reads."""
    manifests = root / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / "kube-apiserver.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n"
        f"    - --advertise-address={verify.ADVERTISE_ADDRESS}\n"
        f"    image: registry.k8s.io/kube-apiserver:{running}\n")
    (manifests / "kube-controller-manager.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n"
        "    - kube-controller-manager\n"
        "    - --cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt\n"
        f"    image: registry.k8s.io/kube-controller-manager:{running}\n")
    return root


def _era_commands(tag: str) -> tuple[list[str], list[str]]:
    """What renew.sh --dry-run must print for the era, and what it must not."""
    minor = KubeVersion.parse(tag).minor
    if minor < 13:
        return (["kubeadm alpha phase certs all", "kubeadm alpha phase kubeconfig all",
                 "kubeadm config view",
                 "- --experimental-cluster-signing-duration=876000h0m0s"],
                ["certs renew", "init phase"])
    if minor < 15:
        return (["kubeadm alpha certs renew all", "kubeadm init phase kubeconfig all",
                 "kubeadm config view",
                 "- --experimental-cluster-signing-duration=876000h0m0s"],
                ["alpha phase", "kubeadm certs renew"])
    leaf = _years(tag)[0] * 8760
    return (["kubeadm certs renew all", f"- --cluster-signing-duration={leaf}h0m0s"],
            ["alpha", "phase", "config view"])


@pytest.mark.parametrize("tag", ERAS)
def test_kit_of_every_era(tag: str, era_build: EraBuilds, tmp_path: Path) -> None:
    build = _copy_of_build(era_build, tag, tmp_path)
    version = KubeVersion.parse(tag)
    before = _sums(build)
    manifest_before = json.loads((build / "manifest.json").read_text())
    result = _kit(build, "--image-repository", MIRROR)
    assert result.returncode == 0, result.stderr
    after = _sums(build)
    # the build's files stay as they were; manifest.json, provenance.json (a subject more)
    # and SHA256SUMS gain the kit (issue 20)
    recorded = ("manifest.json", "SHA256SUMS", "provenance.json")
    assert {k: v for k, v in after.items()
            if not k.startswith("kit/") and k != "kit.tar.gz" and k not in recorded} == {
        k: v for k, v in before.items() if k not in recorded}
    manifest_after = json.loads((build / "manifest.json").read_text())
    assert manifest_after.pop("kit") == {"file": "kit.tar.gz", "sha256": after["kit.tar.gz"],
                                         "size": (build / "kit.tar.gz").stat().st_size}
    assert manifest_after["attestations"]["provenance"] == {
        "file": "provenance.json", "sha256": after["provenance.json"]}
    manifest_after["attestations"]["provenance"] = manifest_before["attestations"]["provenance"]
    assert manifest_after == manifest_before
    statement = json.loads((build / "provenance.json").read_text())
    assert statement["subject"][-1] == {"name": "kit.tar.gz",
                                        "digest": {"sha256": after["kit.tar.gz"]}}
    assert statement_problems(statement) == []
    subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=build, check=True,
                   capture_output=True)
    assert f"{after['kit.tar.gz']}  kit.tar.gz" in (build / "SHA256SUMS").read_text()
    kit_dir = build / "kit"
    assert _archived(build / "kit.tar.gz") == {  # the kit as publish carries it
        k: v for k, v in after.items() if k.startswith("kit/")}
    names = {p.name for p in kit_dir.iterdir()}
    assert {"README.md", "renew.sh", "install.sh", "cluster-configuration.yaml", "rbac.yaml",
            "kubespray.yml"} <= names
    assert "kubeadm-config.sh" in names
    assert ("kubeadm-config-patch.yaml" in names) is (version.minor >= 31)

    # The cluster configuration in the API the binary itself printed (manifest.json), with that
    # API's field names (KitFacts' table, sources in longcert/kit/facts.py).
    manifest = json.loads((build / "manifest.json").read_text())
    api = manifest["verification"]["platforms"]["linux/amd64"]["config_api"]
    facts = kit.facts_for(version, api)
    config = yaml.safe_load((kit_dir / "cluster-configuration.yaml").read_text())
    assert config["apiVersion"] == api and config["kind"] == facts.cluster_kind
    assert config["imageRepository"] == MIRROR
    flag = facts.signing_flag.removeprefix("--")
    flat = facts.extra_args == "controllerManagerExtraArgs"
    extra = config[facts.extra_args] if flat else config["controllerManager"]["extraArgs"]
    assert (flag in extra) if isinstance(extra, dict) else (extra[0]["name"] == flag)
    binary = build / "kubeadm-linux-amd64"
    if verify.can_print_defaults(version):
        # ... and every top-level field is one this kubeadm prints in its own defaults.
        printed = subprocess.run([str(binary), "config", "print", "init-defaults"],
                                 capture_output=True, text=True, check=True).stdout
        cluster = next(d for d in yaml.safe_load_all(printed)
                       if d.get("kind") == "ClusterConfiguration")
        assert set(config) - {"certificateValidityPeriod", "caCertificateValidityPeriod"} <= set(
            cluster), (set(config), set(cluster))
        if facts.validity_fields:
            assert {"certificateValidityPeriod", "caCertificateValidityPeriod"} <= set(cluster)
    for name in names:
        text = (kit_dir / name).read_text()
        if name.endswith((".yaml", ".yml")):
            assert list(yaml.safe_load_all(text))
        if name.endswith(".sh"):
            assert subprocess.run(["bash", "-n", str(kit_dir / name)], check=False).returncode == 0

    # Images for mirroring, listed by the built binary (v1.11+ has `config images list`).
    readme = (kit_dir / "README.md").read_text()
    if facts.images_list:
        images = (kit_dir / "images.txt").read_text().splitlines()
        assert images[0] == f"{MIRROR}/kube-apiserver:{tag}"
        assert all(image.startswith(MIRROR + "/") for image in images)
        assert f"{MIRROR}/etcd:" in readme and f"{MIRROR}/kube-proxy:{tag}" in readme
    else:
        assert "images.txt" not in names and "has no `kubeadm config images list`" in readme

    # renew.sh --dry-run on a fake node of the same minor: the era's own commands, no root
    # needed, nothing touched.
    node = _fake_node(tmp_path / "node", tag)
    node_before = _sums(node)
    dry = subprocess.run(["bash", str(kit_dir / "renew.sh"), "--dry-run", "--kubeadm",
                          str(binary)], capture_output=True, text=True, check=False,
                         env={"PATH": "/usr/bin:/bin", "LONGCERT_KUBERNETES_DIR": str(node)})
    print(dry.stdout, dry.stderr)
    assert dry.returncode == 0, dry.stderr
    commands = "\n".join(line.replace(str(binary), "kubeadm")
                         for line in dry.stdout.splitlines() if line.startswith("+ "))
    wanted, unwanted = _era_commands(tag)
    for text in wanted:
        assert text in commands, text
    for text in unwanted:
        assert text not in commands, text
    assert f"+ cp -a {node} {node}.longcert-backup-" in dry.stdout
    assert _sums(node) == node_before
    assert not list(tmp_path.glob("node.longcert-backup-*"))


def _run_as(engine: docker.DockerClient, user: str, script: str, volumes: dict[str, dict[str, str]]
            ) -> tuple[int, str]:
    box = engine.containers.run(TEST_IMAGE, ["bash", "-c", script], detach=True, user=user,
                                network_mode="none", volumes=volumes)
    try:
        code = int(box.wait(timeout=300)["StatusCode"])
        return code, box.logs(stdout=True, stderr=True).decode()
    finally:
        box.remove(force=True)


def test_renew_sh_refuses_another_minor_and_a_user(era_build: EraBuilds, tmp_path: Path,
                                                  engine: docker.DockerClient) -> None:
    tag = standin.DEMO_TAG
    build = _copy_of_build(era_build, tag, tmp_path)
    assert _kit(build).returncode == 0
    etc = _fake_node(tmp_path / "etc", "v1.27.3")
    before = _sums(etc)
    volumes = {str(etc): {"bind": "/etc/kubernetes", "mode": "rw"},
               str(build / "kit"): {"bind": "/kit", "mode": "ro"},
               str(build / "kubeadm-linux-amd64"): {"bind": "/usr/bin/kubeadm", "mode": "ro"}}
    code, log = _run_as(engine, "0", "bash /kit/renew.sh", volumes)
    assert code == 1
    assert log.strip().splitlines() == [
        "renew.sh: this node runs Kubernetes v1.27.3, this kit is for 1.33 (v1.33.7): use the "
        "kit of a build of v1.27.3"]
    assert _sums(etc) == before

    _fake_node(etc, tag)
    before = _sums(etc)
    code, log = _run_as(engine, "65534:65534", "bash /kit/renew.sh", volumes)
    assert code == 1
    assert log.strip().splitlines() == [
        "renew.sh: must run as root (sudo ./renew.sh), or pass --dry-run to see the commands"]
    assert _sums(etc) == before


def test_kit_refuses_an_unverified_build_and_a_directory_that_is_none(
        era_build: EraBuilds, tmp_path: Path) -> None:
    build = _copy_of_build(era_build, standin.DEMO_TAG, tmp_path)
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["verification"]["passed"] = False
    (build / "manifest.json").write_text(json.dumps(manifest, indent=2))
    before = _sums(build)
    result = _kit(build)
    assert result.returncode == 9  # as publish says of the same build
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "verification did not pass" in line and "a kit is written only for a verified" in line
    assert _sums(build) == before and not (build / "kit").exists()

    empty = tmp_path / "not-a-build"
    empty.mkdir()
    result = _kit(empty)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "has no manifest.json" in result.stderr
    assert list(empty.iterdir()) == []


def test_a_kit_replaced_after_it_was_recorded_is_not_published(era_build: EraBuilds,
                                                              tmp_path: Path) -> None:
    """`longcert kit` records the kit in manifest.json, SHA256SUMS and provenance.json; one put
    there afterwards is refused by publish before anything is uploaded (issue 20)."""
    build = _copy_of_build(era_build, standin.NEWEST_TAG, tmp_path)
    assert _kit(build).returncode == 0
    (build / "kit.tar.gz").write_bytes(kit.kit_archive([kit.KitFile("install.sh", "true\n")]))
    result = run_invoke("publish", "--build", str(build), "--publish", f"dir:{tmp_path / 'share'}",
                        cwd=tmp_path, env={}, timeout=600)
    assert result.returncode == 9, result.stderr
    assert "kit.tar.gz is not the kit manifest.json records" in result.stderr
    assert "run `longcert kit` again" in result.stderr
    assert not (tmp_path / "share").exists()
    assert _kit(build).returncode == 0  # and `longcert kit` again puts it right
