"""Images shaped like Docker Hub's official ``golang:<version>``, made from the builder image.

The official images are Debian plus buildpack-deps (curl, git, ...) plus gcc and make, Go in
/usr/local/go, ``GOPATH=/go``, ``PATH=/go/bin:/usr/local/go/bin:...``, ``GOTOOLCHAIN=local``,
``WORKDIR /go``, and **no rsync** (shared/reference/build-facts.md). The builder image already
has Debian, bash, make, git and Go in those places; this takes rsync (and, for refusal tests,
other tools) out and sets the official environment. gcc is not added: it would need the
network, and kubeadm builds with CGO_ENABLED=0, so nothing in the pipeline can depend on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import docker

OFFICIAL_PATH = (
    "/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)


def make(engine: docker.DockerClient, base: str, name: str,
         remove: Sequence[str] = ("/usr/bin/rsync",), go_version: str = "") -> str:
    """Commit ``name`` from ``base`` without the files in ``remove``; returns its id."""
    box = engine.containers.create(base, ["rm", "-rf", *remove], entrypoint=[], user="0:0",
                                   network_mode="none")
    try:
        box.start()
        assert box.wait()["StatusCode"] == 0, box.logs()
        repository, _, tag = name.rpartition(":")
        changes = [f"ENV PATH={OFFICIAL_PATH}", "ENV GOPATH=/go", "ENV GOTOOLCHAIN=local",
                   "WORKDIR /go", 'CMD ["bash"]', "LABEL org.longcert.test=stock-shaped"]
        if go_version:
            changes.append(f"ENV GOLANG_VERSION={go_version}")
        return str(box.commit(repository=repository, tag=tag, changes=changes).id)
    finally:
        box.remove(force=True)


def remove(engine: docker.DockerClient, *names: str) -> None:
    for name in names:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(name, force=True)


def _tar(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def load_foreign(engine: docker.DockerClient, name: str, architecture: str = "arm64") -> None:
    """``docker load`` a one-layer image whose config says another architecture (the engine's
    import ignores --platform, so the image archive is written by hand)."""
    import hashlib
    import json

    layer = _tar({"bin/sh": b"\x7fELF (not really)"})
    config = json.dumps({
        "architecture": architecture, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name],
                            "Layers": ["layer/layer.tar"]}]).encode()
    engine.images.load(_tar({config_name: config, "layer/layer.tar": layer,
                             "manifest.json": manifest}))
