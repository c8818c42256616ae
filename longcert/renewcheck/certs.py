"""What the directory holds: every certificate under an /etc/kubernetes (``pki/**/*.crt`` and
the client certificate embedded in each kubeconfig) as a :class:`Seen`, with the CA that signed
it and what would make it unusable (a key or a cluster CA that does not match it); pure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from longcert import userfiles, verify

CA_FILES = tuple(f"pki/{name}.crt" for name in verify.CA_CERTS)


@dataclass(frozen=True)
class Seen:
    """One certificate as found in the directory: a pki .crt or a kubeconfig's client cert."""

    file: str
    subject: str
    issuer: str
    not_after: datetime
    serial: int
    public_key: str  # sha256 of the SubjectPublicKeyInfo: tells a reused key from a new one
    sans: tuple[str, ...]
    is_ca: bool
    signer: str  # the CA file whose key signed it ("" when none here did)
    server: str = ""  # a kubeconfig's cluster server
    problems: tuple[str, ...] = ()  # what makes it unusable (key or CA mismatch)

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def _spki(public: Any) -> bytes:
    return public.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [f"DNS:{n}" for n in names.get_values_for_type(x509.DNSName)]
    ips = [f"IP:{ip}" for ip in names.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if ca.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_matches(key_pem: bytes, cert: x509.Certificate) -> bool:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    return _spki(key.public_key()) == _spki(cert.public_key())


def _seen(
    file: str,
    cert: x509.Certificate,
    cas: dict[str, x509.Certificate],
    *,
    server: str = "",
    problems: Iterable[str] = (),
) -> Seen:
    signer = next((name for name, ca in cas.items() if _signed_by(cert, ca)), "")
    return Seen(
        file,
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        cert.not_valid_after_utc,
        verify.serial_number(cert),
        hashlib.sha256(_spki(cert.public_key())).hexdigest(),
        _sans(cert),
        verify._is_ca(cert),
        signer,
        server,
        tuple(problems),
    )


def inventory(root: Path) -> tuple[dict[str, Seen], list[str]]:
    """Every certificate under ``root`` (an /etc/kubernetes): ``pki/**/*.crt`` and the client
    certificate of every ``*.conf`` kubeconfig; plus notes on what could not be read."""
    pki = root / "pki"
    certs: dict[str, x509.Certificate] = {}
    notes: list[str] = []
    for crt in sorted(pki.rglob("*.crt")) if pki.is_dir() else []:
        name = crt.relative_to(root).as_posix()
        try:
            certs[name] = verify.load_certificate(read_file(crt, root))
        except ValueError as exc:
            why = f" ({exc})" if "malformed extension" in str(exc) else ""
            notes.append(f"{name}: not a PEM certificate{why}, left out")
    cas = {name: cert for name, cert in certs.items() if name in CA_FILES}
    seen: dict[str, Seen] = {}
    for name, cert in certs.items():
        problems = []
        key = root / (name.removesuffix(".crt") + ".key")
        if name not in CA_FILES and key.is_file() and not _key_matches(read_file(key, root),
                                                                        cert):
            problems.append(f"{key.name} does not match the certificate")
        seen[name] = _seen(name, cert, cas, problems=problems)
    for conf in sorted(root.glob("*.conf")):
        found, note = _kubeconfig(conf, read_file(conf, root), cas.get("pki/ca.crt"), cas)
        if found is not None:
            seen[conf.name] = found
        if note:
            notes.append(note)
    return seen, notes


def read_file(path: Path, root: Path) -> bytes:
    """A file of the --etc copy: regular, at most userfiles.MAX_MANIFEST_BYTES, not leading
    outside the copy (a FIFO would hang the check, /dev/zero never end)."""
    return userfiles.read_bytes(path, limit=userfiles.MAX_MANIFEST_BYTES, what="--etc file",
                                root=root)


def _first(data: dict[str, Any], key: str, inner: str) -> dict[str, Any]:
    """``data[key][0][inner]`` of a kubeconfig, or {} when it is not there."""
    items = data.get(key)
    first = items[0] if isinstance(items, list) and items else {}
    found = first.get(inner) if isinstance(first, dict) else None
    return found if isinstance(found, dict) else {}


def _b64(value: object) -> bytes | None:
    """A kubeconfig's base64 field, None when it is not base64 text."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _kubeconfig(
    path: Path, raw: bytes, ca: x509.Certificate | None, cas: dict[str, x509.Certificate]
) -> tuple[Seen | None, str]:
    """The client certificate of a kubeconfig (``raw``, its bytes), with what would make it
    unusable: a client key that is not the certificate's, a cluster CA that is not pki/ca.crt.
    Whatever is malformed is a note, never an error of the check."""
    try:
        data = yaml.safe_load(raw.decode()) or {}
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return None, f"{path.name}: not a kubeconfig (not UTF-8 YAML), left out"
    if not isinstance(data, dict):
        return None, f"{path.name}: not a kubeconfig (not a mapping), left out"
    user, cluster = _first(data, "users", "user"), _first(data, "clusters", "cluster")
    if not user.get("client-certificate-data"):
        where = user.get("client-certificate") or "no client certificate"
        return None, f"{path.name}: client certificate in {where}, not embedded (not renewed)"
    der = _b64(user["client-certificate-data"])
    try:
        cert = verify.load_certificate(der if der is not None else b"")
    except ValueError:
        return None, f"{path.name}: its client-certificate-data is not a certificate"
    problems = []
    key = _b64(user.get("client-key-data") or "")
    if key is None:
        problems.append("client-key-data is not base64")
    elif not _key_matches(key, cert):
        problems.append("client-key-data does not match the client certificate")
    authority = cluster.get("certificate-authority-data")
    if ca is not None and authority:
        try:
            same = verify.load_certificate(_b64(authority) or b"") == ca
        except ValueError:
            same = False
        if not same:
            problems.append("certificate-authority-data is not pki/ca.crt")
    if ca is not None and not _signed_by(cert, ca):
        problems.append("client certificate does not chain to pki/ca.crt")
    return _seen(path.name, cert, cas, server=str(cluster.get("server", "")),
                 problems=problems), ""
