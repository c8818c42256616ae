"""A consumer with Docker and longcert only (issue 19): verify a published kubeadm on an engine
that has never seen a longcert-made image.

A second Docker daemon, empty, stands in for the consumer's engine; the local registry stands
in for Docker Hub and serves a busybox image (made from Debian's static busybox, as the real
one is). `longcert verify --run-image <registry>/library/busybox:stable` pulls it and runs the
published binary through every scenario; with the default run image (not pullable offline) and
no longcert base, the answer is one line with a command to paste.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import socket as socket_module
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests import local_registry
from tests.cli import invoke_environ
from tests.fixtures import standin
from tests.integration.conftest import RealBuild

pytestmark = pytest.mark.docker

BUSYBOX = Path("/bin/busybox")


@pytest.fixture(scope="module")
def empty_engine() -> Iterator[docker.DockerClient]:
    """A Docker daemon of its own (no images), stopped afterwards.

    It gets a bridge of its own, made here: a second daemon started with `--bridge=none`
    deletes the host's docker0, which the main engine's containers need."""
    root = Path(tempfile.mkdtemp(prefix="lc-engine-", dir="/tmp"))  # short: a socket path
    socket = root / "d.sock"
    bridge = f"lc{uuid.uuid4().hex[:8]}"
    subnet = f"172.31.{200 + secrets.randbelow(50)}"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    client = None
    daemon = None
    try:
        subprocess.run(["ip", "addr", "add", f"{subnet}.1/24", "dev", bridge], check=True)
        with (root / "dockerd.log").open("wb") as log:
            daemon = subprocess.Popen(
                ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
                 "--pidfile", str(root / "pid"), "-H", f"unix://{socket}", f"--bridge={bridge}",
                 "--iptables=false", "--ip6tables=false"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not _answers(socket):
            if time.monotonic() > deadline or daemon.poll() is not None:
                pytest.fail((root / "dockerd.log").read_text()[-2000:])
            time.sleep(0.3)
        client = docker.DockerClient(base_url=f"unix://{socket}", timeout=60)
        assert client.images.list() == []
        client.api.base_url_for_tests = f"unix://{socket}"  # type: ignore[attr-defined]
        yield client
    finally:
        if client is not None:
            client.close()
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _answers(path: Path) -> bool:
    """Whether the daemon answers /_ping on its socket yet."""
    with contextlib.suppress(OSError), socket_module.socket(socket_module.AF_UNIX) as probe:
        probe.settimeout(2)
        probe.connect(str(path))
        probe.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        return b" 200 " in probe.recv(256)
    return False


@pytest.fixture(scope="module")
def busybox_in_registry(engine: docker.DockerClient,
                        registry: local_registry.LocalRegistry) -> str:
    """``<registry>/library/busybox:stable``: /bin/busybox and its sleep and sh links."""
    if not BUSYBOX.is_file():
        pytest.fail("busybox-static is not installed (.ci/run installs it)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for tool in ("sleep", "sh"):
            link = tarfile.TarInfo(f"bin/{tool}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size, info.mode = len(passwd), 0o644
        tar.addfile(info, io.BytesIO(passwd))
    name = f"{registry.host}/library/busybox"
    engine.api.import_image_from_data(buffer.getvalue(), repository=name, tag="stable")
    try:
        for line in engine.images.push(name, tag="stable", stream=True, decode=True):
            assert "error" not in line, line
    finally:
        engine.images.remove(f"{name}:stable", force=True)
    return f"{name}:stable"


def consumer_verify(empty_engine: docker.DockerClient, tmp_path: Path, *args: str
                    ) -> subprocess.CompletedProcess[str]:
    env = invoke_environ({
        "DOCKER_HOST": empty_engine.api.base_url_for_tests,  # type: ignore[attr-defined]
        "LONGCERT_CACHE_DIR": str(tmp_path / "cache"),
    })
    return subprocess.run([sys.executable, "-m", "longcert", "verify", *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
                          timeout=600)


def test_a_consumer_verifies_a_published_kubeadm_with_only_docker(
    real_build: RealBuild, empty_engine: docker.DockerClient, busybox_in_registry: str,
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"  # "downloaded": the published directory as it is
    shutil.copytree(real_build.share / real_build.path.name, release)
    download = release / "kubeadm-linux-amd64"
    os.chmod(download, 0o755)
    # no stock image reachable and no longcert base: one line that says what to do
    refused = consumer_verify(empty_engine, tmp_path, "--binary", str(download))
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "no image to run kubeadm in" in lines[0] and "docker pull debian:bookworm-slim" \
        in lines[0], lines[0]
    assert "Traceback" not in refused.stderr
    # a stock image from the registry: pulled, and the binary verified end to end against
    # what its release's manifest.json says (tag and validities: no flags needed)
    result = consumer_verify(empty_engine, tmp_path, "--binary", str(download),
                             "--run-image", busybox_in_registry, "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["status"], report["reported_version"]) == ("verified", standin.DEMO_TAG)
    assert (report["leaf_years"], report["ca_years"]) == (7, 10)
    assert report["executed_with"] == "native" and len(report["checks"]) > 20
    names = {tag for image in empty_engine.images.list() for tag in image.tags}
    assert names == {busybox_in_registry}, names  # nothing longcert-made came in
    # another kubeadm swapped in under the same name: refused before it runs (issue 20)
    shutil.copyfile(real_build.path / "kubeadm-linux-arm64", download)
    swapped = consumer_verify(empty_engine, tmp_path, "--binary", str(download),
                              "--run-image", busybox_in_registry)
    assert swapped.returncode == 8, swapped.stderr
    assert "is not the kubeadm-linux-amd64 its release's manifest.json lists" in swapped.stderr
