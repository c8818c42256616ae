"""A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

Started with a temporary config (filesystem storage in a temporary directory, a free loopback
port), stopped (by its own pid) when the test session is done. ``.ci/run`` installs the package.
Its flaky mode is :class:`FlakyFront`: a loopback front that passes every request on to it
unless its ``faults`` (:class:`tests.loopback.Faults`) plan a failure for that request.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.loopback import Faults

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


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class FlakyFront:
    """The registry behind a flaky network: a loopback server on its own port that forwards
    every request (Host header and all, so the registry's upload locations name the front) to
    ``registry``, unless ``faults`` plans a failure for it. ``requests`` logs (method, path)."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.faults = Faults()
        self.requests: list[tuple[str, str]] = []
        upstream, front = registry.host, self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def forward(self) -> None:
                front.requests.append((self.command, self.path))
                fault = front.faults.take(self.command, self.path)
                if fault is not None:
                    return front.faults.serve(self, fault)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_BY_HOP}
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                connection = http.client.HTTPConnection(upstream, timeout=60)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    reply = connection.getresponse()
                    data = reply.read()
                    self.send_response(reply.status, reply.reason)
                    for name, value in reply.getheaders():
                        if name.lower() not in _HOP_BY_HOP:
                            self.send_header(name, value)
                    size = reply.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", size or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    connection.close()
                return None

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
