"""The rollout kit's planning: per-version facts, and files that parse."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from longcert import kit
from longcert.errors import ConfigError
from longcert.versions import KubeVersion

SUMS = {"linux/amd64": "a" * 64, "linux/arm64": "b" * 64}

# Every era the kit distinguishes, and the upstream facts it must spell (sources in kit.py):
# (tag, config API, kind, extra-args layout, signing flag, renew command, check-expiration,
#  kubelet style)
ERAS = [
    ("v1.9.4", "kubeadm.k8s.io/v1alpha1", "MasterConfiguration", "controllerManagerExtraArgs",
     "--experimental-cluster-signing-duration", "", "", "dropin"),
    ("v1.10.13", "kubeadm.k8s.io/v1alpha1", "MasterConfiguration", "controllerManagerExtraArgs",
     "--experimental-cluster-signing-duration", "", "", "dropin"),
    ("v1.11.10", "kubeadm.k8s.io/v1alpha2", "MasterConfiguration", "controllerManagerExtraArgs",
     "--experimental-cluster-signing-duration", "", "", "config-gate"),
    ("v1.12.10", "kubeadm.k8s.io/v1alpha3", "ClusterConfiguration", "controllerManagerExtraArgs",
     "--experimental-cluster-signing-duration", "alpha phase certs renew all", "", "config"),
    ("v1.13.5", "kubeadm.k8s.io/v1beta1", "ClusterConfiguration", "map",
     "--experimental-cluster-signing-duration", "alpha certs renew all", "", "config"),
    ("v1.14.8", "kubeadm.k8s.io/v1beta1", "ClusterConfiguration", "map",
     "--experimental-cluster-signing-duration", "alpha certs renew all", "", "config"),
    ("v1.15.12", "kubeadm.k8s.io/v1beta2", "ClusterConfiguration", "map",
     "--experimental-cluster-signing-duration", "alpha certs renew all",
     "alpha certs check-expiration", "config"),
    ("v1.18.20", "kubeadm.k8s.io/v1beta2", "ClusterConfiguration", "map",
     "--experimental-cluster-signing-duration", "alpha certs renew all",
     "alpha certs check-expiration", "config"),
    ("v1.19.16", "kubeadm.k8s.io/v1beta2", "ClusterConfiguration", "map",
     "--cluster-signing-duration", "alpha certs renew all", "alpha certs check-expiration",
     "config"),
    ("v1.20.5", "kubeadm.k8s.io/v1beta2", "ClusterConfiguration", "map",
     "--cluster-signing-duration", "certs renew all", "certs check-expiration", "config"),
    ("v1.28.7", "kubeadm.k8s.io/v1beta3", "ClusterConfiguration", "map",
     "--cluster-signing-duration", "certs renew all", "certs check-expiration", "config"),
    ("v1.33.7", "kubeadm.k8s.io/v1beta4", "ClusterConfiguration", "list",
     "--cluster-signing-duration", "certs renew all", "certs check-expiration", "config"),
]


@pytest.mark.parametrize(
    ("tag", "api", "kind", "extra", "flag", "renew", "check", "kubelet"), ERAS
)
def test_facts_of_every_era(tag: str, api: str, kind: str, extra: str, flag: str, renew: str,
                            check: str, kubelet: str) -> None:
    facts = kit.facts_for(KubeVersion.parse(tag))
    assert (facts.config_api, facts.cluster_kind, facts.extra_args) == (api, kind, extra)
    assert facts.signing_flag == flag
    assert facts.renew_all == renew
    assert facts.check_expiration == check
    assert facts.kubelet == kubelet
    minor = KubeVersion.parse(tag).minor
    assert facts.renews_kubeconfigs is (minor >= 15)
    assert facts.images_list is (minor >= 11)
    assert facts.validity_fields is (minor >= 31)
    assert facts.upgrade_renewal_flag is (minor >= 15)
    assert facts.selfnodeserver is (minor < 11)
    assert facts.phase == ("alpha phase" if minor < 13 else "init phase")


def test_v1_api_from_the_binary_uses_the_list_form() -> None:
    facts = kit.facts_for(KubeVersion.parse("v1.38.0"), "kubeadm.k8s.io/v1")
    assert (facts.config_api, facts.extra_args) == ("kubeadm.k8s.io/v1", "list")


def _inputs(tag: str, **extra: object) -> kit.KitInputs:
    values: dict[str, object] = {
        "build_id": f"kubeadm-{tag}-leaf10y-ca20y", "tag": tag, "leaf_years": 10,
        "ca_years": 20, "pinned": False, "binaries": SUMS,
    }
    values.update(extra)
    return kit.KitInputs(**values)  # type: ignore[arg-type]


def _files(tag: str, **extra: object) -> dict[str, kit.KitFile]:
    return {f.name: f for f in kit.plan_kit(_inputs(tag, **extra))}


@pytest.mark.parametrize("tag", [era[0] for era in ERAS] + ["v1.38.0"])
def test_every_file_parses(tag: str, tmp_path: Path) -> None:
    files = _files(tag, image_repository="registry.example.com/k8s",
                   images=(f"registry.example.com/k8s/kube-apiserver:{tag}",))
    for item in files.values():
        if item.name.endswith(".sh"):
            assert item.executable
            checked = subprocess.run(["bash", "-n"], input=item.text, text=True,
                                     capture_output=True, check=False)
            assert checked.returncode == 0, (item.name, checked.stderr)
        elif item.name.endswith((".yaml", ".yml")):
            assert list(yaml.safe_load_all(item.text)), item.name
    assert "renew.sh" in files["README.md"].text
    assert f"registry.example.com/k8s/kube-apiserver:{tag}" in files["README.md"].text
    listed = files["images.txt"].text.splitlines()
    assert listed == [f"registry.example.com/k8s/kube-apiserver:{tag}"]


@pytest.mark.parametrize(("tag", "api", "kind", "extra", "flag"), [e[:5] for e in ERAS])
def test_cluster_configuration_uses_the_versions_fields(tag: str, api: str, kind: str,
                                                        extra: str, flag: str) -> None:
    text = _files(tag, image_repository="registry.example.com/k8s")[
        "cluster-configuration.yaml"].text
    doc = yaml.safe_load(text)
    assert (doc["apiVersion"], doc["kind"], doc["kubernetesVersion"]) == (api, kind, tag)
    assert doc["imageRepository"] == "registry.example.com/k8s"
    name = flag.removeprefix("--")
    if extra == "controllerManagerExtraArgs":
        assert doc["controllerManagerExtraArgs"] == {name: "87600h0m0s"}
    elif extra == "map":
        assert doc["controllerManager"] == {"extraArgs": {name: "87600h0m0s"}}
    else:
        assert doc["controllerManager"] == {"extraArgs": [{"name": name, "value": "87600h0m0s"}]}
    validity = {"certificateValidityPeriod", "caCertificateValidityPeriod"} <= set(doc)
    assert validity is (KubeVersion.parse(tag).minor >= 31)


def test_no_image_repository_means_no_field_and_no_list() -> None:
    files = _files("v1.28.7")
    assert "imageRepository" not in yaml.safe_load(files["cluster-configuration.yaml"].text)
    assert "images.txt" not in files
    assert "mirror" not in files["README.md"].text


def test_kubelet_settings_per_era() -> None:
    dropin = _files("v1.9.4")["kubelet-rotation.conf"].text
    assert "--rotate-certificates=true" in dropin
    assert "RotateKubeletServerCertificate=true" in dropin
    gated = yaml.safe_load(_files("v1.11.10")["kubelet-rotation.yaml"].text)
    assert gated == {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                     "rotateCertificates": True, "serverTLSBootstrap": True,
                     "featureGates": {"RotateKubeletServerCertificate": True}}
    plain = yaml.safe_load(_files("v1.28.7")["kubelet-rotation.yaml"].text)
    assert "featureGates" not in plain and plain["serverTLSBootstrap"] is True
    assert "kubelet-config-1.14" in _files("v1.14.8")["kubelet-rotation.yaml"].text
    assert "ConfigMap kube-system/kubelet-config," in _files("v1.28.7")["README.md"].text


def test_rbac_bindings_and_security_note() -> None:
    for tag, serving in (("v1.9.4", True), ("v1.28.7", False)):
        text = _files(tag)["rbac.yaml"].text
        docs = list(yaml.safe_load_all(text))
        roles = {d["roleRef"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding"}
        assert "system:certificates.k8s.io:certificatesigningrequests:nodeclient" in roles
        assert "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient" in roles
        assert ("longcert:certificatesigningrequests:selfnodeserver" in roles) is serving
        assert "compromised node" in text


def test_v131_configmap_edit_and_pinned_note() -> None:
    files = _files("v1.33.7")
    patch = yaml.safe_load(files["kubeadm-config-patch.yaml"].text)
    assert patch == {"certificateValidityPeriod": "87600h0m0s",
                     "caCertificateValidityPeriod": "175200h0m0s"}
    assert "kubectl -n kube-system" in files["kubeadm-config.sh"].text
    assert "Required for this build" in files["README.md"].text
    pinned = _files("v1.33.7", pinned=True)["README.md"].text
    assert "`--pin-validity`" in pinned and "optional" in pinned
    assert "kubeadm-config.sh" not in _files("v1.28.7")


def test_kubespray_and_install() -> None:
    files = _files("v1.28.7")
    snippet = yaml.safe_load(files["kubespray.yml"].text)
    assert snippet["kubeadm_checksums"] == {"amd64": {"v1.28.7": "a" * 64},
                                            "arm64": {"v1.28.7": "b" * 64}}
    assert "kubeadm-linux-{{ image_arch }}" in snippet["kubeadm_download_url"]
    install = files["install.sh"].text
    assert install.index("sha256sum -c") < install.index("version -o short")
    assert "pre-longcert-" in install and "target=/usr/bin/kubeadm" in install
    other = _files("v1.28.7", install_path="/usr/local/bin/kubeadm")["install.sh"].text
    assert "target=/usr/local/bin/kubeadm" in other


def test_upgrade_warning_names_both_ways_out() -> None:
    new = _files("v1.28.7")["README.md"].text
    assert "--certificate-renewal=false" in new and "patched kubeadm of the new version" in new
    old = _files("v1.14.8")["README.md"].text
    assert "no `--certificate-renewal` flag" in old
    assert "openssl x509 -noout -enddate" in old and "check-expiration" not in old
    assert "kubeadm certs check-expiration" in new.replace("/usr/bin/", "")


@pytest.mark.parametrize("value", ["https://reg.example", "reg.example/k8s:v1", "Reg.Example",
                                   "reg example", "reg.example/"])
def test_bad_image_repository(value: str) -> None:
    with pytest.raises(ConfigError, match="--image-repository"):
        kit.check_image_repository(value)


@pytest.mark.parametrize("value", ["kubeadm", "/usr/bin/", "/usr/../bin/kubeadm", "/a b"])
def test_bad_install_path(value: str) -> None:
    with pytest.raises(ConfigError, match="--install-path"):
        kit.check_install_path(value)


def test_write_kit_replaces_through_a_rename(tmp_path: Path) -> None:
    first = kit.write_kit(tmp_path, [kit.KitFile("a.sh", "echo a\n", executable=True)])
    assert (first / "a.sh").stat().st_mode & 0o111
    second = kit.write_kit(tmp_path, [kit.KitFile("b.txt", "b\n")])
    assert sorted(p.name for p in second.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kit", "kit.tar.gz"]


def test_kit_of_a_directory_that_is_not_a_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no kit for"):
        kit.make_kit(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_the_kit_is_published_with_the_build_as_one_checked_archive(tmp_path: Path) -> None:
    from longcert import publish
    from longcert.errors import PublishError
    from tests.standin_build import make_build

    out = make_build(tmp_path / "builds")
    files = [kit.KitFile("README.md", "read me\n"), kit.KitFile("renew.sh", "#!/bin/sh\n", True)]
    kit.write_kit(out, files)
    assert sorted(p.name for p in (out / "kit").iterdir()) == ["README.md", "renew.sh"]
    assert (out / kit.KIT_ARCHIVE).read_bytes() == kit.kit_archive(files)  # reproducible
    build = publish.load_build(out)
    assert [f.name for f in build.files][-4:] == [
        kit.KIT_ARCHIVE, "SHA256SUMS", "patch.diff", "manifest.json"]
    publish.DirectoryTarget(tmp_path / "share").push(build)
    shared = tmp_path / "share" / out.name / kit.KIT_ARCHIVE
    assert shared.read_bytes() == (out / kit.KIT_ARCHIVE).read_bytes()

    with tarfile.open(out / kit.KIT_ARCHIVE, "w:gz") as tar:  # a member out of kit/
        info = tarfile.TarInfo("../../etc/cron.d/x")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(PublishError, match=r"kit.tar.gz is not a kit written by `invoke kit`"):
        publish.load_build(out)
    (out / kit.KIT_ARCHIVE).write_bytes(b"not gzip")
    with pytest.raises(PublishError, match="not a kit"):
        publish.load_build(out)
