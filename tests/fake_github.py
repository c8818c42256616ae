"""A small GitHub Releases API on 127.0.0.1, with the endpoints longcert's GitHub target calls.

It behaves like github.com where longcert relies on it: a release per tag, the ``upload_url``
URI template on another path (``/uploads/...``, as uploads.github.com is another host), asset
``state`` ("starter" until an upload completes), the ``digest`` field (switchable off, as on
older GitHub Enterprise servers), asset downloads answered with a redirect to storage that
refuses an ``Authorization`` header, ``Bad credentials`` for a wrong token, 422 for a duplicate
asset name. Drafts as on github.com: listed by ``GET /releases`` but never found by tag, not
holding their tag (several drafts may share one), published by ``PATCH`` with ``draft: false``
(422 when a published release already has the tag). ``fail_uploads`` makes the upload of the
named assets break half-way once: the server reads half the body, records a "starter" asset and
drops the connection; ``fail_publish`` makes the next publish of a draft answer 500 once.
``faults`` is the flaky mode (:class:`tests.loopback.Faults`): planned 5xx, 429 with
Retry-After and reset connections, before the request is handled at all, or a request carried
out whose answer is lost (``lose``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.loopback import Faults


@dataclass
class Asset:
    id: int
    name: str
    content_type: str
    data: bytes
    state: str = "uploaded"


@dataclass
class Release:
    id: int
    tag_name: str
    name: str
    body: str
    prerelease: bool
    draft: bool = False
    assets: list[Asset] = field(default_factory=list)
    target_commitish: str = ""  # "" = the default branch's head, as GitHub takes it


class FakeGitHub:
    """Serve until stop(); ``requests`` logs (method, path) of every request."""

    def __init__(
        self,
        owner: str = "example",
        repo: str = "kubeadm-builds",
        token: str = "ghs_fake_token_0123456789",
        prefix: str = "",
        digests: bool = True,
    ) -> None:
        self.owner, self.repo, self.token, self.prefix = owner, repo, token, prefix
        self.digests = digests
        self.releases: list[Release] = []
        self.requests: list[tuple[str, str]] = []
        self.fail_uploads: set[str] = set()
        self.fail_publish = False
        self.faults = Faults()
        self.download_auth_headers: list[str] = []
        self.upload_origin = ""  # where upload_url points (default: this server)
        self._ids = iter(range(1000, 10**6))
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

            def do_DELETE(self) -> None:
                fake.handle(self, "DELETE")

            def do_PATCH(self) -> None:
                fake.handle(self, "PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.origin + self.prefix

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ state helpers

    def release(self, tag: str) -> Release | None:
        """The published release of ``tag``, else its oldest draft (tests see drafts too)."""
        mine = [r for r in self.releases if r.tag_name == tag]
        return next((r for r in mine if not r.draft), mine[0] if mine else None)

    def published(self, tag: str) -> Release | None:
        """What GitHub's lookup by tag finds: never a draft."""
        return next((r for r in self.releases if r.tag_name == tag and not r.draft), None)

    def uploads(self) -> list[str]:
        return [p for m, p in self.requests if m == "POST" and "/uploads/" in p]

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m in ("POST", "DELETE", "PATCH")]

    def _asset_json(self, release: Release, asset: Asset) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": asset.id,
            "name": asset.name,
            "state": asset.state,
            "size": len(asset.data),
            "content_type": asset.content_type,
            "url": f"{self.api_url}/repos/{self.owner}/{self.repo}/releases/assets/{asset.id}",
            "browser_download_url": f"{self.origin}/download/{asset.id}",
        }
        if self.digests and asset.state == "uploaded":
            data["digest"] = "sha256:" + hashlib.sha256(asset.data).hexdigest()
        return data

    def _release_json(self, release: Release) -> dict[str, Any]:
        return {
            "id": release.id,
            "tag_name": release.tag_name,
            "name": release.name,
            "body": release.body,
            "prerelease": release.prerelease,
            "draft": release.draft,
            # A draft has no tag yet: its page is an untagged one, as on github.com.
            "html_url": f"{self.origin}/{self.owner}/{self.repo}/releases/tag/"
            + (f"untagged-{release.id}" if release.draft else release.tag_name),
            "upload_url": f"{self.upload_origin or self.origin}/uploads/repos/{self.owner}/"
            f"{self.repo}/releases/{release.id}/assets{{?name,label}}",
            "assets": [self._asset_json(release, a) for a in release.assets],
        }

    # ------------------------------------------------------------------ request handling

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.requests.append((method, h.path))
        fault = self.faults.take(method, h.path)
        if fault is not None and fault.lose:
            h.lose_answer = True  # type: ignore[attr-defined]  # handled, then no answer
        elif fault is not None:
            return self.faults.serve(h, fault)
        parts = urlsplit(h.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        length = int(h.headers.get("Content-Length") or 0)
        download = re.fullmatch(r"/download/(\d+)", path)
        if download:  # "storage": refuses a forwarded Authorization header, as S3 does
            if h.headers.get("Authorization"):
                self.download_auth_headers.append(h.headers["Authorization"])
                return self._send(h, 400, {"message": "only one auth mechanism allowed"})
            asset = self._find_asset(int(download.group(1)))
            if asset is None:
                return self._send(h, 404, {"message": "Not Found"})
            return self._send(h, 200, asset.data, "application/octet-stream")
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            if length:
                h.rfile.read(length)
            return self._send(h, 401, {"message": "Bad credentials"})
        repo = f"/repos/{self.owner}/{self.repo}"
        upload = re.fullmatch(rf"/uploads{repo}/releases/(\d+)/assets", path)
        if upload and method == "POST":
            return self._upload(h, int(upload.group(1)), query.get("name", [""])[0], length)
        if not path.startswith(self.prefix + repo + "/"):
            return self._send(h, 404, {"message": "Not Found"})
        rest = path[len(self.prefix + repo) :]
        body = h.rfile.read(length) if length else b""
        if method == "GET" and (m := re.fullmatch(r"/releases/tags/(.+)", rest)):
            release = self.published(m.group(1))
            if release is None:
                return self._send(h, 404, {"message": "Not Found"})
            return self._send(h, 200, self._release_json(release))
        if method == "GET" and rest == "/releases":  # newest first, drafts included
            per_page = int(query.get("per_page", ["30"])[0])
            page = int(query.get("page", ["1"])[0])
            items = list(reversed(self.releases))[(page - 1) * per_page : page * per_page]
            return self._send(h, 200, [self._release_json(r) for r in items])
        if method == "POST" and rest == "/releases":
            payload = json.loads(body)
            if self.published(payload["tag_name"]):
                return self._send(h, 422, {"message": "Validation Failed",
                                           "errors": [{"code": "already_exists"}]})
            release = Release(next(self._ids), payload["tag_name"], payload.get("name", ""),
                              payload.get("body", ""), bool(payload.get("prerelease")),
                              bool(payload.get("draft")),
                              target_commitish=str(payload.get("target_commitish", "")))
            self.releases.append(release)
            return self._send(h, 201, self._release_json(release))
        if m := re.fullmatch(r"/releases/(\d+)", rest):
            release = next((r for r in self.releases if r.id == int(m.group(1))), None)
            if release is None:
                return self._send(h, 404, {"message": "Not Found"})
            if method == "DELETE":
                self.releases.remove(release)
                return self._send(h, 204, None)
            if method == "PATCH":
                payload = json.loads(body)
                if payload.get("draft") is False and release.draft:
                    if self.fail_publish:
                        self.fail_publish = False
                        return self._send(h, 500, {"message": "Server Error"})
                    if self.published(release.tag_name):
                        return self._send(h, 422, {"message": "Validation Failed",
                                                   "errors": [{"code": "already_exists",
                                                               "field": "tag_name"}]})
                    release.draft = False
            return self._send(h, 200, self._release_json(release))
        if method == "GET" and (m := re.fullmatch(r"/releases/(\d+)/assets", rest)):
            release = next((r for r in self.releases if r.id == int(m.group(1))), None)
            if release is None:
                return self._send(h, 404, {"message": "Not Found"})
            per_page = int(query.get("per_page", ["30"])[0])
            page = int(query.get("page", ["1"])[0])
            items = release.assets[(page - 1) * per_page : page * per_page]
            return self._send(h, 200, [self._asset_json(release, a) for a in items])
        if m := re.fullmatch(r"/releases/assets/(\d+)", rest):
            asset = self._find_asset(int(m.group(1)))
            if asset is None:
                return self._send(h, 404, {"message": "Not Found"})
            if method == "DELETE":
                for release in self.releases:
                    release.assets = [a for a in release.assets if a.id != asset.id]
                return self._send(h, 204, None)
            if h.headers.get("Accept") == "application/octet-stream":
                h.send_response(302)
                h.send_header("Location", f"{self.origin}/download/{asset.id}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return None
            release = next(r for r in self.releases if asset in r.assets)
            return self._send(h, 200, self._asset_json(release, asset))
        return self._send(h, 404, {"message": "Not Found"})

    def _find_asset(self, asset_id: int) -> Asset | None:
        for release in self.releases:
            for asset in release.assets:
                if asset.id == asset_id:
                    return asset
        return None

    def _upload(self, h: BaseHTTPRequestHandler, release_id: int, name: str,
                length: int) -> None:
        release = next((r for r in self.releases if r.id == release_id), None)
        if release is None:
            h.rfile.read(length)
            return self._send(h, 404, {"message": "Not Found"})
        if any(a.name == name for a in release.assets):
            h.rfile.read(length)
            return self._send(h, 422, {"message": "Validation Failed",
                                       "errors": [{"resource": "ReleaseAsset",
                                                   "code": "already_exists", "field": "name"}]})
        content_type = h.headers.get("Content-Type", "")
        if name in self.fail_uploads:
            self.fail_uploads.discard(name)
            partial = h.rfile.read(length // 2)
            release.assets.append(Asset(next(self._ids), name, content_type, partial, "starter"))
            h.close_connection = True  # drop the connection without an answer
            return None
        data = h.rfile.read(length)
        asset = Asset(next(self._ids), name, content_type, data)
        release.assets.append(asset)
        return self._send(h, 201, self._asset_json(release, asset))

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: Any,
              content_type: str = "application/json") -> None:
        if getattr(h, "lose_answer", False):
            Faults.reset(h)
            return None
        if payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        else:
            data = json.dumps(payload).encode()
        h.send_response(status)
        if data:
            h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if data and h.command != "HEAD":
            h.wfile.write(data)
        return None
