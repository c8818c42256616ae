"""A git server over HTTP with Basic authentication on 127.0.0.1, for tests (git http-backend).

It stands in for an in-house git host that needs a token: every request without the right
``Authorization`` header gets 401, and every header received is recorded, so a test can check
where a credential went (and that it went nowhere else).
"""

from __future__ import annotations

import base64
import http.server
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.loopback import serving


@dataclass
class GitServer:
    url: str  # http://127.0.0.1:PORT/ (the repository is <url><name>)
    authorizations: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@contextmanager
def serve(project_root: Path, user: str, password: str) -> Iterator[GitServer]:
    """Serve the git repositories under ``project_root`` to ``user``:``password`` only."""
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    server_state = GitServer("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def _handle(self) -> None:
            server_state.paths.append(self.path)
            header = self.headers.get("Authorization", "")
            if header:
                server_state.authorizations.append(header)
            if header != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            env = {
                "GIT_PROJECT_ROOT": str(project_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": user,
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }
            if self.headers.get("Content-Encoding") == "gzip":
                env["HTTP_CONTENT_ENCODING"] = "gzip"
            out = subprocess.run(["git", "http-backend"], input=body, env=env,
                                 capture_output=True, check=False).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        server_state.url = url
        yield server_state
