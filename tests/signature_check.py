"""Check what ``--sign-key`` signed the way a user's tools would, without longcert's code:
detached signatures with the ``openssl`` command, DSSE envelopes with securesystemslib (the
secure-systems-lab DSSE implementation), and cosign's layouts in a registry read back over the
distribution API (the public transparency log cannot be reached here, so ``cosign`` itself, which
is not packaged in Debian bookworm, is replaced by these checks of the same layout)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from tests.local_registry import LocalRegistry

COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def openssl_verifies(public_pem: bytes, data: bytes, signature: bytes) -> bool:
    """``openssl dgst -sha256 -verify`` of a DER ``signature`` over ``data``."""
    with tempfile.TemporaryDirectory() as tmp:
        key, blob, sig = Path(tmp, "key.pub"), Path(tmp, "data"), Path(tmp, "data.sig")
        key.write_bytes(public_pem)
        blob.write_bytes(data)
        sig.write_bytes(signature)
        result = subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", str(key), "-signature", str(sig), str(blob)],
            capture_output=True, text=True, check=False,
        )
    return result.returncode == 0 and "Verified OK" in result.stdout


def verified_statement(public_pem: bytes, envelope_json: bytes) -> dict[str, Any]:
    """The in-toto statement inside a DSSE envelope, once securesystemslib verified the
    envelope's signature with ``public_pem`` (its keyid: the sha256 of the key's DER)."""
    public_key = serialization.load_pem_public_key(public_pem)
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = SSlibKey.from_crypto(
        public_key, keyid=hashlib.sha256(der).hexdigest(), scheme="ecdsa-sha2-nistp256"
    )
    envelope = Envelope.from_dict(json.loads(envelope_json))
    assert envelope.payload_type == "application/vnd.in-toto+json"
    envelope.verify([key], 1)  # raises VerificationError otherwise
    statement = json.loads(envelope.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    return statement


def _manifest(registry: LocalRegistry, repository: str, reference: str) -> dict[str, Any]:
    return registry.get_json(f"{repository}/manifests/{reference}", OCI_MANIFEST)


def _blob(registry: LocalRegistry, repository: str, digest: str) -> bytes:
    data = registry.get(f"{repository}/blobs/{digest}")
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def cosign_signed(
    registry: LocalRegistry, repository: str, digest: str, public_pem: bytes
) -> bool:
    """Whether ``<repository>:sha256-<hex>.sig`` holds a simple-signing layer for ``digest``
    that ``public_pem`` signed (what ``cosign verify --key`` checks, the log aside)."""
    tag = digest.replace(":", "-") + ".sig"
    for layer in _manifest(registry, repository, tag)["layers"]:
        if layer["mediaType"] != "application/vnd.dev.cosign.simplesigning.v1+json":
            continue
        payload = _blob(registry, repository, layer["digest"])
        claimed = json.loads(payload)["critical"]
        signature = base64.b64decode(layer["annotations"][COSIGN_SIGNATURE])
        if (
            claimed["image"]["docker-manifest-digest"] == digest
            and claimed["type"] == "cosign container image signature"
            and openssl_verifies(public_pem, payload, signature)
        ):
            return True
    return False


def cosign_attestations(
    registry: LocalRegistry, repository: str, digest: str, public_pem: bytes
) -> dict[str, dict[str, Any]]:
    """The statements in ``sha256-<hex>.att`` that ``public_pem`` signed and whose subject is
    ``digest`` (what ``cosign verify-attestation --key`` accepts), by predicate type."""
    tag = digest.replace(":", "-") + ".att"
    found = {}
    for layer in _manifest(registry, repository, tag)["layers"]:
        assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
        statement = verified_statement(public_pem, _blob(registry, repository, layer["digest"]))
        subjects = {s["digest"]["sha256"] for s in statement["subject"]}
        assert digest.split(":", 1)[1] in subjects
        assert layer["annotations"]["predicateType"] == statement["predicateType"]
        found[statement["predicateType"]] = statement
    return found


def referrers(registry: LocalRegistry, repository: str, digest: str) -> list[dict[str, Any]]:
    """The referrer manifests of ``digest`` as the OCI 1.1 fallback tag lists them, each
    checked to name ``digest`` as its subject."""
    index = registry.get_json(
        f"{repository}/manifests/{digest.replace(':', '-')}", OCI_INDEX
    )
    out = []
    for item in index["manifests"]:
        manifest = json.loads(_blob_or_manifest(registry, repository, item["digest"]))
        assert manifest["subject"]["digest"] == digest
        assert manifest["artifactType"] == item["artifactType"]
        out.append(manifest)
    return out


def _blob_or_manifest(registry: LocalRegistry, repository: str, digest: str) -> bytes:
    data = registry.get(f"{repository}/manifests/{digest}", OCI_MANIFEST)
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data
