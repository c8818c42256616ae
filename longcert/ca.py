"""A long-lived CA of your own, and proof that a kubeadm signs with it.

``invoke ca --out DIR`` writes the three CAs kubeadm uses (``ca``, ``front-proxy-ca``,
``etcd/ca``) and the service-account key pair into DIR in the layout of kubeadm's
``certificatesDir`` (``/etc/kubernetes/pki``): ``DIR/ca.crt``, ``DIR/ca.key``,
``DIR/front-proxy-ca.crt``, ``DIR/front-proxy-ca.key``, ``DIR/etcd/ca.crt``, ``DIR/etcd/ca.key``,
``DIR/sa.key``, ``DIR/sa.pub``. kubeadm, finding ``ca.crt`` + ``ca.key`` (and the others) in its
certificatesDir, signs every leaf with them and makes no CA of its own (``CreatePKIAssets`` in
``cmd/kubeadm/app/phases/certs/certs.go``, every release since v1.9).

Keys are created with mode 0600 (``os.open`` with ``O_EXCL``, so they are never readable by
others, not even for a moment), in a private directory renamed into place only when complete;
their contents are never printed.

``invoke verify --ca-dir DIR`` (:func:`verify_with_ca`) copies those files into the scratch
certificatesDir before kubeadm runs, then proves that every leaf and kubeconfig is signed by them,
that the CA files were left as they were, and that no leaf outlives its CA.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from longcert import userfiles, verify
from longcert.errors import ConfigError, VerifyError
from longcert.settings import MAX_YEARS, parse_years
from longcert.versions import KubeVersion

# (file without .crt/.key, common name): kubeadm's own names for its CAs
# (cmd/kubeadm/app/phases/certs/certlist.go: KubeadmCertRootCA, KubeadmCertFrontProxyCA,
# KubeadmCertEtcdCA).
CA_SUBJECTS: tuple[tuple[str, str], ...] = (
    ("ca", "kubernetes"),
    ("front-proxy-ca", "front-proxy-ca"),
    ("etcd/ca", "etcd-ca"),
)
SERVICE_ACCOUNT_FILES = ("sa.key", "sa.pub")
ALGORITHMS = ("rsa", "ecdsa")
# kubeadm back-dates certificates by kubeadmconstants.CertificateBackdate (five minutes, from
# v1.28) so that a node whose clock is a little behind still accepts them.
BACKDATE = timedelta(minutes=5)
DAYS_PER_YEAR = verify.DAYS_PER_YEAR


def supports_ecdsa(version: KubeVersion) -> bool:
    """kubeadm makes ECDSA-P256 keys from v1.31, with v1beta4's
    ``ClusterConfiguration.encryptionAlgorithm`` (kubernetes/kubernetes#120417, extended in
    #123054). Before, RSA-2048 only (v1.19-v1.30 had the alpha PublicKeysECDSA feature gate,
    which longcert does not offer)."""
    return (version.major, version.minor) >= (1, 31)


def parse_algorithm(value: str | None, version: KubeVersion | None) -> str:
    """``rsa`` (the default) or ``ecdsa``; ECDSA only for a version whose kubeadm has it."""
    algorithm = (value or "rsa").strip().lower()
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"--algorithm must be rsa or ecdsa, got {value!r}")
    if algorithm == "ecdsa" and version is not None and not supports_ecdsa(version):
        raise ConfigError(
            f"--algorithm ecdsa: kubeadm {version.tag} makes RSA-2048 keys only",
            "ClusterConfiguration.encryptionAlgorithm (ECDSA-P256) arrived in v1.31; use rsa",
        )
    return algorithm


# --- making the CAs ------------------------------------------------------------------------


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key(algorithm: str) -> PrivateKey:
    """RSA-2048 or ECDSA P-256, kubeadm's two defaults."""
    if algorithm == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_ca_certificate(
    common_name: str, key: PrivateKey, years: int, now: datetime | None = None
) -> x509.Certificate:
    """A self-signed CA as kubeadm makes one (``NewSelfSignedCACert``): random serial,
    CA:TRUE, key usage digitalSignature + keyEncipherment + keyCertSign (critical), the common
    name as its one DNS name, valid ``years`` 365-day years from now (back-dated 5 minutes)."""
    now = now or datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=years * DAYS_PER_YEAR))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), False)
        .sign(key, hashes.SHA256())
    )


def key_pem(key: PrivateKey) -> bytes:
    """The key as kubeadm writes it: PKCS#1 ``RSA PRIVATE KEY`` or SEC1 ``EC PRIVATE KEY``
    (what every kubeadm since v1.9 reads back)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the first byte on (never an existing file)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@dataclass(frozen=True)
class MadeCA:
    """One CA ``invoke ca`` wrote."""

    file: str  # e.g. "etcd/ca.crt"
    subject: str
    not_after: str
    algorithm: str
    sha256: str  # of the certificate's DER


def make_ca_dir(
    out: Path, years: int, algorithm: str = "rsa", now: datetime | None = None
) -> list[MadeCA]:
    """Write the three CAs and sa.key/sa.pub into ``out`` (which must not exist or be empty).

    Everything is written into a private temporary directory beside ``out`` and renamed into
    place at the end, so ``out`` is either complete or absent (it ends up mode 0700)."""
    if years < 1 or years > MAX_YEARS:
        raise ConfigError(f"--years must be 1-{MAX_YEARS}, got {years}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"--out {out} already exists and is not an empty directory",
            "refusing to overwrite a CA; pick a new directory",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # mode 0700
    made: list[MadeCA] = []
    try:
        for base, common_name in CA_SUBJECTS:
            key = new_key(algorithm)
            cert = new_ca_certificate(common_name, key, years, now)
            _write_new(staging / f"{base}.key", key_pem(key), 0o600)
            _write_new(staging / f"{base}.crt", cert.public_bytes(serialization.Encoding.PEM),
                       0o644)
            made.append(MadeCA(
                f"{base}.crt", cert.subject.rfc4514_string(),
                verify._iso(cert.not_valid_after_utc), algorithm,
                hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
            ))
        # kubeadm's service-account key is always RSA-2048 (certs.go
        # CreateServiceAccountKeyAndPublicKeyFiles), whatever the CAs' algorithm.
        sa_key = new_key("rsa")
        _write_new(staging / "sa.key", key_pem(sa_key), 0o600)
        _write_new(staging / "sa.pub", sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
        if out.exists():
            out.rmdir()  # empty, checked above; rename cannot replace it otherwise on all systems
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return made


def make(
    years: str | int | None, out: str | None, algorithm: str | None, version: str | None
) -> list[MadeCA]:
    """`invoke ca`: check the flags, write the CA directory, return what was made."""
    if not out:
        raise ConfigError("--out is required", "a new directory for the CA files")
    if years is None:
        raise ConfigError("--years is required", "the CAs' validity, e.g. --years 100")
    kube_version = KubeVersion.parse(version) if version else None
    chosen = parse_algorithm(algorithm, kube_version)
    return make_ca_dir(Path(out), parse_years(years, "years"), chosen)


# --- reading a CA directory back (for verify --ca-dir) -------------------------------------


@dataclass(frozen=True)
class CADir:
    """The CAs of a checked CA directory: certificates by name (``ca``, ``front-proxy-ca``,
    ``etcd/ca``), and the sha256 of every file in it before anything ran."""

    path: Path
    certs: dict[str, x509.Certificate]
    checksums: dict[str, str]


def _public_der(public: PublicKeyTypes) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def checksums(root: Path, what: str = "--ca-dir file") -> dict[str, str]:
    """sha256 and mode of every file under ``root``, by relative path (a symlink inside
    ``root`` as its target's name). The directory is copied into containers, so only
    directories, regular files of at most userfiles.MAX_MANIFEST_BYTES and symlinks that stay
    inside ``root``: a symlink loop or a way out, a FIFO, a device or a huge file is refused
    in one line naming it."""
    sums = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            target = userfiles.inside(path, root, what=what)
            sums[name] = f"-> {target.relative_to(root.resolve()).as_posix()}"
            continue
        if path.is_dir():
            continue
        data = userfiles.read_bytes(path, limit=userfiles.MAX_MANIFEST_BYTES, what=what,
                                    root=root)
        sums[name] = f"{hashlib.sha256(data).hexdigest()} {path.stat().st_mode & 0o7777:o}"
    return sums


def load_ca_dir(path: Path, leaf_years: int, now: datetime | None = None) -> CADir:
    """Check a CA directory before it is used: each CA's certificate and key present, the key
    the certificate's, a CA certificate, and valid for at least ``leaf_years`` more years
    (a leaf cannot outlive its CA). ConfigError naming the first file at fault."""
    if not path.is_dir():
        raise ConfigError(f"--ca-dir {path} is not a directory")
    now = now or datetime.now(UTC)
    sums = checksums(path)  # every file a regular, bounded one before any is parsed
    certs: dict[str, x509.Certificate] = {}
    for base, _ in CA_SUBJECTS:
        crt, key_path = path / f"{base}.crt", path / f"{base}.key"
        for needed in (crt, key_path):
            if not needed.is_file():
                raise ConfigError(
                    f"--ca-dir {path}: {needed.relative_to(path)} is missing",
                    "`invoke ca` writes ca, front-proxy-ca and etcd/ca (.crt and .key)",
                )
        try:
            cert = verify.load_certificate(_bounded(crt, path))
        except ValueError:
            raise ConfigError(f"--ca-dir {path}: {base}.crt is not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(_bounded(key_path, path), password=None)
        except (ValueError, TypeError):
            # The reason is not shown: cryptography's text may quote what it could not parse.
            raise ConfigError(
                f"--ca-dir {path}: {base}.key is not an unencrypted PEM private key"
            ) from None
        if _public_der(key.public_key()) != _public_der(cert.public_key()):
            raise ConfigError(
                f"--ca-dir {path}: {base}.key does not match {base}.crt",
                "the key belongs to another certificate",
            )
        if not verify._is_ca(cert):
            raise ConfigError(f"--ca-dir {path}: {base}.crt is not a CA certificate")
        needed_until = now + timedelta(days=leaf_years * DAYS_PER_YEAR - verify.TOLERANCE_DAYS)
        if cert.not_valid_after_utc < needed_until:
            left = (cert.not_valid_after_utc - now).total_seconds() / 86400
            raise ConfigError(
                f"--ca-dir {path}: {base}.crt ends {verify._iso(cert.not_valid_after_utc)} "
                f"({max(left, 0):.0f} days from now), shorter than the asked leaf validity of "
                f"{leaf_years} years",
                "a leaf cannot outlive its CA: make a longer CA or ask for shorter leaves",
            )
        certs[base] = cert
    present = [name for name in SERVICE_ACCOUNT_FILES if (path / name).is_file()]
    if len(present) == 1:
        missing = next(n for n in SERVICE_ACCOUNT_FILES if n not in present)
        raise ConfigError(f"--ca-dir {path}: {present[0]} without {missing}")
    return CADir(path, certs, sums)


def _bounded(file: Path, root: Path) -> bytes:
    return userfiles.read_bytes(file, limit=userfiles.MAX_PKI_FILE_BYTES, what="--ca-dir file",
                                root=root)


def copy_into(ca_dir: Path, pki: Path) -> None:
    """Copy the CA directory's files into a scratch certificatesDir, modes kept (keys 0600)."""
    shutil.copytree(ca_dir, pki, dirs_exist_ok=True, symlinks=False)


# --- judging a report made with those CAs -------------------------------------------------


def judge(
    report: verify.VerifyReport, cas: CADir, now: datetime | None = None
) -> verify.VerifyReport:
    """The report with the CA checks judged for a CA of your own: each CA file must still be
    the one given (subject, serial and expiry; its validity is whatever it was made with), and
    every leaf's issuer must be one of the given CAs, and each leaf must end the asked validity
    from ``now`` (within a day). Leaves keep verify's other checks: signed by the CA in the
    directory (which is the given one), not outliving it."""
    given = {f"pki/{name}.crt": cert for name, cert in cas.certs.items()}
    subjects = {cert.subject.rfc4514_string() for cert in cas.certs.values()}
    now = now or datetime.now(UTC)
    checks = []
    for check in report.checks:
        cert = given.get(check.file)
        if cert is None and check.kind != "ca":
            # From v1.31 a kubeconfig's client certificate starts when its CA started
            # (pkiutil.NewSignedCert: notBefore := caCert.NotBefore), so with a CA made earlier
            # its not-before/not-after span is longer than the validity asked. What matters is
            # how long it lasts from now: its end is checked instead of its span.
            problems = [p for p in check.problems if not p.startswith("valid ")]
            ends = datetime.strptime(check.not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            left = (ends - now).total_seconds() / 86400
            if abs(left - check.expected_days) > verify.TOLERANCE_DAYS:
                problems.insert(0, f"ends in {left:.1f} days, expected {check.expected_days}")
            if check.issuer not in subjects:
                problems.append(f"issued by {check.issuer}, not by a --ca-dir CA")
            checks.append(replace(check, problems=tuple(problems)))
            continue
        problems = [] if check.kind == "ca" else ["is not a CA certificate"]
        if cert is None:
            problems.append("a CA that is not in --ca-dir")
        elif (check.subject, check.serial, check.not_after) != _fingerprint(cert):
            problems.append(
                f"replaced by kubeadm (serial {check.serial:x}, ends {check.not_after}); "
                "expected the --ca-dir CA to be used as it is"
            )
        expected = round(verify._days(cert)) if cert is not None else check.expected_days
        checks.append(replace(check, problems=tuple(problems), expected_days=expected))
    missing = [
        f"{file} ({stage}): the --ca-dir CA is gone from the certificates directory"
        for stage in dict.fromkeys(c.stage for c in report.checks if c.kind == "ca")
        for file in given
        if not any(c.file == file and c.stage == stage for c in report.checks)
    ]
    return replace(report, checks=tuple(checks), problems=report.problems + tuple(missing))


def _fingerprint(cert: x509.Certificate) -> tuple[str, int, str]:
    return (cert.subject.rfc4514_string(), verify.serial_number(cert),
            verify._iso(cert.not_valid_after_utc))


def verify_with_ca(
    binary: str | None,
    version: str | None,
    leaf_years: int,
    ca_dir: str,
    *,
    image: str | None = None,
    json_path: str | None = None,
    pinned: bool = False,
) -> verify.VerifyReport:
    """`invoke verify --ca-dir DIR`: check the CA directory, run the binary with those CAs in
    its certificatesDir, print the table, write JSON, raise unless every check held. The CA
    directory is only read; its checksums are compared afterwards to prove it."""
    if not binary:
        raise ConfigError("--binary is required", "the path of the kubeadm binary to check")
    if not Path(binary).is_file():
        raise ConfigError(f"--binary {binary!r} is not a file")
    kube_version = KubeVersion.parse(version) if version else None
    cas = load_ca_dir(Path(ca_dir), leaf_years)
    if kube_version is not None and not supports_ecdsa(kube_version):
        for name, cert in cas.certs.items():
            if isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
                raise ConfigError(
                    f"--ca-dir {ca_dir}: {name}.key is ECDSA, which kubeadm {kube_version.tag} "
                    "cannot load",
                    "kubeadm reads ECDSA keys from v1.31 (encryptionAlgorithm); make an RSA CA",
                )
    ca_years = max(1, round(min(verify._days(c) for c in cas.certs.values()) / DAYS_PER_YEAR))
    report = verify.verify_binary(
        Path(binary),
        kube_version,
        leaf_years,
        ca_years,
        image=verify.resolve_run_image(image),
        pinned=pinned,
        seed_pki=cas.path,
    )
    report = judge(report, cas)
    if checksums(cas.path) != cas.checksums:
        raise VerifyError(f"--ca-dir {ca_dir} changed while it was verified")
    verify.conclude(report, f"checked {binary} with the CAs of {ca_dir}", json_path)
    return report
