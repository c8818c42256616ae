"""HTTP for the GitHub and OCI targets: a small ``urllib.request`` client.

:class:`Http` returns any HTTP status as a :class:`Response` and raises NoAnswerError (a
PublishError) only when nothing answers. Credentials are sent only as headers that are not
forwarded on redirects, only where :func:`credentials_allowed` says they may go (HTTPS, or plain
HTTP to this machine's loopback), and are never part of a message.

Retries live here, in one place (:class:`RetryPolicy`): a request is tried again after a short,
growing, jittered wait (or the wait the server's ``Retry-After`` asks for, within bounds) when
the failure may pass: no connection, a connection broken mid-request, 429, 502, 503, 504, and
500 for a GET or HEAD. A request that may change something twice (a POST that creates) is tried
again by :class:`Http` only when it surely did nothing: the connection was refused, or the server
answered 429 or 503. Otherwise the caller re-checks the target first (:meth:`Http.retries`).
"""

from __future__ import annotations

import email.utils
import errno
import http.client
import json
import math
import os
import random
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import IO, Any

from longcert.errors import NoAnswerError, PublishError
from longcert.settings import is_local_host

HTTP_TIMEOUT = 120.0
# Answers that say "try again later". 429 and 503 also say the server did not act on the
# request, so even a POST that creates something is sent again after them.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
NOT_ACTED_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    url: str = ""  # where the answer came from, after any redirect
    tries: int = field(default=1, compare=False)  # how many times the request was sent
    gave_up: str = field(default="", compare=False)  # why no further try was made, if one
    # True when the answer was worth another try but none was left: not to be tried again
    final: bool = field(default=False, compare=False)

    def after(self) -> str:
        """The " (after N tries...)" of a message, when the request was sent more than once."""
        if self.tries <= 1 and not self.gave_up:
            return ""
        return f" (after {self.tries} tr{'ies' if self.tries > 1 else 'y'}{self.gave_up})"

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


MAX_HEADER_SECONDS = 10**9  # a Retry-After beyond this (about 31 years) is as good as forever


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for: delay-seconds (ASCII digits) or an
    HTTP-date (a date in the past is 0), not capped here (:class:`RetryPolicy` caps it). None
    for a missing header or anything else: a negative or fractional number, garbage."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if re.fullmatch(r"[0-9]+", text):
        return float(min(int(text[:12]) if len(text) <= 12 else math.inf, MAX_HEADER_SECONDS))
    if not re.search(r"[A-Za-z]", text):
        return None  # "-5", "1.5", "+3": not a delay-seconds, and no date either
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # older Pythons answer None instead of raising
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # "-0000" or no zone: HTTP-dates are GMT
    try:
        delay = when.timestamp() - (time.time() if now is None else now)
    except (OverflowError, OSError, ValueError):
        return None
    return float(min(max(delay, 0.0), MAX_HEADER_SECONDS))


@dataclass(frozen=True)
class RetryPolicy:
    """How one request (or one step: an upload with its re-check) is tried again.

    At most ``retries`` more tries, and at most ``budget`` seconds of waiting in all between
    them. Each wait is ``base * 2**n`` seconds, at most ``cap``, jittered to between half of it
    and all of it, unless the server's ``Retry-After`` names a wait: that is taken, but never
    more than ``max_retry_after`` (a hostile or absurd header cannot park a run for a day). A
    wait that would overrun the budget is not started: the step fails at once, saying why.
    ``sleep`` and ``jitter`` are injectable so tests do not wait."""

    retries: int = 4
    budget: float = 120.0
    base: float = 0.5
    cap: float = 15.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 for the first), without Retry-After."""
        full: float = min(self.cap, self.base * float(2 ** min(max(retry - 1, 0), 30)))
        share: float = min(max(self.jitter(), 0.0), 1.0)
        return full / 2 + share * full / 2

    def start(self) -> Retries:
        return Retries(self)


NO_RETRIES = RetryPolicy(retries=0)


class Retries:
    """The tries of one step under a :class:`RetryPolicy`: :meth:`next_wait` says how long to
    wait before the next one, or None when the tries or the budget are used up."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.retried = 0
        self.waited = 0.0
        self.refused = ""  # why the last next_wait() said no, for the message

    @property
    def tries(self) -> int:
        return self.retried + 1

    def next_wait(self, retry_after: float | None = None) -> float | None:
        policy = self.policy
        if self.retried >= policy.retries:
            self.refused = ""
            return None
        if retry_after is not None:
            delay = min(max(retry_after, 0.0), policy.max_retry_after)
        else:
            delay = policy.backoff(self.retried + 1)
        if self.waited + delay > policy.budget:
            self.refused = (
                f"; the server asks to wait {retry_after:.0f}s more"
                if retry_after is not None and retry_after > delay
                else f"; waiting {delay:.0f}s more would pass the {policy.budget:.0f}s budget"
            )
            return None
        self.retried += 1
        self.waited += delay
        return delay

    def wait(self, retry_after: float | None = None) -> bool:
        """Sleep before the next try and say True, or say False when there is none."""
        delay = self.next_wait(retry_after)
        if delay is None:
            return False
        if delay > 0:
            self.policy.sleep(delay)
        return True


class _Unanswered(Exception):
    """Nothing answered: ``reason`` for the message; ``unsent`` when the request surely did not
    reach the server (refused); ``lasting`` when trying again cannot help (a bad certificate,
    a name that does not exist)."""

    def __init__(self, reason: str, *, unsent: bool = False, lasting: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.unsent, self.lasting = reason, unsent, lasting


def _quiet(_: str) -> None:
    return None


class Http:
    """Small urllib client: returns any HTTP status, raises NoAnswerError when nothing answers.

    It speaks only http and https, refuses to send ``secret_headers`` anywhere
    :func:`credentials_allowed` does not allow (plain HTTP off this machine), and tries a
    request again as ``retry`` says when the failure may pass (see the module's docstring).
    ``notify`` is told (one line, no secret) before each wait."""

    def __init__(
        self,
        what: str,
        secrets: tuple[str, ...] = (),
        timeout: float = HTTP_TIMEOUT,
        retry: RetryPolicy | None = None,
    ):
        self.what = what
        self.secrets = tuple(s for s in secrets if s)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.notify: Callable[[str], None] = _quiet

    def retries(self) -> Retries:
        """The tries of one step the caller repeats itself, re-checking the target in between."""
        return self.retry.start()

    def waiting(
        self, tries: Retries, what: str, why: str, retry_after: float | None = None
    ) -> bool:
        """For a step the caller repeats: wait before its next try (saying so) and say True,
        or say False when no try is left."""
        delay = tries.next_wait(retry_after)
        if delay is None:
            return False
        self.notify(
            self.redact(
                f"{self.what}: {what}: {why}; trying again in {delay:.1f}s "
                f"(try {tries.tries} of {self.retry.retries + 1})"
            )
        )
        if delay > 0:
            self.retry.sleep(delay)
        return True

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
        idempotent: bool | None = None,
    ) -> Response:
        """Send the request, trying again as :attr:`retry` says; ``idempotent`` (default: by
        the method, GET HEAD PUT DELETE OPTIONS) says whether sending it twice is harmless."""
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
        safe = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        tries = self.retries()
        shown = f"{method} {strip_query(url)}"
        while True:
            try:
                reply = self._once(method, url, headers, secret_headers, body)
            except _Unanswered as failure:
                retry = not failure.lasting and (safe or failure.unsent)
                if retry and self.waiting(tries, shown, failure.reason):
                    continue
                after = Response(0, {}, b"", tries=tries.tries, gave_up=tries.refused).after()
                raise NoAnswerError(
                    self.redact(
                        f"{self.what}: {method} {strip_query(url)} failed: {failure.reason}{after}"
                    ),
                    hint or "check the address and the network, then run the same command again",
                    final=retry or failure.lasting,
                ) from None
            worth = self._worth_retrying(method, reply, safe)
            if worth:
                retry_after = parse_retry_after(reply.headers.get("retry-after"))
                why = f"answered {reply.status} {reply.message()}".rstrip()
                if self.waiting(tries, shown, why, retry_after):
                    continue
            return Response(
                reply.status,
                reply.headers,
                reply.body,
                reply.url,
                tries.tries,
                tries.refused,
                final=worth,
            )

    @staticmethod
    def _worth_retrying(method: str, reply: Response, safe: bool) -> bool:
        if reply.status in NOT_ACTED_STATUSES:
            return True
        if reply.status == 403 and "retry-after" in reply.headers:
            return True  # GitHub's secondary rate limit
        if not safe:
            return False
        return reply.status in RETRY_STATUSES or (
            reply.status == 500 and method.upper() in ("GET", "HEAD")
        )

    def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        secret_headers: Mapping[str, str] | None,
        body: bytes | Path | None,
    ) -> Response:
        """Send the request once: any HTTP status as a Response, _Unanswered otherwise."""
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
                    try:
                        payload = err.read()
                    except (OSError, http.client.HTTPException):
                        payload = b""  # the status came; the body broke off
                return Response(err.code, _lower(err.headers), payload, str(err.filename or url))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise _Unanswered(
                    _reason(exc), unsent=_unsent(exc), lasting=_lasting(exc)
                ) from None


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    if isinstance(inner, BaseException):
        exc = inner
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({getattr(exc, 'reason', None) or exc})"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return f"the connection was closed mid-request ({type(exc).__name__})"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


def _inner(exc: BaseException) -> BaseException:
    inner = getattr(exc, "reason", None)
    return inner if isinstance(inner, BaseException) else exc


def _unsent(exc: BaseException) -> bool:
    """Whether the request surely never reached the server: the connection was refused, or the
    name did not resolve for now."""
    inner = _inner(exc)
    if isinstance(inner, socket.gaierror):
        return inner.errno == socket.EAI_AGAIN
    return isinstance(inner, ConnectionRefusedError) or getattr(inner, "errno", None) in (
        errno.ECONNREFUSED,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
    )


def _lasting(exc: BaseException) -> bool:
    """Whether trying again cannot help: TLS that fails other than by the connection breaking
    off (a certificate that does not verify, a server that does not speak TLS), a name that does
    not exist, a proxy that refuses the tunnel, an address urllib cannot use."""
    inner = _inner(exc)
    if isinstance(inner, ssl.SSLError):
        return not isinstance(inner, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError)
    if isinstance(inner, socket.gaierror):
        return inner.errno != socket.EAI_AGAIN
    tunnel = re.match(r"Tunnel connection failed: (\d{3})", str(inner))
    if tunnel:
        return int(tunnel.group(1)) not in RETRY_STATUSES
    return isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, str)


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
