"""--sign-key (issue 20, point 2): the key is read or refused in one line, signatures are
deterministic, and what is signed verifies with independent tools (openssl, securesystemslib)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from securesystemslib.exceptions import VerificationError

from longcert.errors import ConfigError
from longcert.publish import ocisign
from longcert.publish.ociimages import OCI_MANIFEST, Blob
from longcert.publish.signing import (
    blob_signature,
    dsse_envelope,
    load_signer,
    signer_of,
    simple_signing_payload,
)
from tests.signature_check import openssl_verifies, verified_statement


def write_key(path: Path, key: object, password: bytes | None = None, sec1: bool = False) -> Path:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    formats = serialization.PrivateFormat
    fmt = formats.TraditionalOpenSSL if sec1 else formats.PKCS8
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, encryption)  # type: ignore[attr-defined]
    path.write_bytes(pem)
    return path


@pytest.fixture
def p256(tmp_path: Path) -> Path:
    return write_key(tmp_path / "longcert.key", ec.generate_private_key(ec.SECP256R1()))


def test_a_pkcs8_or_sec1_key_is_read_and_signs_deterministically(
    tmp_path: Path, p256: Path
) -> None:
    signer = load_signer(p256, {})
    assert signer.sign(b"SHA256SUMS") == signer.sign(b"SHA256SUMS")
    sec1 = write_key(tmp_path / "sec1.key", signer.private_key, sec1=True)
    assert load_signer(sec1, {}).keyid == signer.keyid
    assert len(signer.keyid) == 64
    assert "private_key" not in repr(signer)


def test_an_encrypted_key_opens_only_with_cosign_password(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = write_key(tmp_path / "enc.key", key, password=b"s3cret-pass")
    assert load_signer(path, {"COSIGN_PASSWORD": "s3cret-pass"}).keyid == signer_of(key).keyid
    with pytest.raises(ConfigError) as missing:
        load_signer(path, {})
    assert missing.value.message == f"--sign-key {path} is encrypted"
    assert "COSIGN_PASSWORD" in (missing.value.hint or "")
    with pytest.raises(ConfigError) as wrong:
        load_signer(path, {"COSIGN_PASSWORD": "not-it"})
    assert "not-it" not in wrong.value.message and "wrong" in wrong.value.message


@pytest.mark.parametrize(
    "content, said",
    [
        (b"not a key", "is not a PEM private key"),
        (b"", "is not a PEM private key"),
    ],
)
def test_what_is_not_a_key_is_refused_in_one_line(
    tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_signer(path, {})
    assert said in err.value.message and "\n" not in err.value.message


def test_other_kinds_of_key_and_missing_files_are_refused(tmp_path: Path) -> None:
    for name, key in (
        ("p384.key", ec.generate_private_key(ec.SECP384R1())),
        ("rsa.key", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ):
        path = write_key(tmp_path / name, key)
        with pytest.raises(ConfigError, match="not an ECDSA P-256 key"):
            load_signer(path, {})
        # the key's content is never in a message
        secret = path.read_text().splitlines()[1]
        with pytest.raises(ConfigError) as err:
            load_signer(path, {})
        assert secret not in err.value.message + (err.value.hint or "")
    with pytest.raises(ConfigError, match="cannot read --sign-key"):
        load_signer(tmp_path / "missing.key", {})
    huge = tmp_path / "huge.key"
    huge.write_bytes(b"x" * (1 << 20))
    with pytest.raises(ConfigError, match="larger than a key"):
        load_signer(huge, {})


def test_a_blob_signature_verifies_with_openssl(p256: Path) -> None:
    signer = load_signer(p256, {})
    data = b"abc  kubeadm-linux-amd64\n"
    signature = base64.b64decode(blob_signature(signer, data))
    assert openssl_verifies(signer.public_pem(), data, signature)
    assert not openssl_verifies(signer.public_pem(), data + b"x", signature)
    other = signer_of(ec.generate_private_key(ec.SECP256R1()))
    assert not openssl_verifies(other.public_pem(), data, signature)


def test_a_dsse_envelope_verifies_with_securesystemslib(p256: Path) -> None:
    signer = load_signer(p256, {})
    statement = {"_type": "https://in-toto.io/Statement/v1", "subject": [],
                 "predicateType": "x", "predicate": {}}
    envelope = dsse_envelope(signer, json.dumps(statement).encode())
    assert verified_statement(signer.public_pem(), envelope) == statement
    tampered = json.loads(envelope)
    tampered["payload"] = base64.b64encode(json.dumps({**statement, "predicate": {"a": 1}})
                                           .encode()).decode()
    with pytest.raises(VerificationError):
        verified_statement(signer.public_pem(), json.dumps(tampered).encode())


def test_signed_images_name_each_subject(p256: Path) -> None:
    signer = load_signer(p256, {})
    index = Blob("application/vnd.oci.image.index.v1+json", b'{"i":1}')
    image = Blob(OCI_MANIFEST, b'{"m":1}')
    provenance = {"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"p": 1}}
    signed = ocisign.sign_images(
        "registry.example/tools/kubeadm",
        [("index", index), ("linux/amd64", image)],
        provenance,
        {"linux/amd64": {"spdxVersion": "SPDX-2.3"}},
        signer,
    )
    tags = {t.tag: t for t in signed.tags}
    hex_index = index.digest.split(":")[1]
    assert set(tags) == {f"sha256-{hex_index}.sig", f"sha256-{hex_index}.att",
                         image.digest.replace(":", "-") + ".sig",
                         image.digest.replace(":", "-") + ".att"}
    payload = json.loads(tags[f"sha256-{hex_index}.sig"].blobs[0].data)
    assert payload == json.loads(simple_signing_payload("registry.example/tools/kubeadm",
                                                        index.digest))
    image_att = tags[image.digest.replace(":", "-") + ".att"]
    statements = [verified_statement(signer.public_pem(), blob.data) for blob in image_att.blobs]
    assert [s["predicateType"] for s in statements] == [
        "https://slsa.dev/provenance/v1", "https://spdx.dev/Document"]
    assert statements[0]["predicate"] == {"p": 1}
    assert {"sha256": image.digest.split(":")[1]} in [s["digest"] for s in statements[1]["subject"]]
    # three referrers: the index's provenance, the image's provenance and SBOM
    assert sorted(r.subject for r in signed.referrers) == sorted([index.digest, image.digest,
                                                                   image.digest])
    again = ocisign.sign_images("registry.example/tools/kubeadm",
                                [("index", index), ("linux/amd64", image)], provenance,
                                {"linux/amd64": {"spdxVersion": "SPDX-2.3"}}, signer)
    assert again == signed  # deterministic: a re-run finds everything there


def test_merging_keeps_another_signature_and_refuses_what_is_not_a_manifest() -> None:
    ours = [{"mediaType": "x", "digest": "sha256:" + "a" * 64, "size": 3}]
    theirs = {"mediaType": OCI_MANIFEST,
              "layers": [{"mediaType": "x", "digest": "sha256:" + "b" * 64, "size": 4}]}
    merged = ocisign.merged_layers(json.dumps(theirs).encode(), ours)
    assert merged == theirs["layers"] + ours
    assert ocisign.merged_layers(json.dumps({**theirs, "layers": merged}).encode(), ours) is None
    for hostile in (b"not json", b"[]", json.dumps({"layers": "x"}).encode(),
                    json.dumps({"layers": [{"digest": "sha256:zz", "size": 1,
                                            "mediaType": "x"}]}).encode(),
                    json.dumps({"layers": [theirs["layers"][0]] * 65}).encode()):
        with pytest.raises(ValueError):
            ocisign.merged_layers(hostile, ours)
    referrer = [{"mediaType": OCI_MANIFEST, "digest": "sha256:" + "c" * 64, "size": 9,
                 "artifactType": "application/vnd.dsse.envelope.v1+json"}]
    index = ocisign.merged_referrers(None, referrer)
    assert index is not None and ocisign.merged_referrers(index.data, referrer) is None
