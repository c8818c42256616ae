"""What ``publish --sign-key`` adds to an OCI target: signatures and signed attestations of the
image index and of each platform image, in the layouts ``cosign verify --key`` and
``cosign verify-attestation --key`` read, and the same attestations as OCI 1.1 referrers.

For each subject (the index and every platform image, by manifest digest):

- ``sha256-<hex>.sig``: cosign's signature manifest, a simple-signing payload naming the
  repository and digest, its signature in the layer's ``dev.cosignproject.cosign/signature``
  annotation;
- ``sha256-<hex>.att``: cosign's attestation manifest, DSSE envelopes over in-toto statements
  whose subject is the image: the build's SLSA provenance (its predicate as provenance.json has
  it) and, for a platform image, the binary's SPDX SBOM;
- one referrer manifest per envelope (``artifactType`` DSSE, ``subject`` the image), which a
  registry without the referrers API lists in the ``sha256-<hex>`` index tag (the OCI
  distribution spec's fallback).

Everything here is pure: the bytes are the same for the same build, repository and key (the
signatures are deterministic), so a re-run pushes nothing new. Merging with what a tag already
holds (another key's signature, a keyless one) is :func:`merged_layers`'.
See https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md and
https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from longcert.publish.ociimages import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    SPDX_PREDICATE,
    STATEMENT_TYPE,
    Blob,
    canonical,
)
from longcert.publish.signing import (
    DSSE_MEDIA_TYPE,
    SIMPLE_SIGNING,
    Signer,
    dsse_envelope,
    simple_signing_payload,
)

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"
REFERRER_PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
EMPTY_CONFIG = Blob("application/vnd.oci.empty.v1+json", b"{}")
# cosign's config of a signature or attestation manifest: no platform, the zero time
_ZERO_TIME = "0001-01-01T00:00:00Z"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_LAYERS = 64  # an existing .sig/.att tag with more layers than this is not merged with


@dataclass(frozen=True)
class CosignTag:
    """A ``.sig`` or ``.att`` manifest of one subject: the tag, and the layers longcert adds
    (their blobs and descriptors); the manifest itself is made when it is pushed, from these
    and what the tag already holds."""

    tag: str
    what: str
    blobs: tuple[Blob, ...]
    layers: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Referrer:
    """One signed attestation as an OCI 1.1 referrer of ``subject`` (a manifest digest)."""

    what: str
    subject: str
    envelope: Blob
    manifest: Blob
    predicate_type: str

    @property
    def descriptor(self) -> dict[str, Any]:
        """How a referrers index lists it."""
        return self.manifest.descriptor(
            artifactType=DSSE_MEDIA_TYPE,
            annotations={REFERRER_PREDICATE_ANNOTATION: self.predicate_type},
        )


@dataclass(frozen=True)
class Signatures:
    """Everything ``--sign-key`` adds to one published build."""

    tags: tuple[CosignTag, ...]
    referrers: tuple[Referrer, ...]


def cosign_tag(digest: str, suffix: str) -> str:
    """cosign's tag for a digest's signatures (``sig``) or attestations (``att``)."""
    algorithm, _, hex_digest = digest.partition(":")
    return f"{algorithm}-{hex_digest}.{suffix}" if suffix else f"{algorithm}-{hex_digest}"


def cosign_manifest(layers: Sequence[Mapping[str, Any]]) -> tuple[Blob, Blob]:
    """The config and manifest of a cosign signature or attestation manifest over ``layers``
    (their descriptors, in order)."""
    config = Blob(
        OCI_CONFIG,
        canonical(
            {
                "architecture": "",
                "config": {},
                "created": _ZERO_TIME,
                "history": [{"created": _ZERO_TIME}],
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
            }
        ),
    )
    manifest = Blob(
        OCI_MANIFEST,
        canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": list(layers),
            }
        ),
    )
    return config, manifest


def merged_layers(
    existing: bytes | None, ours: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]] | None:
    """The layers a ``.sig``/``.att`` tag should list: what it already lists (a manifest of
    another key's or a keyless signature is kept), then ours that are missing; None when it
    already lists all of ours. A tag holding something that is not such a manifest is kept out
    of it: ValueError."""
    if existing is None:
        return [dict(layer) for layer in ours]
    document = _json_object(existing)
    layers = document.get("layers")
    if document.get("mediaType", OCI_MANIFEST) != OCI_MANIFEST or not isinstance(layers, list):
        raise ValueError("it is not an OCI image manifest")
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"it lists more than {MAX_LAYERS} layers")
    kept = [_checked_descriptor(layer) for layer in layers]
    missing = [dict(layer) for layer in ours if dict(layer) not in kept]
    return kept + missing if missing else None


def merged_referrers(existing: bytes | None, ours: Sequence[Mapping[str, Any]]) -> Blob | None:
    """The fallback referrers index (tag ``sha256-<hex>``) with ours added; None when it
    already lists them. ValueError when the tag holds something else."""
    kept: list[dict[str, Any]] = []
    if existing is not None:
        document = _json_object(existing)
        manifests = document.get("manifests")
        if document.get("mediaType") != OCI_INDEX or not isinstance(manifests, list):
            raise ValueError("it is not an OCI image index")
        if len(manifests) > MAX_LAYERS:
            raise ValueError(f"it lists more than {MAX_LAYERS} manifests")
        kept = [_checked_descriptor(item) for item in manifests]
    have = {item["digest"] for item in kept}
    missing = [dict(item) for item in ours if item["digest"] not in have]
    if not missing:
        return None
    return Blob(
        OCI_INDEX,
        canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": kept + missing}),
    )


def sign_images(
    repository: str,
    subjects: Sequence[tuple[str, Blob]],
    provenance: Mapping[str, Any],
    sboms: Mapping[str, Mapping[str, Any]],
    signer: Signer,
) -> Signatures:
    """The signatures and attestations of ``subjects`` ((label, manifest): the index as
    "index", each platform image by its platform). ``provenance``: provenance.json's statement
    (its predicate is attested); ``sboms``: each platform's SPDX document."""
    def subject_of(manifest: Blob) -> dict[str, Any]:
        return {"name": repository, "digest": {"sha256": manifest.digest.split(":", 1)[1]}}

    statement_subjects = [subject_of(manifest) for _, manifest in subjects]
    predicate_type = str(provenance.get("predicateType") or "")
    provenance_envelope = Blob(
        DSSE_MEDIA_TYPE,
        dsse_envelope(
            signer,
            canonical(
                {
                    "_type": STATEMENT_TYPE,
                    "subject": statement_subjects,
                    "predicateType": predicate_type,
                    "predicate": provenance.get("predicate") or {},
                }
            ),
        ),
    )
    tags: list[CosignTag] = []
    referrers: list[Referrer] = []
    for label, manifest in subjects:
        payload = simple_signing_payload(repository, manifest.digest)
        signature = base64.b64encode(signer.sign(payload)).decode()
        payload_blob = Blob(SIMPLE_SIGNING, payload)
        tags.append(
            CosignTag(
                cosign_tag(manifest.digest, "sig"),
                f"{label} signature",
                (payload_blob,),
                (payload_blob.descriptor(annotations={SIGNATURE_ANNOTATION: signature}),),
            )
        )
        envelopes = [(provenance_envelope, predicate_type)]
        if label in sboms:
            statement = {
                "_type": STATEMENT_TYPE,
                "subject": [subject_of(manifest)],
                "predicateType": SPDX_PREDICATE,
                "predicate": sboms[label],
            }
            envelopes.append(
                (Blob(DSSE_MEDIA_TYPE, dsse_envelope(signer, canonical(statement))),
                 SPDX_PREDICATE)
            )
        tags.append(
            CosignTag(
                cosign_tag(manifest.digest, "att"),
                f"{label} attestations",
                tuple(envelope for envelope, _ in envelopes),
                tuple(
                    envelope.descriptor(
                        annotations={SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: kind}
                    )
                    for envelope, kind in envelopes
                ),
            )
        )
        for envelope, kind in envelopes:
            what = "SBOM" if kind == SPDX_PREDICATE else "provenance"
            referrers.append(
                Referrer(
                    f"{label} {what} referrer",
                    manifest.digest,
                    envelope,
                    _referrer_manifest(envelope, kind, manifest),
                    kind,
                )
            )
    return Signatures(tuple(tags), tuple(referrers))


def _referrer_manifest(envelope: Blob, predicate_type: str, subject: Blob) -> Blob:
    return Blob(
        OCI_MANIFEST,
        canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": DSSE_MEDIA_TYPE,
                "config": EMPTY_CONFIG.descriptor(),
                "layers": [envelope.descriptor()],
                "subject": subject.descriptor(),
                "annotations": {REFERRER_PREDICATE_ANNOTATION: predicate_type},
            }
        ),
    )


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise ValueError("it is not JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("it is not a JSON object")
    return value


def _checked_descriptor(item: Any) -> dict[str, Any]:
    """A descriptor from a registry's document, checked for the fields a manifest needs."""
    if not (
        isinstance(item, dict)
        and isinstance(item.get("mediaType"), str)
        and isinstance(item.get("digest"), str)
        and _DIGEST.fullmatch(item["digest"])
        and isinstance(item.get("size"), int)
        and item["size"] >= 0
    ):
        raise ValueError("it lists a descriptor without a media type, sha256 digest and size")
    return dict(item)
