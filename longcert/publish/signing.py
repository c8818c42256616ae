"""Signing with a key the operator holds, for sites that cannot reach Sigstore: ``--sign-key``.

The key is an ECDSA P-256 private key in PEM (PKCS#8 or SEC1; encrypted ones are opened with
the passphrase in ``COSIGN_PASSWORD``, the variable cosign reads). Signatures are ECDSA with
SHA-256, deterministic (RFC 6979), so signing the same bytes again gives the same signature and
a re-run of publish finds everything already there. What is made here is what cosign verifies
with ``--key``:

- a detached signature of a file (``SHA256SUMS.sig``: the DER signature, base64), as
  ``cosign sign-blob --key`` writes it and ``openssl dgst -sha256 -verify`` checks it;
- cosign's "simple signing" payload for an image digest (the ``.sig`` manifests);
- DSSE envelopes over in-toto statements (the ``.att`` manifests and the OCI referrers).

See https://github.com/secure-systems-lab/dsse/blob/master/protocol.md and
https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from longcert import runs
from longcert.errors import ConfigError, PublishError
from longcert.publish.build import Build, BuildFile

PASSWORD_ENV = "COSIGN_PASSWORD"
SUMS_FILE = "SHA256SUMS"
SUMS_SIGNATURE = "SHA256SUMS.sig"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
MAX_KEY_BYTES = 64 << 10
_ALGORITHM = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


@dataclass(frozen=True)
class Signer:
    """An ECDSA P-256 private key and the id of its public half (the sha256 of its
    SubjectPublicKeyInfo, hex), which every signature names."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    keyid: str

    def sign(self, data: bytes) -> bytes:
        """The DER-encoded ECDSA-SHA256 signature of ``data`` (the same each time)."""
        return self.private_key.sign(data, _ALGORITHM)

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's over ``data`` (for what is already published)."""
        try:
            self.private_key.public_key().verify(signature, data, _ALGORITHM)
        except InvalidSignature:
            return False
        return True


def signer_of(private_key: ec.EllipticCurvePrivateKey) -> Signer:
    """A :class:`Signer` for a P-256 key already in memory."""
    public = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Signer(private_key, hashlib.sha256(public).hexdigest())


def load_signer(path: Path, environ: Mapping[str, str] | None = None) -> Signer:
    """The signing key at ``path``; ConfigError, naming the file and never its contents, when it
    cannot be read, is not an ECDSA P-256 private key, or needs a passphrase that is missing or
    wrong."""
    env = os.environ if environ is None else environ
    try:
        if path.stat().st_size > MAX_KEY_BYTES:
            raise ConfigError(f"--sign-key {path} is larger than a key; not a PEM private key")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read --sign-key {path}: {exc.strerror or exc}") from exc
    password = env.get(PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(
            data, password.encode() if password else None
        )
    except TypeError as exc:
        needed = "encrypted" in str(exc).lower() and not password
        raise ConfigError(
            f"--sign-key {path} is encrypted" if needed else f"--sign-key {path} is not encrypted",
            f"set {PASSWORD_ENV} to its passphrase" if needed else f"unset {PASSWORD_ENV}",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        hint = f"or {PASSWORD_ENV} is wrong" if password else "(PKCS#8 or SEC1)"
        raise ConfigError(
            f"--sign-key {path} is not a PEM private key {hint}",
            "make one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
            "-out longcert.key",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(
            f"--sign-key {path} is not an ECDSA P-256 key (the kind cosign verifies)",
            "make one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
            "-out longcert.key",
        )
    return signer_of(key)


def blob_signature(signer: Signer, data: bytes) -> bytes:
    """A detached signature file's content: the signature, base64 (``cosign sign-blob``)."""
    return base64.b64encode(signer.sign(data)) + b"\n"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature is over."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def dsse_envelope(signer: Signer, payload: bytes, payload_type: str = IN_TOTO_PAYLOAD) -> bytes:
    """A DSSE envelope (JSON) over ``payload``, signed by ``signer``."""
    envelope = {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {
                "keyid": signer.keyid,
                "sig": base64.b64encode(signer.sign(pae(payload_type, payload))).decode(),
            }
        ],
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()


def simple_signing_payload(repository: str, manifest_digest: str) -> bytes:
    """cosign's payload for an image signature: the repository and the manifest digest."""
    payload = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


@contextmanager
def signed_sums(build: Build, signer: Signer | None) -> Iterator[Build]:
    """``build`` with ``SHA256SUMS.sig`` added to what it publishes, made by ``signer`` in a
    directory of this run's (the build directory is not touched, and the signature, being
    deterministic, is the same file every time); ``build`` as it is without a signer."""
    if signer is None:
        yield build
        return
    sums = next((f for f in build.files if f.name == SUMS_FILE), None)
    if sums is None:
        raise PublishError(f"{build.path} has no {SUMS_FILE} to sign")
    data = sums.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sums.sha256:
        raise PublishError(
            f"{sums.path} changed after the build was checked; nothing was signed",
            "publish again; if it persists, look at what writes into the build directory",
        )
    staging = Path(tempfile.mkdtemp(prefix=runs.tagged("longcert-sign-")))
    try:
        path = staging / SUMS_SIGNATURE
        content = blob_signature(signer, data)
        path.write_bytes(content)
        signature = BuildFile(
            SUMS_SIGNATURE, path, len(content), hashlib.sha256(content).hexdigest()
        )
        yield dataclasses.replace(build, files=(*build.files, signature))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
