"""The engine's images: whether one is there (:func:`image_id`), pulling one that is missing
(:func:`ensure_image`), what the engine records of one (:func:`inspect_image`), every local
name, and a rootfs tarball imported as one. Part of the Docker boundary: :mod:`longcert.container`
hands every name here on, and runs the containers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from longcert.errors import EngineError, ImageError

# The Debian base image `builder-image` makes (and verify runs kubeadm in); builder.py names
# its tags. Here, below builder.py, so that a hint about it needs no import of the builder.
BASE_REPOSITORY = "longcert/debian-base"


def image_id(client: docker.DockerClient, image: str) -> str | None:
    """The local image's id, or None when the engine does not have it."""
    try:
        return str(client.images.get(image).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise EngineError(f"the engine failed to look up image {image}: {exc.explanation}") from exc


def ensure_image(
    client: docker.DockerClient,
    image: str,
    registry_mirror: str = "",
    progress: Callable[[str], None] | None = None,
) -> str:
    """Use ``image`` if present, else pull it (through ``registry_mirror`` when set)."""
    found = image_id(client, image)
    if found:
        return found
    source = f"{registry_mirror}/{image}" if registry_mirror else image
    repository, tag = split_reference(source)
    try:
        last = 0.0
        for event in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise docker.errors.APIError(str(event["error"]))
            if progress and time.monotonic() - last > 5:
                last = time.monotonic()
                progress(f"pulling {source}: {event.get('status', '')} {event.get('progress', '')}")
        pulled = client.images.get(source)
        if source != image and "@" not in image:
            pulled.tag(image)  # a digest names content, not a tag: nothing to add
    except docker.errors.DockerException as exc:
        raise ImageError(
            f"image {image} is not present and pulling {source} failed: {_reason(exc)}",
            _missing_image_hint(image) + ", or --registry-mirror",
        ) from exc
    return str(pulled.id)


def runnable_image(
    client: docker.DockerClient, wanted: str, progress: Callable[[str], None] | None = None
) -> str:
    """The id of the image to run a static kubeadm in: ``wanted`` when present or pullable,
    else the Debian base ``builder-image`` makes when the engine has it (said through
    ``progress``); an ImageError naming both otherwise."""
    fallback = f"{BASE_REPOSITORY}:bookworm"
    try:
        return ensure_image(client, wanted, "", progress)
    except ImageError as missing:
        found = image_id(client, fallback) if wanted != fallback else None
        if found is None:
            raise ImageError(
                f"no image to run kubeadm in: {missing}"
                + (f", and {fallback} is not present either" if wanted != fallback else ""),
                f"`docker pull {wanted}` where a registry can be reached (or `docker load` it), "
                "or pass --run-image with any Linux image you have (kubeadm is static; the image "
                "needs only `sleep`)",
            ) from missing
        if progress is not None:
            progress(f"{wanted} is neither present nor pullable: running kubeadm in {fallback}")
        return found


def split_reference(reference: str) -> tuple[str, str]:
    """``repo[:tag]`` or ``repo@sha256:...`` -> (repository, tag or digest); the engine takes
    a digest where a tag goes. (A registry host's port is not a tag.)"""
    last = reference.split("/")[-1]
    if "@" in last:
        repository, _, digest = reference.rpartition("@")
        return repository, digest
    if ":" in last:
        repository, _, tag = reference.rpartition(":")
        return repository, tag
    return reference, "latest"


@dataclass(frozen=True)
class ImageInfo:
    """What the engine records of a local image, read in one inspection."""

    id: str
    platform: str  # the image config's os/architecture, e.g. linux/amd64
    labels: Mapping[str, str]
    digests: tuple[str, ...]  # repository@sha256:... names in registries (none if built here)


def inspect_image(client: docker.DockerClient, image: str) -> ImageInfo:
    """One inspection of a local image (by name, digest or id)."""
    try:
        found = client.images.get(image)
    except docker.errors.DockerException as exc:
        raise ImageError(f"cannot inspect image {image}: {_reason(exc)}") from exc
    attrs = found.attrs
    return ImageInfo(
        str(found.id),
        f"{attrs.get('Os', '?')}/{attrs.get('Architecture', '?')}",
        {str(k): str(v) for k, v in (found.labels or {}).items()},
        tuple(sorted(str(d) for d in attrs.get("RepoDigests") or [])),
    )


def local_image_names(client: docker.DockerClient) -> list[str]:
    """Every ``repository:tag`` the engine holds."""
    try:
        return sorted(tag for image in client.images.list() for tag in image.tags)
    except docker.errors.DockerException as exc:
        raise EngineError(f"the engine failed to list images: {_reason(exc)}") from exc


def import_rootfs(
    client: docker.DockerClient,
    tar_path: Path,
    repository: str,
    tag: str,
    changes: Iterable[str] = (),
) -> str:
    """``docker import`` of a rootfs tarball; returns the image id."""
    try:
        with tar_path.open("rb") as handle:
            client.api.import_image_from_data(
                handle.read(), repository=repository, tag=tag, changes=list(changes)
            )
        return str(client.images.get(f"{repository}:{tag}").id)
    except docker.errors.DockerException as exc:
        raise ImageError(
            f"importing {tar_path} as {repository}:{tag} failed: {_reason(exc)}"
        ) from exc


def _missing_image_hint(image: str) -> str:
    """A command that makes or replaces a missing image, as it can be pasted."""
    if image.startswith(f"{BASE_REPOSITORY}:"):
        # the Debian base is made along with any builder image; the Go is the demo's
        return (f"`longcert builder-image --go-version 1.24.11` makes {image} (with a Go "
                "1.24.11 builder image), or name an image you have")
    return f"`docker pull {image}` or `docker load` it, or name an image you have"


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).strip().splitlines()[0][:200] if str(text).strip() else type(exc).__name__
