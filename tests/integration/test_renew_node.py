"""The kit's renew.sh run as root in network-less containers on a node's files (the node harness,
tests/node_harness.py): each era's /etc/kubernetes made by its own build, its leaves re-signed
to a stock-like mid-life. renew.sh must refuse with nothing changed, or renew to the asked
validity with every identity kept and prove it, or put every file back byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import docker
import pytest
import yaml
from cryptography import x509

from longcert import kit, verify
from longcert.versions import KubeVersion
from tests import node_harness as nh
from tests.fixtures import standin
from tests.integration.conftest import EraBuilds
from tests.integration.test_ca_renew import STOCK, _invoke
from tests.integration.test_kit import ERAS, _copy_of_build, _years

pytestmark = pytest.mark.docker

OTHER_HOST = "another-host"  # the container's hostname: never the node's name in its files


def _built(era_build: EraBuilds, tag: str, tmp_path: Path) -> Path:
    """A copy of the era's patched build with its kit (written in-process: `invoke kit` as a
    command is test_kit's)."""
    build = _copy_of_build(era_build, tag, tmp_path)
    kit.make_kit(str(build))
    return build


def _era_config(tag: str, *, stored_periods: bool = False) -> str:
    """The era's config; from v1.31 with ECDSA-P256 keys (kubeadm's encryptionAlgorithm), which
    kubeadm makes in microseconds where RSA keys take a quarter second each."""
    version = KubeVersion.parse(tag)
    algorithm = "ECDSA-P256" if verify.has_validity_config(version) else ""
    return verify.kubeadm_config(version, stored_periods=stored_periods,
                                 encryption_algorithm=algorithm)


def _stock(era_build: EraBuilds, tag: str) -> Path:
    """The stock-valued (1y/10y) kubeadm of the era that made the node's PKI: the session's
    build for renew-check (test_ca_renew), made with the stock-shaped image (the newest minor's
    Go is above that image's, so its own)."""
    image = "auto" if tag == standin.NEWEST_TAG else "stock"
    return era_build(tag, *STOCK, image=image) / "kubeadm-linux-amd64"


def _identity(etc: Path) -> dict[str, tuple[str, str, tuple[str, ...], str]]:
    """subject, issuer, SANs and server of every certificate and embedded kubeconfig cert."""
    found = {}
    for crt in sorted((etc / "pki").rglob("*.crt")):
        cert = verify.load_certificate(crt.read_bytes())
        found[crt.relative_to(etc).as_posix()] = _names(cert, "")
    for conf in sorted(etc.glob("*.conf")):
        data = yaml.safe_load(conf.read_text())
        if "client-certificate-data" in data["users"][0]["user"]:
            cert = verify.load_certificate(nh.kubeconfig_cert(conf))
            found[conf.name] = _names(cert, data["clusters"][0]["cluster"]["server"])
    return found


def _names(cert: x509.Certificate, server: str) -> tuple[str, str, tuple[str, ...], str]:
    try:
        sans = tuple(sorted(str(n.value) for n in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value))
    except x509.ExtensionNotFound:
        sans = ()
    return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), sans, server


def _config(root: Path, text: str) -> dict[str, Path]:
    path = root / "cluster.yaml"
    path.write_text(text)
    return {"/cfg/cluster.yaml": path}


def _cluster_config(tag: str) -> str:
    """What the operator passes as --config: for v1.9-v1.14 the config of *another* control
    plane (the init node's, as `kubeadm config view` prints it), so the node's own identity
    must come from its files; from v1.15 the era's config."""
    version = KubeVersion.parse(tag)
    if version.minor < 13:
        return ("apiVersion: kubeadm.k8s.io/v1alpha1\nkind: MasterConfiguration\n"
                f"kubernetesVersion: {tag}\napi:\n  advertiseAddress: 192.0.2.99\n"
                "nodeName: master-0\n")
    if version.minor < 15:
        return ("apiVersion: kubeadm.k8s.io/v1beta1\nkind: ClusterConfiguration\n"
                f"kubernetesVersion: {tag}\n")
    return _era_config(tag)


@pytest.mark.parametrize("tag", ERAS)
def test_mid_life_certificates_are_renewed_with_every_identity_kept(
        tag: str, era_build: EraBuilds, tmp_path: Path, engine: docker.DockerClient) -> None:
    """Leaves that end in 180 days whatever their span (was: "valid for N days already: nothing
    to renew" when the span was long); a config naming another node or none (was: the identity
    of `uname -n`)."""
    build = _built(era_build, tag, tmp_path)
    # Leaves ending in 180 days under the stock 10-year CAs, spanning the asked validity
    # (v1.38's 15 years: the old span test said "valid for 5475 days already: nothing to
    # renew") or, for the 100-year builds, as far back as a certificate may start (1950).
    leaf_days = _years(tag)[0] * 365
    node = nh.make_node(engine, _stock(era_build, tag), tag, tmp_path / "node",
                        config=_era_config(tag), left_days=180,
                        span_days=min(leaf_days, 20000))
    version = KubeVersion.parse(tag)
    identity = _identity(node.etc)
    cas = {n: (node.etc / f"pki/{n}.crt").read_bytes() for n in verify.CA_CERTS
           if (node.etc / f"pki/{n}.crt").exists()}
    code, out = nh.run(engine, node, build, "bash /kit/renew.sh --config /cfg/cluster.yaml",
                       hostname=OTHER_HOST, files=_config(tmp_path, _cluster_config(tag)))
    print(out)
    assert code == 0, out
    plan = kit.renew_plan(version)
    for name in plan.renewed:
        pem = (nh.kubeconfig_cert(node.etc / name) if name.endswith(".conf")
               else (node.etc / name).read_bytes())
        assert nh.days_left(pem) > leaf_days - 1, name
    after = _identity(node.etc)
    assert {k: v for k, v in after.items() if k != "kubelet.conf"} == {
        k: v for k, v in identity.items() if k != "kubelet.conf"}
    assert cas == {n: (node.etc / f"pki/{n}.crt").read_bytes() for n in cas}
    # kubelet.conf: an init node before v1.17 embeds its certificate; with a rotated one on
    # the node it is pointed at it (upstream's fix), which keeps the node's name.
    kubelet = yaml.safe_load((node.etc / "kubelet.conf").read_text())["users"][0]["user"]
    assert kubelet["client-certificate"] == "/var/lib/kubelet/pki/kubelet-client-current.pem"
    if version.minor < 17:
        assert "kubelet.conf changed: systemctl restart kubelet" in out
    facts = kit.facts_for(version)
    kcm = (node.etc / "manifests" / "kube-controller-manager.yaml").read_text()
    assert f"    - {facts.signing_flag}={_years(tag)[0] * 8760}h0m0s\n" in kcm
    assert "backup: /etc/kubernetes.longcert-backup-" in out
    # The horizon: the stock CA, not the leaves, decides when the cluster stops.
    ca_line = next(line for line in out.splitlines() if line.startswith("pki/ca.crt (CA) expires"))
    assert "(3649 days left)" in ca_line or "(3650 days left)" in ca_line, ca_line

    renewed = nh.sums(node.etc)
    code, again = nh.run(engine, node, build, "bash /kit/renew.sh --config /cfg/cluster.yaml",
                         hostname=OTHER_HOST, files=_config(tmp_path, _cluster_config(tag)))
    assert code == 0, again
    assert "nothing to renew" in again and "already has" in again and "nothing to do" in again
    assert "+ cp -a" not in again  # no backup when nothing changes
    assert nh.sums(node.etc) == renewed


def test_a_stored_one_year_validity_is_refused_with_nothing_changed(
        era_build: EraBuilds, tmp_path: Path, engine: docker.DockerClient) -> None:
    """v1.31+: kubeadm renews with the stored certificateValidityPeriod (was: every leaf renewed
    to 365 days, rc 0, with --force too); read from --config or the ConfigMap through kubectl."""
    tag = standin.DEMO_TAG
    build = _built(era_build, tag, tmp_path)
    node = nh.make_node(engine, _stock(era_build, tag), tag, tmp_path / "node",
                        config=_era_config(tag))
    before = nh.sums(node.etc)
    stored = _era_config(tag, stored_periods=True)
    files = _config(tmp_path, stored)
    for args in ("--config /cfg/cluster.yaml", "--config /cfg/cluster.yaml --force"):
        code, out = nh.run(engine, node, build, f"bash /kit/renew.sh {args}", files=files)
        assert code == 1, out
        assert out.strip().splitlines()[-1] == (
            "renew.sh: --config /cfg/cluster.yaml stores certificateValidityPeriod: 8760h0m0s, "
            "so kubeadm would renew for that, not 876000h0m0s: run ./kubeadm-config.sh first "
            "(or pass --config with certificateValidityPeriod: 876000h0m0s); nothing was "
            "changed")
        assert nh.sums(node.etc) == before

    # Without --config it asks the cluster (a stand-in kubectl answering as the API would).
    cluster = stored.split("---\n")[1]
    kubectl = tmp_path / "kubectl"
    kubectl.write_text("#!/bin/sh\ncase \"$*\" in\n"
                       "  *'get configmap kubeadm-config'*) cat /cfg/cluster.yaml ;;\n"
                       "  *) exit 1 ;;\nesac\n")
    kubectl.chmod(0o755)
    files = {**_config(tmp_path, cluster), "/usr/local/bin/kubectl": kubectl}
    code, out = nh.run(engine, node, build, "bash /kit/renew.sh", files=files)
    assert code == 1, out
    assert "ConfigMap kube-system/kubeadm-config stores certificateValidityPeriod: 8760h0m0s" \
        in out
    assert nh.sums(node.etc) == before

    # With the period kubeadm-config.sh stores, the renewal goes ahead. (--config: the
    # stand-in kubeadm cannot read a ConfigMap; kubeadm renews with --config's period then.)
    edited = stored.replace("certificateValidityPeriod: 8760h0m0s",
                            "certificateValidityPeriod: 876000h0m0s")
    assert edited != stored
    code, out = nh.run(engine, node, build, "bash /kit/renew.sh --config /cfg/cluster.yaml",
                       files=_config(tmp_path, edited))
    assert code == 0, out
    assert nh.days_left((node.etc / "pki" / "apiserver.crt").read_bytes()) > 36499


def test_a_failure_after_the_renewal_puts_every_file_back(
        era_build: EraBuilds, tmp_path: Path, engine: docker.DockerClient) -> None:
    """The certificates are renewed, then the controller-manager manifest has no line to put the
    flag after (was: silently left without it): every file is put back, byte for byte. (v1.9's
    phases, which delete files before making them again: test_an_identity_change_...)"""
    tag = standin.DEMO_TAG
    build = _built(era_build, tag, tmp_path)
    node = nh.make_node(engine, _stock(era_build, tag), tag, tmp_path / "node",
                        config=_era_config(tag))
    nh.write_manifests(node.etc, tag, kcm_flow_style=True)
    before = nh.sums(node.etc)
    code, out = nh.run(engine, node, build, "bash /kit/renew.sh --config /cfg/cluster.yaml",
                       files=_config(tmp_path, _era_config(tag)))
    print(out)
    assert code == 1
    assert "+ /usr/bin/kubeadm" in out  # it did renew before failing
    assert "manifests/kube-controller-manager.yaml: no '- " in out
    assert "is as it was before (byte for byte)" in out
    assert nh.sums(node.etc) == before


def test_an_identity_change_puts_every_file_back(era_build: EraBuilds, tmp_path: Path,
                                                 engine: docker.DockerClient) -> None:
    """v1.9: the phases make the apiserver certificate from the config; one whose SANs differ
    from the node's certificate is a failure, and the files come back (was: rc 0)."""
    tag = "v1.9.4"
    build = _built(era_build, tag, tmp_path)
    node = nh.make_node(engine, _stock(era_build, tag), tag, tmp_path / "node",
                        config=_era_config(tag))
    before = nh.sums(node.etc)
    config = ("apiVersion: kubeadm.k8s.io/v1alpha1\nkind: MasterConfiguration\n"
              f"kubernetesVersion: {tag}\napiServerCertSANs:\n- extra.example.com\n")
    code, out = nh.run(engine, node, build, "bash /kit/renew.sh --config /cfg/cluster.yaml",
                       files=_config(tmp_path, config))
    print(out)
    assert code == 1
    assert "pki/apiserver.crt: changed: was X509v3 Subject Alternative Name: DNS:" in out
    assert "now X509v3 Subject Alternative Name: DNS:extra.example.com," in out
    assert nh.sums(node.etc) == before


def test_an_embedded_kubelet_conf_is_pointed_at_the_rotated_certificate_or_refused(
        era_build: EraBuilds, tmp_path: Path, engine: docker.DockerClient) -> None:
    """v1.15+: nothing renews a certificate embedded in kubelet.conf (was: its expiry printed,
    rc 0)."""
    tag = standin.DEMO_TAG
    build = _built(era_build, tag, tmp_path)
    node = nh.make_node(engine, _stock(era_build, tag), tag, tmp_path / "node",
                        config=_era_config(tag),
                        embedded_kubelet=True)
    files = _config(tmp_path, _era_config(tag))
    (node.kubelet_pki / nh.KUBELET_PEM).unlink()
    before = nh.sums(node.etc)
    code, out = nh.run(engine, node, build, "bash /kit/renew.sh --config /cfg/cluster.yaml",
                       files=files)
    assert code == 1, out
    assert "kubelet.conf embeds its client certificate (system:node:longcert-verify" in out
    assert "nothing renews it" in out and out.rstrip().endswith("nothing was changed")
    assert nh.sums(node.etc) == before

    nh.write_kubelet_pem(node)
    code, out = nh.run(engine, node, build, "bash /kit/renew.sh --config /cfg/cluster.yaml",
                       files=files)
    assert code == 0, out
    user = yaml.safe_load((node.etc / "kubelet.conf").read_text())["users"][0]["user"]
    assert user == {"client-certificate": "/var/lib/kubelet/pki/kubelet-client-current.pem",
                    "client-key": "/var/lib/kubelet/pki/kubelet-client-current.pem"}


def test_renew_sh_and_renew_check_run_the_same_steps(
        era_build: EraBuilds, tmp_path: Path, engine: docker.DockerClient) -> None:
    """v1.14 with an embedded kubelet.conf and no rotated certificate: both write kubelet.conf
    again with the kubeconfig phase, after the same renewal (they differed before)."""
    tag = "v1.14.8"
    build = _built(era_build, tag, tmp_path)
    node = nh.make_node(engine, _stock(era_build, tag), tag, tmp_path / "node",
                        config=_era_config(tag))
    (node.kubelet_pki / nh.KUBELET_PEM).unlink()
    copy = tmp_path / "copy"
    shutil.copytree(node.etc, copy)
    years = _years(tag)[0]
    code, _, err = _invoke("renew-check", "--binary", str(build / "kubeadm-linux-amd64"),
                           "--etc", str(copy), "--years", str(years), "--json",
                           str(tmp_path / "r.json"), cwd=tmp_path)
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    checked = [c.split(" --config")[0] for c in report["commands"] if c.startswith("kubeadm")]
    renewed_by_check = {f["file"] for f in report["files"] if f["renewed"]}

    code, out = nh.run(engine, node, build, "bash /kit/renew.sh --config /cfg/cluster.yaml",
                       files=_config(tmp_path, _cluster_config(tag)))
    assert code == 0, out
    ran = [line.removeprefix("+ /usr/bin/").split(" --config")[0] for line in out.splitlines()
           if line.startswith("+ /usr/bin/kubeadm ")]
    assert ran == checked == ["kubeadm alpha certs renew all",
                              "kubeadm init phase kubeconfig all"]
    assert "+ rm -f /etc/kubernetes/kubelet.conf" in out
    assert "kubelet.conf" in renewed_by_check
    assert nh.days_left(nh.kubeconfig_cert(node.etc / "kubelet.conf")) > years * 365 - 1
    # The kubelet.conf it wrote is long: a second run leaves it (and everything) alone.
    renewed = nh.sums(node.etc)
    code, again = nh.run(engine, node, build, "bash /kit/renew.sh --config /cfg/cluster.yaml",
                         files=_config(tmp_path, _cluster_config(tag)))
    assert code == 0, again
    assert "nothing to do" in again and "+ cp -a" not in again
    assert nh.sums(node.etc) == renewed


# --- renew.sh --restart: a stand-in kubelet serving what each static pod would ---------------

# Runs each static pod whose manifest is in /etc/kubernetes/manifests as an `openssl s_server`
# on its port with the certificate it serves (the controller-manager and scheduler one they
# make themselves), stops it when the manifest goes and starts it again, re-reading the files,
# when it comes back, as the kubelet does. STALE=<pod> keeps serving that pod's certificate of
# before the renewal (a pod that did not pick the new one up).
_FAKE_KUBELET = r"""#!/bin/bash
declare -A pods=([etcd]="2379 /etc/kubernetes/pki/etcd/server"
                 [kube-apiserver]="6443 /etc/kubernetes/pki/apiserver"
                 [kube-controller-manager]="10257 self" [kube-scheduler]="10259 self")
mkdir -p /run/fake
openssl req -x509 -newkey rsa:2048 -nodes -keyout /run/fake/self.key -out /run/fake/self.crt \
  -subj /CN=self -days 1 2>/dev/null
cp /etc/kubernetes/pki/apiserver.crt /run/fake/stale.crt
cp /etc/kubernetes/pki/apiserver.key /run/fake/stale.key
while true; do
  for name in "${!pods[@]}"; do
    read -r port base <<< "${pods[$name]}"
    pidfile="/run/fake/$name.pid"
    if [ -f "/etc/kubernetes/manifests/$name.yaml" ]; then
      if [ ! -f "$pidfile" ]; then
        cert="$base.crt"; key="$base.key"
        if [ "$base" = self ]; then cert=/run/fake/self.crt; key=/run/fake/self.key; fi
        if [ "${STALE:-}" = "$name" ]; then cert=/run/fake/stale.crt; key=/run/fake/stale.key; fi
        openssl s_server -quiet -www -accept "127.0.0.1:$port" -cert "$cert" -key "$key" \
          >/dev/null 2>&1 &
        echo $! > "$pidfile"
      fi
    elif [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")"; rm -f "$pidfile"
    fi
  done
  sleep 0.2
done
"""

# `crictl ps --name ^<pod>$ --state running -q`, answered from the stand-in kubelet's pids.
_FAKE_CRICTL = r"""#!/bin/bash
name="$(printf '%s\n' "$*" | sed -n 's/.*--name \^\([^$]*\)\$.*/\1/p')"
pidfile="/run/fake/$name.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then cat "$pidfile"; fi
"""


def _restart_node(engine: docker.DockerClient, era_build: EraBuilds, tmp_path: Path,
                  stale: str = "") -> tuple[nh.Node, int, str]:
    tag = standin.DEMO_TAG
    build = _built(era_build, tag, tmp_path)
    node = nh.make_node(engine, _stock(era_build, tag), tag, tmp_path / "node",
                        config=_era_config(tag))
    for name in ("etcd", "kube-scheduler"):
        (node.etc / "manifests" / f"{name}.yaml").write_text(
            f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n")
    fake = tmp_path / "fake"
    (fake / "bin").mkdir(parents=True)
    (fake / "kubelet").write_text(_FAKE_KUBELET)
    (fake / "bin" / "crictl").write_text(_FAKE_CRICTL)
    (fake / "bin" / "crictl").chmod(0o755)
    files = {**_config(tmp_path, _era_config(tag)), "/fake": fake}
    script = (
        f"STALE={stale} bash /fake/kubelet & "
        "for _ in $(seq 100); do openssl s_client -connect 127.0.0.1:6443 </dev/null "
        ">/dev/null 2>&1 && break; sleep 0.2; done; "
        "PATH=/fake/bin:$PATH LONGCERT_RESTART_TIMEOUT=4 LONGCERT_RESTART_POLL=0.2 "
        "bash /kit/renew.sh --config /cfg/cluster.yaml --restart; rc=$?; kill %1; exit $rc")
    code, out = nh.run(engine, node, build, script, files=files)
    print(out)
    return node, code, out


def test_restart_checks_what_every_endpoint_serves(era_build: EraBuilds, tmp_path: Path,
                                                   engine: docker.DockerClient) -> None:
    node, code, out = _restart_node(engine, era_build, tmp_path)
    assert code == 0, out
    lines = out.splitlines()
    order = [line for line in lines if line.startswith("+ restart ")]
    assert [line.split()[2].rstrip(":") for line in order] == [
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    for wanted in ("renew.sh: etcd serves pki/etcd/server.crt on :2379",
                   "renew.sh: kube-apiserver serves pki/apiserver.crt on :6443",
                   "renew.sh: kube-controller-manager answers TLS on :10257",
                   "renew.sh: kube-scheduler answers TLS on :10259",
                   "every static pod restarted and serving what it should"):
        assert wanted in lines, wanted
    assert sorted(p.name for p in (node.etc / "manifests").iterdir()) == [
        "etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml",
        "kube-scheduler.yaml"]


def test_restart_stops_at_the_first_mismatch_with_the_way_back(
        era_build: EraBuilds, tmp_path: Path, engine: docker.DockerClient) -> None:
    node, code, out = _restart_node(engine, era_build, tmp_path, stale="kube-apiserver")
    assert code == 1, out
    assert "renew.sh: kube-apiserver serves " in out and "on :6443, not pki/apiserver.crt" in out
    assert "To go back: cp -a /etc/kubernetes.longcert-backup-" in out
    assert "+ restart kube-controller-manager" not in out  # stopped at the first mismatch
    assert (node.etc / "manifests" / "kube-apiserver.yaml").is_file()
    assert nh.days_left((node.etc / "pki" / "apiserver.crt").read_bytes()) > 36499


def test_sigterm_mid_renewal_puts_every_file_back(era_build: EraBuilds, tmp_path: Path,
                                                 engine: docker.DockerClient) -> None:
    """A CI job or an operator stopping renew.sh once kubeadm has begun to write: the files
    come back byte for byte (the stop waits for kubeadm, then the trap restores)."""
    tag = standin.DEMO_TAG
    build = _built(era_build, tag, tmp_path)
    # RSA keys (the era's default): the renewal takes long enough to be stopped inside it.
    node = nh.make_node(engine, _stock(era_build, tag), tag, tmp_path / "node")
    before = nh.sums(node.etc)
    script = (
        "cp /etc/kubernetes/pki/apiserver.crt /tmp/before.crt; "
        "bash /kit/renew.sh --config /cfg/cluster.yaml > /tmp/out 2>&1 & pid=$!; "
        "for _ in $(seq 3000); do cmp -s /tmp/before.crt /etc/kubernetes/pki/apiserver.crt "
        "|| break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done; "
        "kill -TERM $pid; wait $pid; rc=$?; cat /tmp/out; exit $rc")
    code, out = nh.run(engine, node, build, script,
                       files=_config(tmp_path, verify.kubeadm_config(KubeVersion.parse(tag))))
    print(out)
    assert code == 143, out
    assert "failed while changing /etc/kubernetes" in out
    assert "is as it was before (byte for byte)" in out
    assert nh.sums(node.etc) == before
