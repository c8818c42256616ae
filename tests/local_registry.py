"""A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

Started with a temporary config (filesystem storage in a temporary directory, a free loopback
port), stopped (by its own pid) when the test session is done. ``.ci/run`` installs the package.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class LocalRegistry:
    host: str  # 127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    log: Path
    root: Path

    def writes(self) -> int:
        """How many PUT/POST/PATCH requests the registry has answered so far (its access log)."""
        text = self.log.read_text(errors="replace")
        return sum(text.count(f'"{m} /v2/') for m in ("PUT", "POST", "PATCH"))

    def get(self, path: str, accept: str = "") -> bytes:
        request = urllib.request.Request(f"http://{self.host}/v2/{path}")
        if accept:
            request.add_header("Accept", accept)
        with urllib.request.urlopen(request, timeout=30) as reply:
            data: bytes = reply.read()
            return data

    def get_json(self, path: str, accept: str = "") -> Any:
        return json.loads(self.get(path, accept))

    def fetch_attestations(self, repository: str, tag: str) -> dict[str, list[dict[str, Any]]]:
        """Independently of longcert: the in-toto statements attached in the index to each
        platform's image, by the platform of the image they reference."""
        index = self.get_json(f"{repository}/manifests/{tag}", INDEX)
        platforms = {e["digest"]: f"{e['platform']['os']}/{e['platform']['architecture']}"
                     for e in index["manifests"] if not e.get("annotations")}
        out: dict[str, list[dict[str, Any]]] = {}
        for entry in index["manifests"]:
            notes = entry.get("annotations") or {}
            if notes.get("vnd.docker.reference.type") != "attestation-manifest":
                continue
            manifest = self.get_json(f"{repository}/manifests/{entry['digest']}", MANIFEST)
            statements = []
            for layer in manifest["layers"]:
                assert layer["mediaType"] == "application/vnd.in-toto+json"
                blob = self.get(f"{repository}/blobs/{layer['digest']}")
                assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
                statements.append(json.loads(blob))
            out[platforms[notes["vnd.docker.reference.digest"]]] = statements
        return out

    def fetch_image_files(self, repository: str, tag: str) -> dict[str, dict[str, Any]]:
        """Independently of longcert: platform -> {files: {name: sha256}, config, manifest}."""
        index = self.get_json(f"{repository}/manifests/{tag}", INDEX)
        assert index["mediaType"] == INDEX
        out = {}
        for entry in index["manifests"]:
            if (entry.get("annotations") or {}).get("vnd.docker.reference.type"):
                continue  # an attestation manifest: fetch_attestations reads those
            raw = self.get(f"{repository}/manifests/{entry['digest']}", MANIFEST)
            assert "sha256:" + hashlib.sha256(raw).hexdigest() == entry["digest"]
            manifest = json.loads(raw)
            config = json.loads(self.get(f"{repository}/blobs/{manifest['config']['digest']}"))
            files = {}
            for layer in manifest["layers"]:
                blob = self.get(f"{repository}/blobs/{layer['digest']}")
                assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
                with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
                    for member in tar.getmembers():
                        handle = tar.extractfile(member)
                        if handle is not None:
                            files[member.name] = hashlib.sha256(handle.read()).hexdigest()
            platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
            out[platform] = {"files": files, "config": config, "manifest": manifest}
        return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(workdir: Path) -> LocalRegistry:
    if not REGISTRY_BINARY.exists():
        raise RuntimeError(
            f"{REGISTRY_BINARY} is missing: apt-get install docker-registry (bash .ci/run does)"
        )
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True)
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: longcert-test-only\n"
    )
    log = workdir / "registry.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen([str(REGISTRY_BINARY), "serve", str(config)],
                                   stdout=handle, stderr=subprocess.STDOUT)
    registry = LocalRegistry(f"127.0.0.1:{port}", process, log, storage)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            registry.get("")
            return registry
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    stop(registry)
    raise RuntimeError(f"docker-registry did not answer on {registry.host}")


def stop(registry: LocalRegistry) -> None:
    registry.process.terminate()
    try:
        registry.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        registry.process.kill()
        registry.process.wait(timeout=10)
