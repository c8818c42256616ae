"""The OCI target against a real registry server (Debian's docker-registry on 127.0.0.1).

No Docker engine needed; the registry is a plain process started by the `registry` fixture.
The image is read back here with the distribution API, independently of longcert.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from longcert import publish, settings
from longcert.errors import PublishError
from longcert.progress import Reporter
from tests.local_registry import FlakyFront, LocalRegistry
from tests.standin_build import make_build

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = ("linux/amd64", "linux/arm64", "windows/amd64")


def target(registry: LocalRegistry, repository: str) -> publish.Target:
    conf = settings.load({}, environ={})
    return publish.open_target(f"oci://{registry.host}/{repository}", conf, dry_run=False,
                               environ={"DOCKER_CONFIG": "/nonexistent"})


def test_push_fetch_back_and_rerun_pushes_nothing(registry: LocalRegistry, tmp_path: Path) -> None:
    build = publish.load_build(make_build(tmp_path / "builds", platforms=PLATFORMS))
    oci = target(registry, "tools/kubeadm")
    assert not oci.has(build)
    result = publish.push(build, oci, Reporter(quiet=True))
    oci_tag = "v1.33.7-leaf10y-ca10y-" + ".".join(p.replace("/", "-") for p in sorted(PLATFORMS))
    assert result.location == f"{registry.host}/tools/kubeadm:{oci_tag}"
    # per platform: layer, config, manifest, and the attestation's two statements, config and
    # manifest; then the index
    assert result.changed == 7 * len(PLATFORMS) + 1

    images = registry.fetch_image_files("tools/kubeadm", oci_tag)
    assert sorted(images) == sorted(PLATFORMS)
    meta = {f.name: f.sha256 for f in build.files}
    for binary in build.binaries:
        image = images[binary.platform]
        name = "kubeadm.exe" if binary.platform.startswith("windows/") else "kubeadm"
        assert image["files"] == {name: binary.sha256,
                                  "longcert/manifest.json": meta["manifest.json"],
                                  "longcert/patch.diff": meta["patch.diff"]}
        goos, goarch = binary.platform.split("/")
        assert (image["config"]["os"], image["config"]["architecture"]) == (goos, goarch)
        assert image["config"]["config"]["Entrypoint"] == [f"/{name}"]
        labels = image["manifest"]["annotations"]
        assert labels["io.longcert.kubeadm.sha256"] == binary.sha256
        assert labels["org.opencontainers.image.version"] == "v1.33.7"

    writes = registry.writes()
    assert writes > 0
    again = publish.push(build, target(registry, "tools/kubeadm"), Reporter(quiet=True))
    assert again.changed == 0
    assert registry.writes() == writes  # nothing pushed the second time
    assert target(registry, "tools/kubeadm").has(build)


def test_interrupted_push_is_completed_without_pushing_blobs_twice(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    build = publish.load_build(make_build(tmp_path / "builds", tag="v1.32.11"))
    oci = target(registry, "tools/partial")
    assert isinstance(oci, publish.OciTarget)
    first_image = oci.images(build).images[0]
    oci._put_blob(first_image.layer)  # as if the first push stopped after one blob
    oci._put_blob(first_image.config)
    assert not oci.has(build)  # no tag yet: not published
    actions = oci.plan(build)
    skipped = [a.name for a in actions if a.verb == "skip"]
    assert skipped == [f"linux/amd64 layer {first_image.layer.digest[:19]}",
                       f"linux/amd64 config {first_image.config.digest[:19]}"]
    publish.push(build, oci, Reporter(quiet=True))
    assert oci.has(build)


def test_a_tag_with_other_content_is_refused(registry: LocalRegistry, tmp_path: Path) -> None:
    build = publish.load_build(make_build(tmp_path / "a", tag="v1.31.14"))
    rebuilt = publish.load_build(make_build(tmp_path / "b", tag="v1.31.14", salt="other"))
    publish.push(build, target(registry, "tools/moved"), Reporter(quiet=True))
    writes = registry.writes()
    with pytest.raises(PublishError, match="already exists with different content"):
        publish.push(rebuilt, target(registry, "tools/moved"), Reporter(quiet=True))
    assert registry.writes() == writes


def test_cli_dry_run_pushes_nothing_then_publishes(registry: LocalRegistry,
                                                  tmp_path: Path) -> None:
    out = make_build(tmp_path / "builds", tag="v1.30.14", platforms=("linux/amd64",))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGCERT_")}

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", "-r", str(ROOT), "publish", "--build", str(out),
             "--publish", f"oci://{registry.host}/dry/kubeadm", "--no-run-check", *extra],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=120)

    writes = registry.writes()
    dry = run("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would upload index" in dry.stdout and registry.writes() == writes
    real = run()
    assert real.returncode == 0, real.stderr
    assert f"published kubeadm-v1.30.14-leaf10y-ca10y to {registry.host}/dry/kubeadm" in real.stdout
    tags = json.loads(registry.get("dry/kubeadm/tags/list"))["tags"]
    assert tags == ["v1.30.14-leaf10y-ca10y"]


def test_registry_that_does_not_answer(tmp_path: Path) -> None:
    from tests.local_registry import free_port

    build = publish.load_build(make_build(tmp_path / "builds"))
    conf = settings.load({"publish_retries": 1}, environ={})
    oci = publish.parse_target(f"oci://127.0.0.1:{free_port()}/kubeadm", conf, environ={})
    with pytest.raises(PublishError) as caught:
        oci.plan(build)
    assert "refused" in str(caught.value) and "is the registry running" in str(caught.value)
    assert "(after 2 tries)" in str(caught.value)  # refused: nothing sent, so tried again


class _AuthRegistry(BaseHTTPRequestHandler):
    """A registry front that wants a bearer token (from /token, given basic credentials) or,
    on /basic/..., basic credentials; every manifest is missing (404) once authorized."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen.append((self.path, auth))
        host = f"127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/token?"):
            ok = auth == "Basic " + base64.b64encode(b"robot:pw-secret").decode()
            body = json.dumps({"token": "tok-123"} if ok else {"errors": [{"message": "no"}]})
            return self._answer(200 if ok else 401, body)
        if self.path.startswith("/v2/basic/"):
            if auth != "Basic " + base64.b64encode(b"robot:pw-secret").decode():
                return self._answer(401, "{}", 'Basic realm="registry"')
            return self._answer(404, '{"errors": [{"code": "MANIFEST_UNKNOWN"}]}')
        if auth != "Bearer tok-123":
            challenge = (f'Bearer realm="http://{host}/token",service="fake",'
                         'scope="repository:tools/kubeadm:pull"')
            return self._answer(401, '{"errors": [{"code": "UNAUTHORIZED"}]}', challenge)
        return self._answer(404, '{"errors": [{"code": "MANIFEST_UNKNOWN"}]}')

    def _answer(self, status: int, body: str, challenge: str = "") -> None:
        data = body.encode()
        self.send_response(status)
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_bearer_and_basic_registry_authentication() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    env = {"OCI_USERNAME": "robot", "OCI_PASSWORD": "pw-secret"}
    try:
        conf = settings.load({}, environ={})
        bearer = publish.parse_target(f"oci://{host}/tools/kubeadm", conf, environ=env)
        assert bearer.has(publish.BuildRef.of("v1.33.7", 10, 10)) is False
        token_calls = [p for p, _ in _AuthRegistry.seen if p.startswith("/token?")]
        assert token_calls == ["/token?scope=repository%3Atools%2Fkubeadm%3Apull%2Cpush"
                               "&service=fake"]
        basic = publish.parse_target(f"oci://{host}/basic/kubeadm", conf, environ=env)
        assert basic.has(publish.BuildRef.of("v1.33.7", 10, 10)) is False

        anonymous = publish.parse_target(f"oci://{host}/tools/kubeadm", conf,
                                         environ={"DOCKER_CONFIG": "/nonexistent"})
        with pytest.raises(PublishError) as caught:
            anonymous.has(publish.BuildRef.of("v1.33.7", 10, 10))
        assert "the token service" in str(caught.value) and "OCI_USERNAME" in str(caught.value)
        wrong = publish.parse_target(f"oci://{host}/basic/kubeadm", conf,
                                     environ={"OCI_USERNAME": "robot", "OCI_PASSWORD": "nope"})
        with pytest.raises(PublishError, match="answered 401") as caught:
            wrong.has(publish.BuildRef.of("v1.33.7", 10, 10))
        assert "nope" not in str(caught.value)
    finally:
        server.shutdown()
        server.server_close()


def test_flaky_network_push_ends_identical_to_a_clean_one(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """5xx and resets on the first requests, 429 with Retry-After on a manifest, an upload
    session refused, a blob upload reset and one broken off half-way, a reset tag: one push
    ends with the images a clean push makes, the broken uploads restarted in new sessions."""
    build = publish.load_build(make_build(tmp_path / "builds", tag="v1.29.15",
                                          platforms=("linux/amd64", "linux/arm64")))
    publish.push(build, target(registry, "clean/kubeadm"), Reporter(quiet=True))

    front = FlakyFront(registry)
    try:
        front.faults.add(1, status=502)
        front.faults.add(1, reset=True)
        front.faults.add(1, status=503, method="HEAD")
        front.faults.add(1, status=504, method="HEAD")
        front.faults.add(1, status=503, method="POST", path=r"/blobs/uploads/$")
        front.faults.add(1, reset=True, method="POST", path=r"/blobs/uploads/$")
        front.faults.add(1, drop=True, method="PUT", path=r"/blobs/uploads/.*digest=")
        front.faults.add(1, reset=True, method="PUT", path=r"/blobs/uploads/.*digest=")
        front.faults.add(1, status=502, method="PUT", path=r"/blobs/uploads/.*digest=")
        front.faults.add(1, status=429, retry_after="5", method="PUT", path=r"/manifests/sha256")
        front.faults.add(1, reset=True, method="PUT", path=r"/manifests/v1\.29\.15")
        oci = publish.open_target(f"oci://{front.host}/flaky/kubeadm",
                                  settings.load({}, environ={}), dry_run=False,
                                  environ={"DOCKER_CONFIG": "/nonexistent"})
        assert isinstance(oci, publish.OciTarget)
        sleeps: list[float] = []
        oci.http.retry = dataclasses.replace(oci.http.retry, sleep=sleeps.append)
        lines: list[str] = []
        oci.push(build, progress=lines.append)
    finally:
        front.stop()

    assert [f.times for f in front.faults.plan] == [0] * len(front.faults.plan)  # all served
    assert 5.0 in sleeps and len([ln for ln in lines if "trying again" in ln]) == len(sleeps)
    sessions = [p for m, p in front.requests if m == "POST" and p.endswith("/blobs/uploads/")]
    blobs = 5 * 2  # per platform: layer, config; two attestation statements and their config
    # one session per blob, one more per broken upload (drop, reset, 502); the 503 and the
    # reset of the POST itself are tries of one session's start
    assert len(sessions) == blobs + 3 + 2
    oci_tag = build.image_tag
    flaky = registry.fetch_image_files("flaky/kubeadm", oci_tag)
    assert flaky == registry.fetch_image_files("clean/kubeadm", oci_tag)
    assert registry.fetch_attestations("flaky/kubeadm", oci_tag) == \
        registry.fetch_attestations("clean/kubeadm", oci_tag)
    index = [hashlib.sha256(registry.get(f"{repo}/manifests/{oci_tag}",
                                         "application/vnd.oci.image.index.v1+json")).hexdigest()
             for repo in ("clean/kubeadm", "flaky/kubeadm")]
    assert index[0] == index[1]
    assert publish.push(build, target(registry, "flaky/kubeadm"), Reporter(quiet=True)).changed == 0
