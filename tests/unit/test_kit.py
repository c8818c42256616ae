"""The rollout kit's planning: per-version facts, and files that parse."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from longcert import kit
from longcert.errors import ConfigError, PublishError
from longcert.versions import KubeVersion

SUMS = {"linux/amd64": "a" * 64, "linux/arm64": "b" * 64}

# Every era the kit distinguishes, and the upstream facts it must spell (sources in kit/facts.py):
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
    """Client rotation always; serving rotation (serverTLSBootstrap, CSRs to approve) only with
    --serving-rotation. v1.9/v1.10 add the gate in a variable of their own: the operator's
    KUBELET_EXTRA_ARGS is kept (was: replaced by the drop-in)."""
    assert "kubelet-rotation.conf" not in _files("v1.9.4")  # 10-kubeadm.conf rotates already
    dropin = _files("v1.9.4", serving_rotation=True)["kubelet-rotation.conf"].text
    gate = "--feature-gates=RotateKubeletServerCertificate=true"
    assert f'Environment="LONGCERT_KUBELET_ARGS={gate}"' in dropin
    assert "KUBELET_EXTRA_ARGS=" not in dropin
    assert dropin.splitlines()[-1].endswith("$KUBELET_EXTRA_ARGS $LONGCERT_KUBELET_ARGS")
    gated = yaml.safe_load(_files("v1.11.10", serving_rotation=True)["kubelet-rotation.yaml"].text)
    assert gated == {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                     "rotateCertificates": True, "serverTLSBootstrap": True,
                     "featureGates": {"RotateKubeletServerCertificate": True}}
    plain = yaml.safe_load(_files("v1.28.7")["kubelet-rotation.yaml"].text)
    assert plain == {"apiVersion": "kubelet.config.k8s.io/v1beta1",
                     "kind": "KubeletConfiguration", "rotateCertificates": True}
    serving = yaml.safe_load(_files("v1.28.7", serving_rotation=True)[
        "kubelet-rotation.yaml"].text)
    assert "featureGates" not in serving and serving["serverTLSBootstrap"] is True
    assert "kubelet-config-1.14" in _files("v1.14.8")["kubelet-rotation.yaml"].text
    assert "ConfigMap kube-system/kubelet-config," in _files("v1.28.7")["README.md"].text


def test_serving_rotation_is_a_choice_with_its_consequence_and_approval_per_node() -> None:
    readme = _files("v1.28.7", serving_rotation=True)["README.md"].text
    csr = readme.index("CSR approval, before any kubelet restart")
    assert csr < readme.index("**Kubelet rotation**, one node at a time")
    assert "kubectl certificate approve NAME`; then the next node" in readme
    assert "kubelet-csr-approver" in readme and "rubber stamps" in readme
    assert "kubelet_rotate_server_certificates: true" in _files(
        "v1.28.7", serving_rotation=True)["kubespray.yml"].text
    off = _files("v1.28.7")["README.md"].text
    assert "no kubelet-serving CSR appears" in off
    assert "kubelet_rotate_server_certificates: false" in _files("v1.28.7")["kubespray.yml"].text
    # v1.9/v1.10: the controller-manager gate the serving binding relies on, in both places.
    files = _files("v1.9.4", serving_rotation=True)
    config = yaml.safe_load(files["cluster-configuration.yaml"].text)
    assert config["controllerManagerExtraArgs"]["feature-gates"] == (
        "RotateKubeletServerCertificate=true")
    assert 'KCM_GATE_ARG="--feature-gates=RotateKubeletServerCertificate=true"' in files[
        "renew.sh"].text
    assert 'KCM_GATE_ARG=""' in _files("v1.9.4")["renew.sh"].text
    assert "feature-gates" not in _files("v1.9.4")["cluster-configuration.yaml"].text


def test_upgrade_notes_are_true_per_version() -> None:
    old = _files("v1.14.8")["README.md"].text
    assert "*older* than 180 days" in old and "expires within" not in old
    new = _files("v1.33.7")["README.md"].text
    assert "From v1.31 a stock kubeadm renews and upgrades with the periods stored" in new
    for text in (old, new):
        assert "apt-mark hold kubeadm" in text and "versionlock" in text
        assert "re-renders the static pod manifests" in text
    spray = yaml.safe_load(_files("v1.33.7")["kubespray.yml"].text)
    assert spray["kube_kubeadm_controller_extra_args"] == {
        "cluster-signing-duration": "87600h0m0s"}
    assert spray["kube_cert_validity_period"] == "87600h"
    assert spray["kube_ca_cert_validity_period"] == "175200h"
    older = yaml.safe_load(_files("v1.28.7")["kubespray.yml"].text)
    assert "kube_cert_validity_period" not in older


def test_rbac_bindings_and_security_note() -> None:
    for tag, serving in (("v1.9.4", True), ("v1.28.7", False)):
        text = _files(tag, serving_rotation=True)["rbac.yaml"].text
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
    assert "**required for this build**" in files["README.md"].text
    pinned = _files("v1.33.7", pinned=True)["README.md"].text
    assert "`--pin-validity`" in pinned and "matter only to a stock kubeadm" in pinned
    assert "kubeadm-config-patch.yaml" not in _files("v1.28.7")
    # Every version stores the controller-manager flag there (upgrades re-render manifests).
    assert "**Store the settings in the cluster's configuration**" in _files("v1.9.4")[
        "README.md"].text


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
    with pytest.raises(ConfigError, match="is not a build directory: it has no manifest"):
        kit.make_kit(str(tmp_path))
    with pytest.raises(ConfigError, match="is not a build directory"):
        kit.make_kit(str(tmp_path / "absent"))
    assert list(tmp_path.iterdir()) == []
    from tests.standin_build import make_build

    unverified = make_build(tmp_path / "builds", passed=False)
    with pytest.raises(PublishError, match="no kit for"):  # exit 9, as publish says of it
        kit.make_kit(str(unverified))


def test_the_kit_is_published_with_the_build_as_one_checked_archive(tmp_path: Path) -> None:
    """The kit goes out only as manifest.json and SHA256SUMS record it, and only as plain
    files with plain modes under kit/ (issue 20: a changed install.sh, a 04755 member)."""
    from longcert import package, publish
    from longcert.errors import PublishError
    from tests.standin_build import make_build

    out = make_build(tmp_path / "builds")
    files = [kit.KitFile("README.md", "read me\n"), kit.KitFile("renew.sh", "#!/bin/sh\n", True)]
    kit.write_kit(out, files)
    with pytest.raises(PublishError, match=r"is not the kit manifest\.json records"):
        publish.load_build(out)  # written but not recorded (a kit killed half-way, or swapped)
    package.record_kit(out)
    assert sorted(p.name for p in (out / "kit").iterdir()) == ["README.md", "renew.sh"]
    assert (out / kit.KIT_ARCHIVE).read_bytes() == kit.kit_archive(files)  # reproducible
    build = publish.load_build(out)
    assert [f.name for f in build.files][-4:] == [
        kit.KIT_ARCHIVE, "SHA256SUMS", "patch.diff", "manifest.json"]
    sums = (out / "SHA256SUMS").read_text()
    assert f"  {kit.KIT_ARCHIVE}\n" in sums and "  manifest.json\n" in sums
    publish.DirectoryTarget(tmp_path / "share").push(build)
    shared = tmp_path / "share" / out.name / kit.KIT_ARCHIVE
    assert shared.read_bytes() == (out / kit.KIT_ARCHIVE).read_bytes()

    def recorded_archive(*members: tuple[str, int]) -> None:
        with tarfile.open(out / kit.KIT_ARCHIVE, "w:gz") as tar:
            for name, mode in members:
                info = tarfile.TarInfo(name)
                info.mode = mode
                tar.addfile(info, io.BytesIO(b""))
        package.record_kit(out)  # even recorded, it is refused

    recorded_archive(("../../etc/cron.d/x", 0o644))  # a member out of kit/
    with pytest.raises(PublishError, match=r"kit.tar.gz is not a kit written by `invoke kit`"):
        publish.load_build(out)
    recorded_archive(("kit/renew.sh", 0o4755))  # set-uid
    with pytest.raises(PublishError, match=r"kit.tar.gz is not a kit written by `invoke kit`"):
        publish.load_build(out)
    (out / kit.KIT_ARCHIVE).write_bytes(b"not gzip")
    package.record_kit(out)
    with pytest.raises(PublishError, match="not a kit"):
        publish.load_build(out)
    kit.write_kit(out, [kit.KitFile("install.sh", "curl -s https://x | sh\n", True)])
    with pytest.raises(PublishError, match=r"is not the kit manifest\.json records"):
        publish.load_build(out)  # changed after `longcert kit` recorded it


# Every minor the kit serves, v1.9 to the newest stand-in: what it renders must be shell that
# shellcheck passes (Debian's shellcheck, installed by .ci/run).
EVERY_MINOR = [f"v1.{minor}.0" for minor in range(9, 39)]


def test_every_generated_script_of_every_minor_passes_shellcheck(tmp_path: Path) -> None:
    # Scripts that differ only in the version's own strings are one shape: shellcheck reads
    # each shape once (values sit in quoted assignments, never in the code's structure).
    scripts: dict[str, str] = {}
    for tag in EVERY_MINOR:
        version = KubeVersion.parse(tag)
        for pinned, serving in ((False, False), (True, True)):
            for item in _files(tag, pinned=pinned, serving_rotation=serving).values():
                if item.name.endswith(".sh"):
                    shape = item.text.replace(tag, "vX.Y.Z").replace(version.minor_str, "X.Y")
                    scripts.setdefault(shape, f"{tag}{'-pinned' if pinned else ''}/{item.name}")
    paths = []
    for shape, name in scripts.items():
        path = tmp_path / name.replace("/", "-")
        path.write_text(shape)
        paths.append(str(path))
    checked = subprocess.run(["shellcheck", "--shell=bash", "--severity=style", *paths],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout[-6000:]


def _steps_in(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines()
            if line.startswith(("  move_aside ", '  run "$KUBEADM" '))]


@pytest.mark.parametrize("tag", EVERY_MINOR)
def test_renew_sh_runs_the_one_renewal_plan(tag: str) -> None:
    """renew.sh's steps are kit.renew_plan's (renew-check runs the same plan): kubelet.conf is
    among the files taken aside where the kubeconfig phase can write it (renew.sh's move_aside
    keeps it unless the node needs it written again)."""
    version = KubeVersion.parse(tag)
    plan = kit.renew_plan(version, kit.regenerates_kubelet_conf(version))
    wanted = []
    for step in plan.steps:
        if step.aside:
            wanted.append("move_aside " + " ".join(step.aside))
        wanted.append(f'run "$KUBEADM" {" ".join(step.words)} ${{CONFIG:+--config "$CONFIG"}}')
    script = _files(tag)["renew.sh"].text
    assert _steps_in(script) == wanted
    renewed = next(line for line in script.splitlines() if line.startswith("RENEWED="))
    assert renewed == f'RENEWED="{" ".join(kit.renew_plan(version).renewed)}"'
    assert ("move_aside" in script.split("if [ \"$RENEW\" = 1 ]; then\n")[1].split("fi\n")[0]) \
        is (version.minor < 15)


def test_renew_sh_checks_the_stored_validity_from_v131_unless_pinned() -> None:
    assert "CHECK_STORED_PERIODS=1" in _files("v1.31.0")["renew.sh"].text
    assert "CHECK_STORED_PERIODS=0" in _files("v1.31.0", pinned=True)["renew.sh"].text
    assert "CHECK_STORED_PERIODS=0" in _files("v1.30.0")["renew.sh"].text
    script = _files("v1.33.7")["renew.sh"].text
    assert "LEAF_SECONDS=315360000\n" in script and "LEAF_DURATION=87600h0m0s\n" in script


def test_a_template_and_its_values_must_agree() -> None:
    with pytest.raises(ValueError, match="placeholders"):
        kit.render_template("install.sh", {"TAG": "v1.28.7"})


def _shell(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script, "renew.sh", *args], capture_output=True,
                          text=True, check=False, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(("args", "message"), [
    (["--margin-days", "x"], "--margin-days x is not a whole number of days"),
    (["--margin-days", "3650"], "--margin-days 3650 must be below the asked validity of 3650 days"),
    (["--config", "/nonexistent"], "--config /nonexistent is not a file"),
    (["--bogus"], "unknown argument --bogus (see --help)"),
])
def test_renew_sh_bad_arguments_are_one_line(args: list[str], message: str) -> None:
    result = _shell(_files("v1.28.7")["renew.sh"].text, *args)
    assert result.returncode == 1
    assert result.stderr.strip() == f"renew.sh: {message}"
    assert result.stdout == ""


def test_renew_sh_converts_go_durations() -> None:
    """The stored certificateValidityPeriod is compared in seconds, whatever Go spelling."""
    script = _files("v1.33.7")["renew.sh"].text
    function = script[script.index("seconds_of() {"):script.index("\n}\n",
                                                                  script.index("seconds_of"))]
    for duration, seconds in (("87600h0m0s", 315360000), ("87600h", 315360000),
                              ("8760h0m0s", 31536000), ("90m", 5400), ("1h30m15s", 5415),
                              ("", ""), ("forever", "")):
        got = _shell(function + "\n}\nseconds_of \"$1\"", duration)
        assert got.stdout.strip() == str(seconds), (duration, got.stderr)


# --- kubeadm-config.sh, against a stand-in kubectl (the API server is the boundary) ----------

_FAKE_KUBECTL = """#!/bin/sh
case "$*" in
  *"get configmap kubeadm-config"*) cat "$STORED" ;;
  *"patch configmap kubeadm-config"*)
    while [ $# -gt 0 ]; do [ "$1" = -p ] && printf '%s' "$2" > "$PATCHED"; shift; done ;;
  *) echo "unexpected kubectl $*" >&2; exit 1 ;;
esac
"""


def _kubeadm_config_sh(tag: str, stored: str, tmp_path: Path, *args: str
                       ) -> tuple[subprocess.CompletedProcess[str], str | None]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text(_FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    (tmp_path / "stored.yaml").write_text(stored)
    patched = tmp_path / "patch.json"
    patched.unlink(missing_ok=True)
    script = tmp_path / "kubeadm-config.sh"
    script.write_text(_files(tag)["kubeadm-config.sh"].text)
    result = subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, check=False,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "STORED": str(tmp_path / "stored.yaml"),
             "PATCHED": str(patched)})
    if not patched.exists():
        return result, None
    import json
    data = json.loads(patched.read_text())["data"]
    (key,) = data
    return result, data[key]


def _controller_args(config: str) -> object:
    doc = yaml.safe_load(config)
    if "controllerManagerExtraArgs" in doc:
        return doc["controllerManagerExtraArgs"]
    return doc["controllerManager"]["extraArgs"]


@pytest.mark.parametrize(("tag", "stored", "wanted"), [
    ("v1.9.4", "apiVersion: kubeadm.k8s.io/v1alpha1\nkind: MasterConfiguration\n"
     "controllerManagerExtraArgs:\n  address: 0.0.0.0\n"
     "  experimental-cluster-signing-duration: 8760h0m0s\nnodeName: cp-0\n",
     {"address": "0.0.0.0", "experimental-cluster-signing-duration": "87600h0m0s"}),
    ("v1.9.4", "apiVersion: kubeadm.k8s.io/v1alpha1\nkind: MasterConfiguration\n"
     "nodeName: cp-0\n", {"experimental-cluster-signing-duration": "87600h0m0s"}),
    ("v1.28.7", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
     "controllerManager: {}\ndns: {}\n", {"cluster-signing-duration": "87600h0m0s"}),
    ("v1.28.7", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
     "controllerManager:\n  extraArgs:\n    bind-address: 0.0.0.0\n"
     "    experimental-cluster-signing-duration: 1h\n  extraVolumes:\n  - name: x\n"
     "    hostPath: /x\n    mountPath: /x\ndns: {}\n",
     {"bind-address": "0.0.0.0", "cluster-signing-duration": "87600h0m0s"}),
    ("v1.28.7", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
     "controllerManager:\n  extraVolumes: []\n", {"cluster-signing-duration": "87600h0m0s"}),
    ("v1.33.7", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
     "caCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\n"
     "controllerManager:\n  extraArgs:\n  - name: bind-address\n    value: 0.0.0.0\n"
     "  - name: cluster-signing-duration\n    value: 8760h0m0s\n  - name: x\n    value: \"y\"\n"
     "dns: {}\n",
     [{"name": "bind-address", "value": "0.0.0.0"},
      {"name": "cluster-signing-duration", "value": "87600h0m0s"},
      {"name": "x", "value": "y"}]),
])
def test_kubeadm_config_sh_stores_the_signing_flag_so_upgrades_keep_it(
        tag: str, stored: str, wanted: object, tmp_path: Path) -> None:
    """`kubeadm upgrade` re-renders the manifests from kubeadm-config: the flag renew.sh sets in
    the manifest must be stored there too, in the API's own layout (was: manifest only)."""
    result, written = _kubeadm_config_sh(tag, stored, tmp_path)
    assert result.returncode == 0, result.stderr
    assert written is not None
    args = _controller_args(written)
    if isinstance(wanted, list):
        assert sorted(args, key=lambda a: a["name"]) == wanted  # type: ignore[arg-type]
    else:
        assert args == wanted
    doc = yaml.safe_load(written)
    kept = yaml.safe_load(stored)
    for key in set(kept) - {"controllerManager", "controllerManagerExtraArgs",
                            "certificateValidityPeriod", "caCertificateValidityPeriod"}:
        assert doc[key] == kept[key], key
    if KubeVersion.parse(tag).minor >= 31:
        assert doc["certificateValidityPeriod"] == "87600h0m0s"
        assert doc["caCertificateValidityPeriod"] == "175200h0m0s"
    # --dry-run prints the same configuration and applies nothing.
    dry, none = _kubeadm_config_sh(tag, stored, tmp_path, "--dry-run")
    assert dry.returncode == 0 and none is None
    assert yaml.safe_load(dry.stdout) == doc


def test_kubeadm_config_sh_refuses_another_api(tmp_path: Path) -> None:
    stored = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
    result, written = _kubeadm_config_sh("v1.33.7", stored, tmp_path)
    assert result.returncode == 1 and written is None
    assert result.stderr.strip() == (
        "kubeadm-config.sh: the stored configuration is kubeadm.k8s.io/v1beta3, not one of "
        "kubeadm.k8s.io/v1beta4 kubeadm.k8s.io/v1: use the kit of the cluster's own version; "
        "nothing was changed")
