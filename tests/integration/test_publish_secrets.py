"""Credentials never leave: registry and GitHub credentials go only over HTTPS or to this
machine's loopback, a token service on another server gets them only over HTTPS, and an upload
location or redirect on another server gets no Authorization header.

Loopback only, no Docker (runs with `-m "not docker"`): the registry the user names is a fake on
127.0.0.1, "another server" is a ``Recorder`` on 127.0.0.2 (or another port) that keeps what it
receives, and hosts off this machine are reached through the Recorder as the HTTP proxy, so it
sees what would cross the network.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from longcert import publish, settings
from longcert.errors import PublishError
from longcert.progress import Reporter
from tests.fake_github import FakeGitHub
from tests.recorder import (
    BASIC,
    PASSWORD,
    TOKEN,
    USER,
    FakeRegistry,
    Recorder,
    Seen,
    network_through,
)
from tests.standin_build import make_build

ROOT = Path(__file__).resolve().parents[2]
GITHUB_TOKEN = "ghs_secret_token_for_leak_tests"
CREDENTIALS = (USER, PASSWORD)
REF = publish.BuildRef.of("v1.33.7", 10, 10)
SECRETS = (PASSWORD, BASIC.split()[1], TOKEN, GITHUB_TOKEN)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.stop()


def registry(**options: str) -> FakeRegistry:
    return FakeRegistry(**options)


def oci(server: FakeRegistry | str, *, insecure: bool = False) -> publish.OciTarget:
    host = server if isinstance(server, str) else server.address
    return publish.OciTarget(host, "tools/kubeadm", insecure=insecure, credentials=CREDENTIALS)


def conf(**flags: object) -> settings.Settings:
    return settings.load(flags, environ={})


# ------------------------------------------------------------------ which hosts are "local"


def test_a_name_that_starts_with_127_is_not_local(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.registry.example.com is a name like any other: HTTPS, and no password in the clear.
    (Before: plain HTTP, and the Basic credentials went over it.)"""
    recorder.answer = lambda _: (401, {"WWW-Authenticate": 'Basic realm="r"'}, b"{}")
    target = oci("127.registry.example.com:5000")
    assert target.base == "https://127.registry.example.com:5000/v2/tools/kubeadm"
    with network_through(recorder, monkeypatch), pytest.raises(PublishError):
        target.has(REF)
    assert [s.method for s in recorder.seen] == ["CONNECT"]  # a TLS tunnel, nothing readable
    assert recorder.leaks(*SECRETS) == []


# ------------------------------------------------------------------ the token service


@pytest.mark.parametrize("where", ["127.0.0.2", "another port of 127.0.0.1"])
def test_plain_http_token_service_on_another_server_gets_no_credentials(where: str) -> None:
    other = Recorder(host="127.0.0.1" if where.startswith("another") else "127.0.0.2")
    server = registry(auth="bearer", realm=f"{other.origin}/token")
    try:
        with pytest.raises(PublishError) as caught:
            oci(server).has(REF)
        assert "will not send credentials to the token service" in str(caught.value)
        assert f"{other.origin}/token" in str(caught.value)
        assert other.leaks(*SECRETS) == [] and other.seen == []
    finally:
        server.stop()
        other.stop()


def test_token_service_that_is_not_http_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "token.json"
    secret.write_text('{"token": "read-from-a-local-file"}')
    server = registry(auth="bearer", realm=f"file://{secret}")
    try:
        with pytest.raises(PublishError, match="is not an http"):
            oci(server).has(REF)
        assert all(s.headers.get("Authorization") is None for s in server.seen)
    finally:
        server.stop()


def test_token_service_of_the_registry_itself_still_gets_them() -> None:
    server = registry(auth="bearer")
    try:
        assert oci(server).has(REF) is False  # authorized: the manifest is simply missing
        assert [s.headers.get("Authorization") for s in server.seen if "/token" in s.target] \
            == [BASIC]
    finally:
        server.stop()


# ------------------------------------------------------------------ upload locations, redirects


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_upload_location_on_another_server_gets_no_authorization(
    recorder: Recorder, auth: str
) -> None:
    recorder.answer = lambda _: (201, {}, b"")
    server = registry(auth=auth, location=f"{recorder.origin}/upload/7?state=abc")
    try:
        blob = publish.Blob(publish.OCI_LAYER, b"layer bytes")
        oci(server)._put_blob(blob)
        assert [(s.method, s.target.split("&")[0]) for s in recorder.seen] == [
            ("PUT", "/upload/7?state=abc")]
        assert recorder.leaks(*SECRETS) == []
        # The registry itself was given them, as it should be.
        assert any(s.headers.get("Authorization") for s in server.seen)
    finally:
        server.stop()


@pytest.mark.parametrize(
    "challenge", ['Basic realm="uploads"', 'Bearer realm="{origin}/token",service="x"']
)
def test_a_challenge_from_the_upload_server_is_not_answered(
    recorder: Recorder, challenge: str
) -> None:
    header = challenge.format(origin=recorder.origin)

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.target.startswith("/token"):
            return 200, {}, b'{"token": "stolen"}'
        return 401, {"WWW-Authenticate": header}, b"{}"

    recorder.answer = answer
    server = registry(auth="basic", location=f"{recorder.origin}/upload/7")
    try:
        with pytest.raises(PublishError, match="answered 401"):
            oci(server)._put_blob(publish.Blob(publish.OCI_LAYER, b"layer bytes"))
        assert recorder.leaks(*SECRETS) == []
        assert not any(s.target.startswith("/token") for s in recorder.seen)
    finally:
        server.stop()


def test_a_redirect_to_another_server_that_challenges_gets_no_credentials(
    recorder: Recorder,
) -> None:
    recorder.answer = lambda seen: (
        (200, {}, b'{"token": "stolen"}') if seen.target.startswith("/token")
        else (401, {"WWW-Authenticate": f'Bearer realm="{recorder.origin}/token"'}, b"{}"))
    server = registry(auth="none", redirect=f"{recorder.origin}/elsewhere")
    try:
        with pytest.raises(PublishError, match="answered 401"):
            oci(server).has(REF)
        assert recorder.leaks(*SECRETS) == []
        assert not any(s.target.startswith("/token") for s in recorder.seen)
    finally:
        server.stop()


def test_plain_http_upload_location_off_this_machine_is_refused(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = registry(auth="basic", location="http://uploads.example.com/upload/7?state=abc")
    try:
        with network_through(recorder, monkeypatch), pytest.raises(PublishError) as caught:
            oci(server)._put_blob(publish.Blob(publish.OCI_LAYER, b"layer bytes"))
        assert "plain HTTP to another host" in str(caught.value)
        assert "state=abc" not in str(caught.value)
        assert recorder.seen == []
    finally:
        server.stop()


# ------------------------------------------------------------------ plain HTTP off this machine


def test_insecure_registry_off_this_machine_gets_no_credentials(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--oci-insecure speaks plain HTTP, but a login is never sent in the clear."""
    recorder.answer = lambda _: (401, {"WWW-Authenticate": 'Basic realm="r"'}, b"{}")
    target = oci("registry.example.com:5000", insecure=True)
    assert target.base.startswith("http://registry.example.com:5000/")
    with network_through(recorder, monkeypatch), pytest.raises(PublishError) as caught:
        target.has(REF)
    assert "sends none over plain HTTP" in str(caught.value)
    assert len(recorder.seen) == 1 and recorder.leaks(*SECRETS) == []


def test_insecure_registry_off_this_machine_with_a_token_service(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    realm = "http://registry.example.com:5000/token"  # its own, but across the network
    recorder.answer = lambda seen: (
        (200, {}, b'{"token": "t"}') if "/token" in seen.target
        else (401, {"WWW-Authenticate": f'Bearer realm="{realm}"'}, b"{}"))
    with network_through(recorder, monkeypatch), pytest.raises(PublishError, match="sends none"):
        oci("registry.example.com:5000", insecure=True).has(REF)
    assert len(recorder.seen) == 1 and recorder.leaks(*SECRETS) == []


@pytest.mark.parametrize(
    "api_url",
    ["http://github.example.com/api/v3", "http://127.github.example.com/api/v3",
     "http://10.0.0.5/api/v3"],
)
def test_github_token_is_not_sent_over_plain_http_off_this_machine(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, api_url: str
) -> None:
    recorder.answer = lambda _: (404, {"Content-Type": "application/json"}, b"{}")
    env = {"GITHUB_TOKEN": GITHUB_TOKEN}
    with network_through(recorder, monkeypatch), pytest.raises(PublishError) as caught:
        publish.open_target("github:example/builds", conf(github_api_url=api_url),
                            dry_run=False, environ=env).has(REF)
    assert "GITHUB_TOKEN would be sent over plain HTTP" in str(caught.value)
    assert GITHUB_TOKEN not in str(caught.value)
    assert recorder.seen == []


def test_github_cli_refuses_before_anything_is_sent(recorder: Recorder, tmp_path: Path) -> None:
    out = make_build(tmp_path / "builds")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGCERT_")}
    env.update(GITHUB_TOKEN=GITHUB_TOKEN, http_proxy=recorder.origin, https_proxy=recorder.origin,
               no_proxy="", LONGCERT_GITHUB_API_URL="http://github.example.com/api/v3")
    for dry in ((), ("--dry-run",)):
        result = subprocess.run(
            [sys.executable, "-m", "invoke", "-r", str(ROOT), "publish", "--build", str(out),
             "--publish", "github:example/builds", "--no-run-check", *dry],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=120)
        assert result.returncode == 9, result.stderr
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "would be sent over plain HTTP" in lines[0], result.stderr
        assert GITHUB_TOKEN not in result.stdout + result.stderr
    assert recorder.seen == []


def test_github_upload_url_over_plain_http_off_this_machine_gets_no_token(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeGitHub(token=GITHUB_TOKEN)
    fake.upload_origin = "http://uploads.example.com"
    build = publish.load_build(make_build(tmp_path / "builds"))
    try:
        target = publish.open_target("github:example/kubeadm-builds",
                                     conf(github_api_url=fake.api_url), dry_run=False,
                                     environ={"GITHUB_TOKEN": GITHUB_TOKEN})
        with network_through(recorder, monkeypatch), pytest.raises(PublishError) as caught:
            publish.push(build, target, Reporter(quiet=True))
        assert "will not send credentials over plain HTTP to uploads.example.com" \
            in str(caught.value)
        assert recorder.seen == []
    finally:
        fake.stop()


def test_github_on_loopback_still_gets_the_token(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    fake = FakeGitHub(token=GITHUB_TOKEN)
    build = publish.load_build(make_build(tmp_path / "builds"))
    try:
        target = publish.open_target("github:example/kubeadm-builds",
                                     conf(github_api_url=fake.api_url), dry_run=False,
                                     environ={"GITHUB_TOKEN": GITHUB_TOKEN})
        assert publish.push(build, target, Reporter(quiet=True)).changed == len(build.files) + 2
    finally:
        fake.stop()


# ------------------------------------------------------------------ credential sources, retries


def _helper(tmp_path: Path) -> dict[str, str]:
    """A Docker config whose credential helper (a script in tmp_path) gives robot/pw-secret for
    any registry and leaves a mark that it ran; the environment that points there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-test"
    reply = json.dumps({"Username": USER, "Secret": PASSWORD})
    helper.write_text(f"#!/bin/sh\ncat >/dev/null\ntouch '{tmp_path}/helper-ran'\n"
                      f"echo '{reply}'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "test"}))
    return {"DOCKER_CONFIG": str(tmp_path), "PATH": str(bin_dir)}


def test_helper_credentials_are_not_even_looked_up_for_plain_http_off_this_machine(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder.answer = lambda _: (401, {"WWW-Authenticate": 'Basic realm="r"'}, b"{}")
    target = publish.parse_target("oci://registry.example.com:5000/tools/kubeadm",
                                  conf(oci_insecure="true"), environ=_helper(tmp_path))
    with network_through(recorder, monkeypatch), pytest.raises(PublishError, match="sends none"):
        target.has(REF)
    assert recorder.leaks(*SECRETS) == [] and not (tmp_path / "helper-ran").exists()


def test_a_flaky_registry_with_helper_credentials_shows_no_secret(tmp_path: Path) -> None:
    """The token service and the registry fail and reset on the way; every retry is said, and
    neither those lines nor the final error carry the password, its Basic form or the token."""
    server = registry(auth="bearer")
    server.faults.add(1, status=503, path="^/token")
    server.faults.add(1, reset=True, path="^/token")
    server.faults.add(1, status=502, path="/manifests/")
    server.faults.add(1, status=429, retry_after="1", path="/manifests/")
    try:
        target = publish.parse_target(f"oci://{server.address}/tools/kubeadm", conf(),
                                      environ=_helper(tmp_path))
        assert isinstance(target, publish.OciTarget)
        lines: list[str] = []
        target.http.notify = lines.append
        target.http.retry = dataclasses.replace(target.http.retry, sleep=lambda _: None)
        assert target.has(REF) is False  # authorized in the end: the manifest is missing
        assert len(lines) == 4 and all("trying again" in ln for ln in lines)
        assert [s for s in SECRETS if any(s in ln for ln in lines)] == []

        server.faults.add(100, status=503, path="/manifests/")
        with pytest.raises(PublishError) as caught:
            target.has(REF)
        assert "answered 503" in str(caught.value) and "(after 5 tries)" in str(caught.value)
        assert [s for s in SECRETS if s in str(caught.value) + "".join(lines)] == []
    finally:
        server.stop()


def test_github_cli_with_gh_auth_token_and_a_flaky_api_shows_no_token(tmp_path: Path) -> None:
    """No GITHUB_TOKEN: the token comes from a fake `gh auth token`; the API resets and answers
    503 on the way; the release is made and the token appears nowhere in the output."""
    fake = FakeGitHub(token=GITHUB_TOKEN)
    fake.faults.add(1, reset=True)
    fake.faults.add(1, status=503, retry_after="0", method="POST")
    fake.fail_uploads = {"SHA256SUMS"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(f"#!/bin/sh\nprintf '%s\\n' '{GITHUB_TOKEN}'\n")
    gh.chmod(gh.stat().st_mode | stat.S_IXUSR)
    out = make_build(tmp_path / "builds")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LONGCERT_") and k not in ("GITHUB_TOKEN", "GH_TOKEN")}
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '')}", LONGCERT_GITHUB_API_URL=fake.api_url)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "invoke", "-r", str(ROOT), "publish", "--build", str(out),
             "--publish", f"github:{fake.owner}/{fake.repo}", "--no-run-check"],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "trying again" in result.stdout + result.stderr
        assert GITHUB_TOKEN not in result.stdout + result.stderr
        release = fake.published(publish.load_build(out).build_id)
        assert release is not None
        assert {a.state for a in release.assets} == {"uploaded"}
    finally:
        fake.stop()
