"""What a build becomes in an OCI registry, made without talking to one: media types,
:class:`Blob` (bytes and their descriptor), the canonical JSON that makes each manifest
byte-for-byte reproducible, and :func:`oci_images`, an image per binary, an attestation manifest
per image and the index over them (:mod:`longcert.publish.oci` pushes them)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longcert import __version__
from longcert.errors import PublishError
from longcert.publish.build import Build
from longcert.publish.github import release_title

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"
SPDX_PREDICATE = "https://spdx.dev/Document"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
MANIFEST_ACCEPT = ", ".join(
    (
        OCI_INDEX,
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)

GOARM_VARIANT = {"arm": "v7"}  # Kubernetes builds linux/arm with GOARM=7


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


def canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def image_manifest(
    config: Blob, layers: list[dict[str, Any]], annotations: Mapping[str, str] | None = None
) -> Blob:
    """An OCI image manifest of ``config`` and the ``layers`` descriptors (a platform image's,
    with its labels as annotations, or an attestation's, without)."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers,
    }
    if annotations is not None:
        document["annotations"] = annotations
    return Blob(OCI_MANIFEST, canonical(document))


@dataclass(frozen=True)
class PlatformImage:
    platform: str
    binary: str  # path inside the image, e.g. /kubeadm
    layer: Blob
    config: Blob
    manifest: Blob


@dataclass(frozen=True)
class Attestation:
    """The attestation manifest of one platform's image, as ``docker buildx`` lays it out: its
    layers are in-toto statements (the build's SLSA provenance, the binary's SPDX SBOM), and
    the index lists it with platform unknown/unknown and a reference to the image's digest."""

    platform: str
    layers: tuple[Blob, ...]
    config: Blob
    manifest: Blob
    subject: str  # digest of the platform image it attests


@dataclass(frozen=True)
class Documents:
    """What the build says of itself, read once: provenance.json as it is and parsed, and each
    binary's SPDX SBOM, by platform."""

    provenance_raw: bytes = field(repr=False)
    provenance: Any = field(repr=False)
    sboms: Mapping[str, Any] = field(repr=False)


def read_documents(build: Build) -> Documents:
    """The build's provenance.json and SBOMs; PublishError when one is not JSON."""
    metadata = {f.name: f for f in build.files if not f.platform}
    raw = metadata["provenance.json"].path.read_bytes()
    try:
        sboms = {binary.platform: json.loads(metadata[binary.name + ".spdx.json"].path.read_bytes())
                 for binary in build.binaries}
        return Documents(raw, json.loads(raw), sboms)
    except ValueError as exc:
        raise PublishError(f"{build.path}: an SBOM or provenance.json is not JSON: {exc}") from exc


@dataclass(frozen=True)
class ImageSet:
    """One image per platform, their attestations and the index over them; byte-for-byte
    reproducible. ``documents``: the provenance and SBOMs they were made from."""

    images: tuple[PlatformImage, ...]
    index: Blob
    attestations: tuple[Attestation, ...] = ()
    documents: Documents | None = None


def _layer(files: list[tuple[str, Path, int]]) -> tuple[bytes, str]:
    """A gzipped tar of ``files`` (name, source, mode), with fixed owners and times."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, source, mode in files:
            info = tarfile.TarInfo(name)
            info.size = source.stat().st_size
            info.mode = mode
            info.mtime = 0
            info.uname = info.gname = ""
            with open(source, "rb") as handle:
                tar.addfile(info, handle)
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(tar_bytes)
    return packed.getvalue(), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def oci_images(build: Build) -> ImageSet:
    """For each binary: a one-layer image holding it (and the manifest and diff) plus an index."""
    common = {
        "org.opencontainers.image.title": "kubeadm",
        "org.opencontainers.image.version": build.tag,
        "org.opencontainers.image.description": release_title(build),
        "org.opencontainers.image.created": str(build.manifest.get("created", "")),
        "io.longcert.build-id": build.build_id,
        "io.longcert.leaf-years": str(build.leaf_years),
        "io.longcert.ca-years": str(build.ca_years),
    }
    metadata = {f.name: f for f in build.files if not f.platform}
    images = []
    for binary in build.binaries:
        goos, goarch = binary.platform.split("/")
        in_image = "kubeadm.exe" if goos == "windows" else "kubeadm"
        layer_bytes, diff_id = _layer(
            [
                (in_image, binary.path, 0o755),
                ("longcert/manifest.json", metadata["manifest.json"].path, 0o644),
                ("longcert/patch.diff", metadata["patch.diff"].path, 0o644),
            ]
        )
        layer = Blob(OCI_LAYER, layer_bytes)
        platform: dict[str, str] = {"architecture": goarch, "os": goos}
        if goarch in GOARM_VARIANT:
            platform["variant"] = GOARM_VARIANT[goarch]
        labels = {**common, "io.longcert.kubeadm.sha256": binary.sha256}
        config = Blob(
            OCI_CONFIG,
            canonical(
                {
                    **platform,
                    "created": common["org.opencontainers.image.created"] or "1970-01-01T00:00:00Z",
                    "config": {"Entrypoint": [f"/{in_image}"], "Labels": labels},
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                    "history": [
                        {
                            "created_by": f"longcert {__version__} publish",
                            "comment": f"{binary.name} sha256 {binary.sha256}",
                        }
                    ],
                }
            ),
        )
        manifest = image_manifest(
            config,
            [layer.descriptor(annotations={"org.opencontainers.image.title": in_image})],
            annotations=labels,
        )
        images.append(PlatformImage(binary.platform, f"/{in_image}", layer, config, manifest))
    documents = read_documents(build)
    attestations = tuple(_attestation(build, image, documents) for image in images)
    index = Blob(
        OCI_INDEX,
        canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    image.manifest.descriptor(platform=_platform_of(image.platform))
                    for image in images
                ]
                + [
                    item.manifest.descriptor(
                        platform={"architecture": "unknown", "os": "unknown"},
                        annotations={
                            "vnd.docker.reference.digest": item.subject,
                            "vnd.docker.reference.type": "attestation-manifest",
                        },
                    )
                    for item in attestations
                ],
                "annotations": common,
            }
        ),
    )
    return ImageSet(tuple(images), index, attestations, documents)


def _attestation(build: Build, image: PlatformImage, documents: Documents) -> Attestation:
    """The provenance statement as it is, and the binary's SPDX document wrapped in an in-toto
    statement whose subject is that binary."""
    binary = next(b for b in build.binaries if b.platform == image.platform)
    statement = documents.provenance
    predicate = statement.get("predicateType") if isinstance(statement, dict) else None
    statements = (
        (documents.provenance_raw, str(predicate or "")),
        (
            canonical(
                {
                    "_type": STATEMENT_TYPE,
                    "subject": [{"name": binary.name, "digest": {"sha256": binary.sha256}}],
                    "predicateType": SPDX_PREDICATE,
                    "predicate": documents.sboms[image.platform],
                }
            ),
            SPDX_PREDICATE,
        ),
    )
    layers = tuple(Blob(IN_TOTO, data) for data, _ in statements)
    config = Blob(
        OCI_CONFIG,
        canonical(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
            }
        ),
    )
    manifest = image_manifest(
        config,
        [
            layer.descriptor(annotations={"in-toto.io/predicate-type": predicate})
            for layer, (_, predicate) in zip(layers, statements, strict=True)
        ],
    )
    return Attestation(image.platform, layers, config, manifest, image.manifest.digest)


def _platform_of(platform: str) -> dict[str, str]:
    goos, goarch = platform.split("/")
    out = {"architecture": goarch, "os": goos}
    if goarch in GOARM_VARIANT:
        out["variant"] = GOARM_VARIANT[goarch]
    return out
