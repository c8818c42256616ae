"""How a certificate is judged: read every certificate and kubeconfig kubeadm wrote into a
directory and check each one's validity, CA-ness, signer and key type against what the version
makes (:func:`check_directory`, :func:`check_cert`, :func:`key_type_problems`); pure, files in
and verdicts (:class:`CertCheck`) out.
"""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.utils import CryptographyDeprecationWarning

from longcert.versions import KubeVersion

TOLERANCE_DAYS = 1.0
DAYS_PER_YEAR = 365  # kubeadm's duration365d


@dataclass(frozen=True)
class CertCheck:
    """One certificate's verdict."""

    file: str  # relative to the kubernetes dir; "admin.conf" for an embedded client cert
    kind: str  # "ca" or "leaf"
    subject: str
    issuer: str
    not_before: str
    not_after: str
    days: float
    expected_days: int
    problems: tuple[str, ...] = ()
    # "init": made by the init phases; "config-8760h-ecdsa": made with a config that stores the
    # upstream periods and picks ECDSA-P256 keys (v1.31+); "<stage>-renew": re-made by certs
    # renew all afterwards.
    stage: str = "init"
    serial: int = 0
    key_type: str = ""  # RSA-2048, ECDSA-P256, ... ("" in reports written before it was kept)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        """The file, with the stage when it is not the plain init run."""
        return self.file if self.stage == "init" else f"{self.file} ({self.stage})"


# --- what each version makes (pure) -------------------------------------------------------


CA_CERTS = ("ca", "front-proxy-ca", "etcd/ca")


def expected_certs(version: KubeVersion) -> tuple[str, ...]:
    """Certificate files (without .crt) kubeadm makes in this version."""
    certs = ["ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client"]
    if (version.major, version.minor) >= (1, 10):
        # kubeadm v1.10 started securing etcd with its own CA.
        certs += [
            "etcd/ca",
            "etcd/server",
            "etcd/peer",
            "etcd/healthcheck-client",
            "apiserver-etcd-client",
        ]
    return tuple(certs)


def expected_kubeconfigs(version: KubeVersion) -> tuple[str, ...]:
    """Kubeconfig files kubeadm writes in this version."""
    confs = ["admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf"]
    if (version.major, version.minor) >= (1, 29):
        # v1.29 split the break-glass super-admin.conf off admin.conf.
        confs.append("super-admin.conf")
    return tuple(confs)


# --- reading what was generated (pure: files in, checks out) ------------------------------


def _name(name: x509.Name) -> str:
    return name.rfc4514_string()


def _days(cert: x509.Certificate) -> float:
    delta = cert.not_valid_after_utc - cert.not_valid_before_utc
    return delta.total_seconds() / 86400


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_cert(
    file: str,
    cert: x509.Certificate,
    expected_kind: str,
    leaf_years: int,
    ca_years: int,
    cas: dict[str, x509.Certificate],
) -> CertCheck:
    """Validity, CA-ness, signer and expiry against the signer, for one certificate."""
    kind = "ca" if _is_ca(cert) else "leaf"
    expected_days = (ca_years if expected_kind == "ca" else leaf_years) * DAYS_PER_YEAR
    days = _days(cert)
    problems = []
    if kind != expected_kind:
        problems.append(f"is a {kind} certificate, expected a {expected_kind}")
    if abs(days - expected_days) > TOLERANCE_DAYS:
        problems.append(
            f"valid {days:.1f} days, expected {expected_days} ({expected_days // DAYS_PER_YEAR}y)"
        )
    if expected_kind == "leaf":
        issuer = signing_ca(cert, cas)
        if issuer is None:
            problems.append(f"not signed by any CA in this directory (issuer {_name(cert.issuer)})")
        else:
            # Leaves made seconds after their CA with the same lifetime end seconds later;
            # only outliving the CA by more than the tolerance is a broken chain.
            slack = timedelta(days=TOLERANCE_DAYS)
            if cert.not_valid_after_utc > issuer.not_valid_after_utc + slack:
                problems.append(
                    "leaf outlives its CA "
                    f"({_iso(cert.not_valid_after_utc)} > "
                    f"{_iso(issuer.not_valid_after_utc)})"
                )
    return CertCheck(
        file,
        kind,
        _name(cert.subject),
        _name(cert.issuer),
        _iso(cert.not_valid_before_utc),
        _iso(cert.not_valid_after_utc),
        round(days, 2),
        expected_days,
        tuple(problems),
        serial=serial_number(cert),
        key_type=key_type(cert),
    )


def signing_ca(cert: x509.Certificate, cas: dict[str, x509.Certificate]) -> x509.Certificate | None:
    """The CA whose key signed ``cert``; names alone are not enough (v1.9 calls every CA
    "kubernetes")."""
    for ca in cas.values():
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def load_certificate(data: bytes) -> x509.Certificate:
    """Parse PEM; old kubeadm gives its CAs serial number 0, which cryptography warns about.
    The extensions are parsed here too (cryptography parses them lazily): a certificate with a
    duplicate or malformed extension is a ValueError now, not an error wherever it is read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        cert = x509.load_pem_x509_certificate(data)
        try:
            _ = cert.extensions
        except (x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
            raise ValueError(f"a malformed extension: {type(exc).__name__}") from None
        return cert


def serial_number(cert: x509.Certificate) -> int:
    """The serial, read without cryptography's warning about upstream's serial 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return int(cert.serial_number)


def kubeconfig_client_certs(path: Path) -> list[x509.Certificate]:
    """Client certificates embedded (client-certificate-data) in a kubeconfig."""
    data = yaml.safe_load(path.read_text()) or {}
    certs = []
    for user in data.get("users") or []:
        embedded = (user.get("user") or {}).get("client-certificate-data")
        if embedded:
            certs.append(load_certificate(base64.b64decode(embedded)))
    return certs


def check_directory(
    root: Path, version: KubeVersion, leaf_years: int, ca_years: int
) -> tuple[list[CertCheck], list[str]]:
    """Every certificate under ``root`` (pki/ and *.conf) checked; plus missing-file problems."""
    pki = root / "pki"
    problems: list[str] = []
    cas: dict[str, x509.Certificate] = {}
    loaded: dict[str, x509.Certificate] = {}
    for crt in sorted(pki.rglob("*.crt")) if pki.is_dir() else []:
        name = crt.relative_to(pki).as_posix().removesuffix(".crt")
        try:
            loaded[name] = load_certificate(crt.read_bytes())
        except ValueError as exc:
            problems.append(f"pki/{name}.crt: not a PEM certificate ({exc})")
            continue
        if name in CA_CERTS:
            cas[name] = loaded[name]
    for name in expected_certs(version):
        if name not in loaded:
            problems.append(f"pki/{name}.crt: missing (kubeadm {version.tag} makes it)")
    checks = [
        check_cert(
            f"pki/{name}.crt", cert, "ca" if name in CA_CERTS else "leaf", leaf_years, ca_years, cas
        )
        for name, cert in loaded.items()
    ]
    for conf in expected_kubeconfigs(version):
        path = root / conf
        if not path.is_file():
            problems.append(f"{conf}: missing (kubeadm {version.tag} makes it)")
            continue
        client_certs = kubeconfig_client_certs(path)
        if not client_certs:
            problems.append(f"{conf}: holds no embedded client certificate")
        checks += [
            check_cert(conf, cert, "leaf", leaf_years, ca_years, cas) for cert in client_certs
        ]
    return checks, problems


def key_type(cert: x509.Certificate) -> str:
    """The certificate key's type as kubeadm's encryptionAlgorithm names it (RSA-2048,
    ECDSA-P256, ...), or the key class's name."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA-P{key.curve.key_size}"
    return type(key).__name__


def key_type_problems(
    root: Path, version: KubeVersion, algorithm: str, *, skip: frozenset[str] = frozenset()
) -> list[str]:
    """Every certificate kubeadm made under ``root`` (files in ``skip`` were not made by it)
    whose key is not of ``algorithm``: a config's encryptionAlgorithm that did not reach a file
    would leave that file unverified for the key type it claims to cover."""
    found: list[tuple[str, x509.Certificate]] = []
    for name in expected_certs(version):
        path = root / "pki" / f"{name}.crt"
        if path.is_file() and f"pki/{name}.crt" not in skip:
            found.append((f"pki/{name}.crt", load_certificate(path.read_bytes())))
    for conf in expected_kubeconfigs(version):
        if (root / conf).is_file():
            found += [(conf, cert) for cert in kubeconfig_client_certs(root / conf)]
    return [
        f"{file}: {key_type(cert)} key, the config asked for {algorithm}"
        for file, cert in found
        if key_type(cert) != algorithm
    ]
