"""Loopback HTTP servers for tests of where credentials go.

``Recorder`` listens on 127.0.0.2 (any 127.0.0.0/8 address works on Linux loopback) and keeps
every request it gets: method, target, headers, body. It stands for "another server": a token
service or upload location a registry names, or, as the ``http_proxy`` of the test, the network
between this machine and a host that is not loopback (urllib then sends it the request instead of
resolving the name). A test looks at ``leaks(...)``: what it saw must carry no credential.

``FakeRegistry`` (127.0.0.1) is the registry the user named: it asks for Basic credentials or a
bearer token, and points its token service, upload location or redirects wherever a test says.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.loopback import Faults

USER, PASSWORD = "robot", "pw-secret"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TOKEN = "registry-token-7f3a"


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # the path, or the whole URL when asked as a proxy
    headers: Mapping[str, str]
    body: bytes


Reply = tuple[int, Mapping[str, str], bytes]
Answer = Callable[[Seen], Reply]


def _json(status: int, data: Any, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode()


class _Server:
    def __init__(self, host: str, answer: Answer) -> None:
        self.seen: list[Seen] = []
        self.answer = answer
        self.faults = Faults()  # the flaky mode: planned 5xx, 429, resets before any answer
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def handle_one(self) -> None:
                fault = owner.faults.take(self.command, self.path)
                if fault is not None:
                    return owner.faults.serve(self, fault)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                owner.seen.append(seen)
                status, headers, data = owner.answer(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_one
            do_CONNECT = handle_one

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    @property
    def origin(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Recorder(_Server):
    """Another server: records everything; answers 200 with a token unless told otherwise."""

    def __init__(self, answer: Answer | None = None, host: str = "127.0.0.2") -> None:
        super().__init__(host, answer or (lambda _: _json(200, {"token": "stolen"})))

    def leaks(self, *secrets: str) -> list[str]:
        """Every credential it was given: Authorization headers, and any secret anywhere."""
        found = []
        for seen in self.seen:
            for name, value in seen.headers.items():
                if name.lower() in ("authorization", "proxy-authorization"):
                    found.append(f"{seen.method} {seen.target}: {name}: {value}")
            text = seen.target + json.dumps(dict(seen.headers)) + seen.body.decode("latin-1")
            found += [f"{seen.method} {seen.target}: {s}" for s in secrets if s and s in text]
        return found


class FakeRegistry(_Server):
    """The registry the user named, on 127.0.0.1.

    ``auth``: "basic" (wants robot:pw-secret), "bearer" (wants a token from ``realm``, whose own
    answer here needs the Basic credentials) or "none". ``realm`` defaults to its own /token.
    ``location`` is where an upload is sent on (default: its own /upload/1); ``redirect`` sends
    every manifest request on to another URL.
    """

    def __init__(
        self, auth: str = "basic", realm: str = "", location: str = "", redirect: str = ""
    ) -> None:
        self.auth, self.realm, self.location, self.redirect = auth, realm, location, redirect
        super().__init__("127.0.0.1", self._answer)

    def _answer(self, seen: Seen) -> Reply:
        given = seen.headers.get("Authorization", "")
        if seen.target.startswith("/token"):
            return _json(200, {"token": TOKEN}) if given == BASIC else _json(401, {})
        wanted = {"basic": BASIC, "bearer": f"Bearer {TOKEN}"}.get(self.auth)
        if wanted and given != wanted:
            challenge = (
                'Basic realm="registry"'
                if self.auth == "basic"
                else f'Bearer realm="{self.realm or self.origin + "/token"}",service="fake"'
            )
            return _json(401, {"errors": [{"code": "UNAUTHORIZED"}]}, **{
                "WWW-Authenticate": challenge})
        if "/manifests/" in seen.target:
            if self.redirect:
                return 302, {"Location": self.redirect}, b""
            return _json(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        if seen.method == "POST" and seen.target.endswith("/blobs/uploads/"):
            return 202, {"Location": self.location or "/upload/1?state=s"}, b""
        if seen.method == "PUT":
            return 201, {}, b""
        return _json(404, {"errors": [{"code": "NOT_FOUND"}]})


@contextmanager
def network_through(proxy: Recorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Send every request for a host other than 127.0.0.1 to ``proxy``, as the network would
    carry it (urllib asks the proxy instead of resolving the name, so nothing leaves the host)."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, proxy.origin)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    import urllib.request

    monkeypatch.setattr(urllib.request, "_opener", None)  # the next urlopen reads the proxies
    yield
