"""A control-plane node's files for running the kit's renew.sh as root in a network-less
container: ``/etc/kubernetes`` made by a build's own kubeadm (every certificate and kubeconfig
of its era), then re-signed by the test so that each leaf looks like a stock one in mid-life
(backdated NotBefore, a chosen NotAfter), the static pod manifests renew.sh reads, and
``/var/lib/kubelet/pki/kubelet-client-current.pem`` as a rotating kubelet writes it."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from longcert import verify
from longcert.versions import KubeVersion

IMAGE = "longcert/debian-base:bookworm"  # bash, openssl, coreutils: what a node has
NODE_NAME = verify.NODE_NAME
ADVERTISE = verify.ADVERTISE_ADDRESS
KUBELET_PEM = "kubelet-client-current.pem"


@dataclass(frozen=True)
class Node:
    """The directories a renew.sh run sees as /etc/kubernetes and /var/lib/kubelet/pki."""

    root: Path
    version: KubeVersion

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def kubelet_pki(self) -> Path:
        return self.root / "kubelet-pki"


def sums(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mode of every file under ``root``."""
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                             p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file()}


def run(engine: docker.DockerClient, node: Node, build: Path, script: str, *,
        hostname: str = "node-under-test", files: dict[str, Path] | None = None,
        user: str = "0", kubeadm: Path | None = None) -> tuple[int, str]:
    """``script`` under bash as root in a network-less container holding the node's files, the
    build's kubeadm (or ``kubeadm``) at /usr/bin/kubeadm and its kit at /kit; (exit code,
    output)."""
    volumes = {
        str(node.etc): {"bind": "/etc/kubernetes", "mode": "rw"},
        str(node.kubelet_pki): {"bind": "/var/lib/kubelet/pki", "mode": "rw"},
        str(kubeadm or build / "kubeadm-linux-amd64"): {"bind": "/usr/bin/kubeadm", "mode": "ro"},
    }
    if (build / "kit").is_dir():
        volumes[str(build / "kit")] = {"bind": "/kit", "mode": "ro"}
    for target, source in (files or {}).items():
        volumes[str(source)] = {"bind": target, "mode": "ro"}
    box = engine.containers.run(IMAGE, ["bash", "-c", script], detach=True, user=user,
                                network_mode="none", hostname=hostname, volumes=volumes)
    try:
        code = int(box.wait(timeout=300)["StatusCode"])
        return code, box.logs(stdout=True, stderr=True).decode()
    finally:
        box.remove(force=True)


def make_node(engine: docker.DockerClient, stock: Path, tag: str, root: Path, *,
              left_days: int = 180, span_days: int = 365, embedded_kubelet: bool | None = None,
              config: str | None = None) -> Node:
    """A node of ``tag`` made by the ``stock`` kubeadm binary (upstream's 1y/10y values), whose
    leaves and kubeconfig certificates span ``span_days`` and end in ``left_days``. kubelet.conf
    embeds its certificate if ``embedded_kubelet`` (default: as kubeadm left it on an init node
    of that version: embedded before v1.17), else points at the kubelet's rotated certificate,
    which exists either way. ``config``: the init config (default the era's, verify's)."""
    version = KubeVersion.parse(tag)
    node = Node(root, version)
    node.etc.mkdir(parents=True)
    node.kubelet_pki.mkdir()
    config_file = root / "init.yaml"
    config_file.write_text(config or verify.kubeadm_config(version))
    make = " && ".join(" ".join(["/usr/bin/kubeadm", *argv[1:]])
                       for argv in verify.generate_commands(version, "/cfg/init.yaml"))
    code, log = run(engine, node, stock.parent, make, files={"/cfg/init.yaml": config_file},
                    kubeadm=stock)
    assert code == 0, log
    age(node.etc, left_days=left_days, span_days=span_days)
    write_manifests(node.etc, tag)
    write_kubelet_pem(node)
    if embedded_kubelet is None:
        embedded_kubelet = (version.major, version.minor) < (1, 17)
    if not embedded_kubelet:
        point_kubelet_conf_at_pem(node.etc)
    return node


def _cas(pki: Path) -> list[tuple[x509.Certificate, Any]]:
    cas = []
    for name in verify.CA_CERTS:
        crt = pki / f"{name}.crt"
        if crt.is_file():
            cas.append((verify.load_certificate(crt.read_bytes()),
                        serialization.load_pem_private_key(
                            (pki / f"{name}.key").read_bytes(), None)))
    return cas


def _resign(cert: x509.Certificate, cas: list[tuple[x509.Certificate, Any]],
            not_before: datetime, not_after: datetime) -> x509.Certificate:
    ca_cert, ca_key = next((c, k) for c, k in cas if _issued_by(cert, c))
    builder = (x509.CertificateBuilder().subject_name(cert.subject)
               .issuer_name(ca_cert.subject).public_key(cert.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after))
    for ext in cert.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(ca_key, hashes.SHA256())


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:
        return False
    return True


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def age(etc: Path, *, left_days: int, span_days: int) -> None:
    """Re-sign every leaf and kubeconfig client certificate with the same CA, subject,
    extensions and key, valid from ``span_days - left_days`` days ago for ``span_days``."""
    now = datetime.now(UTC).replace(microsecond=0)
    not_after = now + timedelta(days=left_days)
    not_before = not_after - timedelta(days=span_days)
    cas = _cas(etc / "pki")
    for crt in sorted((etc / "pki").rglob("*.crt")):
        if crt.relative_to(etc / "pki").as_posix().removesuffix(".crt") in verify.CA_CERTS:
            continue
        cert = verify.load_certificate(crt.read_bytes())
        crt.write_bytes(_pem(_resign(cert, cas, not_before, not_after)))
    for conf in sorted(etc.glob("*.conf")):
        data = yaml.safe_load(conf.read_text())
        user = data["users"][0]["user"]
        if "client-certificate-data" not in user:
            continue
        cert = verify.load_certificate(base64.b64decode(user["client-certificate-data"]))
        new = _resign(cert, cas, not_before, not_after)
        user["client-certificate-data"] = base64.b64encode(_pem(new)).decode()
        conf.write_text(yaml.safe_dump(data, sort_keys=False))


def write_manifests(etc: Path, tag: str, *, kcm_flow_style: bool = False) -> None:
    """The kube-apiserver and kube-controller-manager static pod manifests renew.sh reads."""
    manifests = etc / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / "kube-apiserver.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n"
        "  - command:\n    - kube-apiserver\n"
        f"    - --advertise-address={ADVERTISE}\n    - --secure-port=6443\n"
        f"    image: registry.k8s.io/kube-apiserver:{tag}\n    name: kube-apiserver\n")
    command = ('["kube-controller-manager", "--cluster-signing-cert-file='
               '/etc/kubernetes/pki/ca.crt"]' if kcm_flow_style else
               "\n    - kube-controller-manager\n"
               "    - --cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt")
    (manifests / "kube-controller-manager.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-controller-manager\nspec:\n"
        f"  containers:\n  - command: {command}\n"
        f"    image: registry.k8s.io/kube-controller-manager:{tag}\n"
        "    name: kube-controller-manager\n")


def write_kubelet_pem(node: Node, *, node_name: str = NODE_NAME, days: int = 300) -> Path:
    """kubelet-client-current.pem as the kubelet writes it after rotation: an ECDSA P-256 key
    and its certificate for system:node:<name>, signed by the cluster CA, in one file."""
    pki = node.etc / "pki"
    ca_cert = verify.load_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([
        x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, f"system:node:{node_name}")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    pem = node.kubelet_pki / KUBELET_PEM
    pem.write_bytes(_pem(cert) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    os.chmod(pem, 0o600)
    return pem


def point_kubelet_conf_at_pem(etc: Path) -> None:
    """kubelet.conf as kubeadm's kubelet-finalize phase (v1.17+) leaves it."""
    conf = etc / "kubelet.conf"
    data = yaml.safe_load(conf.read_text())
    user = data["users"][0]["user"]
    user.pop("client-certificate-data", None)
    user.pop("client-key-data", None)
    user["client-certificate"] = f"/var/lib/kubelet/pki/{KUBELET_PEM}"
    user["client-key"] = f"/var/lib/kubelet/pki/{KUBELET_PEM}"
    conf.write_text(yaml.safe_dump(data, sort_keys=False))


def days_left(pem: bytes) -> float:
    cert = verify.load_certificate(pem)
    return (cert.not_valid_after_utc - datetime.now(UTC)).total_seconds() / 86400


def kubeconfig_cert(conf: Path) -> bytes:
    user = yaml.safe_load(conf.read_text())["users"][0]["user"]
    return base64.b64decode(user["client-certificate-data"])
