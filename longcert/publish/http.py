"""HTTP for the GitHub and OCI targets: a small ``urllib.request`` client.

:class:`Http` returns any HTTP status as a :class:`Response` and raises PublishError only when
nothing answers. Credentials are sent only as headers that are not forwarded on redirects, only
where :func:`credentials_allowed` says they may go (HTTPS, or plain HTTP to this machine's
loopback), and are never part of a message.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from longcert.errors import PublishError
from longcert.settings import is_local_host

HTTP_TIMEOUT = 120.0


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    url: str = ""  # where the answer came from, after any redirect

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def message(self) -> str:
        """The server's own explanation (GitHub's message, a registry's errors), one line."""
        data = self.json()
        if isinstance(data, dict):
            if data.get("message"):
                extra = [
                    str(e.get("code") or e.get("message"))
                    for e in data.get("errors") or []
                    if isinstance(e, dict)
                ]
                return str(data["message"]) + (f" ({', '.join(extra)})" if extra else "")
            errors = data.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                return str(errors[0].get("message") or errors[0].get("code"))
        text = self.body.decode("utf-8", "replace").strip().splitlines()
        return text[0][:200] if text else http.client.responses.get(self.status, "")


def credentials_allowed(url: str) -> bool:
    """Whether a credential may travel to ``url``: over HTTPS, or plain HTTP to this machine's
    loopback (:func:`longcert.settings.is_local_host`), never plain HTTP across a network."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and is_local_host(parts.netloc))


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: "the same server"."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def host_of(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc.rpartition("@")[2]


class Http:
    """Small urllib client: returns any HTTP status, raises PublishError when nothing answers.

    It speaks only http and https, and refuses to send ``secret_headers`` anywhere
    :func:`credentials_allowed` does not allow (plain HTTP off this machine)."""

    def __init__(self, what: str, secrets: tuple[str, ...] = (), timeout: float = HTTP_TIMEOUT):
        self.what = what
        self.secrets = tuple(s for s in secrets if s)
        self.timeout = timeout

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        secret_headers: Mapping[str, str] | None = None,
        body: bytes | Path | None = None,
        hint: str = "",
    ) -> Response:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise PublishError(
                self.redact(f"{self.what}: will not {method} {strip_query(url)}: not http(s)"),
                "the server named an address longcert does not use",
            )
        if secret_headers and not credentials_allowed(url):
            raise PublishError(
                self.redact(
                    f"{self.what}: will not send credentials over plain HTTP to {host_of(url)} "
                    f"({method} {strip_query(url)})"
                ),
                "credentials go only over HTTPS, or plain HTTP to this machine's loopback",
            )
        with _body_stream(body) as (data, length):
            request = urllib.request.Request(url, data=data, method=method)
            for name, value in (headers or {}).items():
                request.add_header(name, value)
            for name, value in (secret_headers or {}).items():
                request.add_unredirected_header(name, value)  # not sent on to a redirect target
            if length is not None:
                request.add_header("Content-Length", str(length))
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    return Response(
                        reply.status, _lower(reply.headers), reply.read(), reply.geturl()
                    )
            except urllib.error.HTTPError as err:
                with err:
                    payload = err.read()
                return Response(err.code, _lower(err.headers), payload, str(err.filename or url))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise PublishError(
                    self.redact(f"{self.what}: {method} {url} failed: {_reason(exc)}"),
                    hint or "check the address and the network, then run the same command again",
                ) from None


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    if isinstance(inner, BaseException):
        exc = inner
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return f"the connection was closed mid-request ({type(exc).__name__})"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


@contextmanager
def _body_stream(
    body: bytes | Path | None,
) -> Iterator[tuple[bytes | IO[bytes] | None, int | None]]:
    if body is None:
        yield None, None
    elif isinstance(body, bytes):
        yield body, len(body)
    else:
        with open(body, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size


def strip_query(url: str) -> str:
    """``url`` without its query, which may carry a token or an upload session: for messages."""
    return url.split("?", 1)[0]
