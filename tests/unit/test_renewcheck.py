"""`invoke renew-check`: reading a cluster's PKI, the era's renewal, judging before/after."""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from longcert import ca, kit, renewcheck
from longcert.errors import ConfigError
from longcert.versions import KubeVersion
from tests.cli import invoke_without_engine

NOW = datetime(2026, 11, 30, tzinfo=UTC)
NODE = "cp-1"
ADVERTISE = "192.0.2.10"


def _leaf(common_name: str, issuer: x509.Certificate, issuer_key: ca.PrivateKey, days: int,
          sans: list[x509.GeneralName] | None = None, key: ca.PrivateKey | None = None
          ) -> tuple[x509.Certificate, ca.PrivateKey]:
    key = key or ca.new_key("rsa")
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name.from_rfc4514_string(f"CN={common_name}"))
               .issuer_name(issuer.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(minutes=5))
               .not_valid_after(NOW + timedelta(days=days)))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _kubeconfig(path: Path, server: str, ca_cert: x509.Certificate, cert: x509.Certificate,
                key: ca.PrivateKey) -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(_pem(ca_cert)).decode()}}],
        "users": [{"name": "u", "user": {
            "client-certificate-data": base64.b64encode(_pem(cert)).decode(),
            "client-key-data": base64.b64encode(ca.key_pem(key)).decode()}}],
    }))


def make_etc(root: Path, tag: str = "v1.28.7", days: int = 365) -> Path:
    """A kubeadm-shaped /etc/kubernetes: CAs, the apiserver cert, admin.conf, kubelet.conf."""
    pki = root / "pki"
    ca.make_ca_dir(pki, 10, now=NOW)
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    sans: list[x509.GeneralName] = [
        x509.DNSName(n) for n in (NODE, "kubernetes", "kubernetes.default",
                                  "kubernetes.default.svc", "kubernetes.default.svc.corp.local",
                                  "api.example.com")]
    sans += [x509.IPAddress(ipaddress.ip_address(a))
             for a in ("10.96.0.1", ADVERTISE, "203.0.113.7")]
    cert, key = _leaf("kube-apiserver", ca_cert, ca_key, days, sans)  # type: ignore[arg-type]
    (pki / "apiserver.crt").write_bytes(_pem(cert))
    (pki / "apiserver.key").write_bytes(ca.key_pem(key))
    server = f"https://{ADVERTISE}:6443"
    for conf, name in (("admin.conf", "kubernetes-admin"),
                       ("kubelet.conf", f"system:node:{NODE}")):
        client, client_key = _leaf(name, ca_cert, ca_key, days)  # type: ignore[arg-type]
        _kubeconfig(root / conf, server, ca_cert, client, client_key)
    (root / "manifests").mkdir()
    (root / "manifests" / "kube-apiserver.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "spec": {"containers": [{"name": "kube-apiserver",
                                 "image": f"registry.k8s.io/kube-apiserver:{tag}"}]}}))
    return root


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    return make_etc(tmp_path / "etc")


def test_inventory_reads_every_certificate_and_kubeconfig(etc: Path) -> None:
    seen, notes = renewcheck.inventory(etc)
    assert set(seen) == {"pki/ca.crt", "pki/front-proxy-ca.crt", "pki/etcd/ca.crt",
                         "pki/apiserver.crt", "admin.conf", "kubelet.conf"}
    assert notes == []
    assert seen["pki/apiserver.crt"].signer == "pki/ca.crt"
    assert seen["admin.conf"].server == f"https://{ADVERTISE}:6443"
    assert all(not s.problems for s in seen.values())


def test_a_broken_kubeconfig_and_key_are_seen(etc: Path) -> None:
    (etc / "pki" / "apiserver.key").write_bytes((etc / "pki" / "ca.key").read_bytes())
    data = yaml.safe_load((etc / "admin.conf").read_text())
    other = ca.new_ca_certificate("kubernetes", ca.new_key("rsa"), 10)
    data["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        _pem(other)).decode()
    (etc / "admin.conf").write_text(yaml.safe_dump(data))
    seen, _ = renewcheck.inventory(etc)
    assert seen["pki/apiserver.crt"].problems == ("apiserver.key does not match the certificate",)
    assert seen["admin.conf"].problems == ("certificate-authority-data is not pki/ca.crt",)


def test_the_node_settings_come_back_from_the_certificates(etc: Path) -> None:
    seen, _ = renewcheck.inventory(etc)
    node = renewcheck.derived_settings(seen, etc)
    assert node == renewcheck.NodeSettings(NODE, ADVERTISE, 6443, "", "10.96.0.0/12",
                                           "corp.local", ("api.example.com", "203.0.113.7"),
                                           "kubernetes")
    v19 = yaml.safe_load(renewcheck.render_config(KubeVersion.parse("v1.9.4"), node, True))
    assert v19["kind"] == "MasterConfiguration" and v19["nodeName"] == NODE
    assert v19["api"] == {"advertiseAddress": ADVERTISE, "bindPort": 6443}
    assert v19["apiServerCertSANs"] == ["api.example.com", "203.0.113.7"]
    assert "certificateValidityPeriod" not in renewcheck.render_config(
        KubeVersion.parse("v1.28.7"), node, True)
    init, cluster = yaml.safe_load_all(
        renewcheck.render_config(KubeVersion.parse("v1.33.7"), node, True))
    assert init["localAPIEndpoint"]["advertiseAddress"] == ADVERTISE
    assert cluster["apiServer"]["certSANs"] == ["api.example.com", "203.0.113.7"]
    assert cluster["certificateValidityPeriod"] == "8760h0m0s"
    assert cluster["kubernetesVersion"] == "v1.33.7"


def test_an_endpoint_other_than_the_advertise_address_is_kept(etc: Path) -> None:
    data = yaml.safe_load((etc / "admin.conf").read_text())
    data["clusters"][0]["cluster"]["server"] = "https://api.example.com:8443"
    (etc / "admin.conf").write_text(yaml.safe_dump(data))
    seen, _ = renewcheck.inventory(etc)
    node = renewcheck.derived_settings(seen, etc)
    assert node.control_plane_endpoint == "api.example.com:8443"
    assert node.cert_sans == ("203.0.113.7",)


@pytest.mark.parametrize(("tag", "embedded", "steps"), [
    ("v1.9.4", True, [(True, "alpha phase certs all"), (True, "alpha phase kubeconfig all")]),
    ("v1.12.10", True, [(False, "alpha phase certs renew all"),
                        (True, "alpha phase kubeconfig all")]),
    ("v1.13.5", True, [(False, "alpha certs renew all"), (True, "init phase kubeconfig all")]),
    ("v1.14.8", False, [(False, "alpha certs renew all"), (True, "init phase kubeconfig all")]),
    ("v1.15.12", True, [(False, "alpha certs renew all")]),
    ("v1.28.7", True, [(False, "certs renew all")]),
    ("v1.38.0", False, [(False, "certs renew all")]),
])
def test_the_renewal_of_each_era(tag: str, embedded: bool, steps: list[tuple[bool, str]],
                                 etc: Path) -> None:
    """renew-check takes its steps from the kit's one plan (kit.renew_plan), kubelet.conf
    written again only while it embeds its certificate and the kubeconfig phase can."""
    version = KubeVersion.parse(tag)
    before, _ = renewcheck.inventory(etc)
    if not embedded:
        del before["kubelet.conf"]
    plan = renewcheck.plan_for(version, before)
    got = [(bool(step.aside), " ".join(renewcheck.renew_argv(step)[1:-2]))
           for step in plan.steps]
    assert got == steps
    assert plan == kit.renew_plan(version, embedded and version.minor < 15)
    assert ("kubelet.conf" in plan.renewed) is (embedded and version.minor < 15)
    assert "pki/ca.crt" not in plan.renewed and "admin.conf" in plan.renewed
    kubeconfig_steps = [s for s in plan.steps if "kubeconfig" in s.words]
    for step in kubeconfig_steps:
        assert ("kubelet.conf" in step.aside) is embedded


def test_the_version_comes_from_the_manifest_or_the_config(etc: Path) -> None:
    assert renewcheck.pki_version(etc, None) == (KubeVersion.parse("v1.28.7"),
                                                 "manifests/kube-apiserver.yaml")
    shutil.rmtree(etc / "manifests")
    config = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n" \
             "kubernetesVersion: v1.28.2\n"
    assert renewcheck.pki_version(etc, config)[0] == KubeVersion.parse("v1.28.2")
    with pytest.raises(ConfigError, match="cannot tell which Kubernetes version"):
        renewcheck.pki_version(etc, None)


def _renewed(etc: Path, tmp_path: Path, days: int) -> Path:
    """A copy of ``etc`` whose leaves were re-issued by the same CA for ``days``."""
    after = tmp_path / "after"
    shutil.copytree(etc, after)
    pki = after / "pki"
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    old = x509.load_pem_x509_certificate((pki / "apiserver.crt").read_bytes())
    sans = list(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    cert, key = _leaf("kube-apiserver", ca_cert, ca_key, days, sans)  # type: ignore[arg-type]
    (pki / "apiserver.crt").write_bytes(_pem(cert))
    (pki / "apiserver.key").write_bytes(ca.key_pem(key))
    client, client_key = _leaf("kubernetes-admin", ca_cert, ca_key, days)  # type: ignore[arg-type]
    _kubeconfig(after / "admin.conf", f"https://{ADVERTISE}:6443", ca_cert, client, client_key)
    return after


def _judge(etc: Path, after: Path, years: int = 10) -> list[renewcheck.Row]:
    before, _ = renewcheck.inventory(etc)
    seen, _ = renewcheck.inventory(after)
    return renewcheck.judge(before, seen, ("pki/apiserver.crt", "admin.conf"), years, NOW)


def test_every_leaf_moving_to_the_asked_validity_passes(etc: Path, tmp_path: Path) -> None:
    rows = {r.file: r for r in _judge(etc, _renewed(etc, tmp_path, 3650))}
    assert not rows["kubelet.conf"].ok  # embedded and one year: nothing renews it
    assert all(r.ok for f, r in rows.items() if f != "kubelet.conf"), [
        r.problems for r in rows.values()]
    long_kubelet = make_etc(tmp_path / "long", days=3650)
    rows = {r.file: r for r in _judge(long_kubelet, _renewed(long_kubelet, tmp_path / "l", 3650))}
    assert rows["kubelet.conf"].ok and rows["kubelet.conf"].notes == (
        "not renewed by kubeadm (the kubelet rotates its own client certificate)",)


def test_an_embedded_kubelet_conf_that_ends_before_the_asked_validity_fails(
        etc: Path, tmp_path: Path) -> None:
    """Nodes initialised before v1.17 keep kubelet.conf's certificate inside, and nothing renews
    it (was: reported ok, rc 0)."""
    rows = {r.file: r for r in _judge(etc, _renewed(etc, tmp_path, 3650))}
    assert rows["kubelet.conf"].problems == (
        "embeds its client certificate, which ends in 365 days and which nothing renews: point "
        "it at /var/lib/kubelet/pki/kubelet-client-current.pem (renew.sh does when the kubelet "
        "rotates its certificate, kubeadm-certs.md)",)
    assert rows["pki/apiserver.crt"].notes == ()  # ends with its 10y CA, within a day


def test_shorter_than_asked_fails_and_outliving_the_ca_is_noted(etc: Path,
                                                                tmp_path: Path) -> None:
    rows = {r.file: r for r in _judge(etc, _renewed(etc, tmp_path, 365))}
    assert rows["pki/apiserver.crt"].problems == (
        "ends in 365 days, shorter than the asked 3650 (10y)",)
    long_rows = {r.file: r for r in _judge(etc, _renewed(etc, tmp_path / "x", 36500), 100)}
    assert long_rows["admin.conf"].ok
    assert long_rows["admin.conf"].notes[0].startswith("outlives its CA, which ends")


def test_not_reissued_changed_identity_replaced_ca_and_broken_kubeconfig_fail(
        etc: Path, tmp_path: Path) -> None:
    after = _renewed(etc, tmp_path, 3650)
    shutil.copy2(etc / "admin.conf", after / "admin.conf")  # not re-issued
    pki = after / "pki"
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    cert, _ = _leaf("kube-apiserver", ca_cert, ca_key, 3650)  # type: ignore[arg-type]
    (pki / "apiserver.crt").write_bytes(_pem(cert))  # SANs lost
    (pki / "apiserver.key").write_bytes(ca.key_pem(ca.new_key("rsa")))  # and the wrong key
    ca.make_ca_dir(tmp_path / "other", 10)
    shutil.copy2(tmp_path / "other" / "front-proxy-ca.crt", pki / "front-proxy-ca.crt")
    rows = {r.file: r for r in _judge(etc, after)}
    assert rows["admin.conf"].problems == ("not re-issued by the renewal",
                                           "ends in 365 days, shorter than the asked 3650 (10y)")
    problems = rows["pki/apiserver.crt"].problems
    assert problems[0].startswith("identity changed: CN=kube-apiserver ['DNS:cp-1'")
    assert problems[1] == "apiserver.key does not match the certificate"
    assert rows["pki/front-proxy-ca.crt"].problems == (
        "a CA changed: renewal must never replace a CA",)


@pytest.mark.parametrize(("args", "message"), [
    (["--etc", "{tmp}"], "has no pki/ca.crt"),
    (["--etc", "{etc}"], "--years is required"),
    (["--etc", "{etc}", "--years", "0"], "--years must be at least 1 year"),
    (["--years", "10"], "--etc is required"),
])
def test_bad_input_is_one_line_and_leaves_the_input_alone(
        args: list[str], message: str, etc: Path, tmp_path: Path) -> None:
    binary = tmp_path / "kubeadm"
    binary.write_bytes(b"\x7fELF")
    before = ca.checksums(etc)
    filled = [a.format(tmp=tmp_path, etc=etc) for a in args]
    result = invoke_without_engine("renew-check", "--binary", str(binary), *filled,
                                   tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert ca.checksums(etc) == before


# --- hostile and malformed files in the --etc copy (issue 22) -------------------------------


def _duplicate_extension_pem(etc: Path) -> bytes:
    """pki/ca.crt with its KeyUsage extension's OID turned into BasicConstraints': two
    BasicConstraints extensions (the signature no longer matches; parsing is what is tried)."""
    der = x509.load_pem_x509_certificate((etc / "pki" / "ca.crt").read_bytes()).public_bytes(
        serialization.Encoding.DER)
    key_usage, basic_constraints = bytes.fromhex("0603551d0f"), bytes.fromhex("0603551d13")
    assert key_usage in der and basic_constraints in der
    forged = der.replace(key_usage, basic_constraints, 1)
    body = base64.encodebytes(forged).decode().replace("\n", "")
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n".encode()


@pytest.mark.parametrize(("conf", "note"), [
    (b"\xff\xfeusers: []\n", "admin.conf: not a kubeconfig (not UTF-8 YAML), left out"),
    (b"- a list\n", "admin.conf: not a kubeconfig (not a mapping), left out"),
    (b"users: {user: {client-certificate-data: x}}\n",
     "admin.conf: client certificate in no client certificate, not embedded (not renewed)"),
    (b"users: [{user: {client-certificate-data: 42}}]\n",
     "admin.conf: its client-certificate-data is not a certificate"),
])
def test_a_malformed_kubeconfig_is_a_note_not_an_internal_error(
    etc: Path, conf: bytes, note: str
) -> None:
    (etc / "admin.conf").write_bytes(conf)
    seen, notes = renewcheck.inventory(etc)
    assert "admin.conf" not in seen and note in notes


def test_bad_base64_in_client_key_data_is_a_problem(etc: Path) -> None:
    data = yaml.safe_load((etc / "admin.conf").read_text())
    data["users"][0]["user"]["client-key-data"] = "not base64 !!!"
    (etc / "admin.conf").write_text(yaml.safe_dump(data))
    seen, _ = renewcheck.inventory(etc)
    assert seen["admin.conf"].problems == ("client-key-data is not base64",)


def test_a_certificate_with_a_duplicate_extension_is_left_out_with_a_note(etc: Path) -> None:
    (etc / "pki" / "odd.crt").write_bytes(_duplicate_extension_pem(etc))
    seen, notes = renewcheck.inventory(etc)
    assert "pki/odd.crt" not in seen
    assert any(n.startswith("pki/odd.crt: not a PEM certificate (a malformed extension")
               for n in notes), notes


@pytest.mark.parametrize("make", [
    lambda p: os.mkfifo(p),
    lambda p: p.symlink_to("/dev/zero"),
    lambda p: os.truncate(p.open("wb").close() or p, 3 << 30),  # 3 GB, sparse
])
def test_a_fifo_a_device_or_a_huge_crt_is_refused_at_once(
    etc: Path, make: Callable[[Path], object]
) -> None:
    make(etc / "pki" / "hostile.crt")
    with pytest.raises(ConfigError) as err:
        renewcheck.inventory(etc)
    message = str(err.value)
    assert "pki/hostile.crt" in message and "\n" not in message and len(message) < 300
    assert any(why in message for why in ("FIFO", "leads outside", "bytes, more than"))


def test_a_symlink_loop_in_the_copy_is_one_short_line(etc: Path) -> None:
    (etc / "pki" / "a.crt").symlink_to(etc / "pki" / "b.crt")
    (etc / "pki" / "b.crt").symlink_to(etc / "pki" / "a.crt")
    with pytest.raises(ConfigError) as err:
        ca.checksums(etc, "--etc file")
    assert "loop" in str(err.value) and len(str(err.value)) < 300
