"""Serve an http.server handler on a free loopback port for the length of a with-block, a
handler that answers GETs from a function (a static site: a mirror, an index, a download site),
and a flaky mode for loopback servers (:class:`Faults`: 5xx, 429 with Retry-After, connections
reset or dropped half-way through an upload)."""

from __future__ import annotations

import http.server
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from typing import Any


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler],
            host: str = "127.0.0.1") -> Iterator[str]:
    """Yields ``http://HOST:PORT/``; the server stops when the block ends."""
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def get_handler(answer: Callable[[str, Message], bytes | None]
                ) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler whose GET replies ``answer(path with query, request headers)``: 200 with
    those bytes, or 404 for None."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = answer(self.path, self.headers)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


# ------------------------------------------------------------------ a flaky network


@dataclass
class Fault:
    """One planned failure: for the next ``times`` requests that match (``method``, and a
    regular expression ``path`` searched in the request's path with query), answer ``status``
    (with ``Retry-After: retry_after`` when given), or ``reset`` the connection (RST, nothing
    answered), or ``drop`` it after reading half the request body (an upload broken off), or
    (where a server supports it) carry the request out and ``lose`` the answer."""

    times: int
    status: int = 0
    reset: bool = False
    drop: bool = False
    lose: bool = False
    method: str = ""
    path: str = ""
    retry_after: str = ""

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and (
            not self.path or re.search(self.path, path) is not None)


class Faults:
    """A flaky mode for a loopback server: planned failures, taken in order, and a log of the
    ones served (method, path, what) for tests to assert that the network really was flaky."""

    def __init__(self) -> None:
        self.plan: list[Fault] = []
        self.served: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def add(self, times: int, **kind: Any) -> None:
        with self._lock:
            self.plan.append(Fault(times, **kind))

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.plan:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    what = ("reset" if fault.reset else "drop" if fault.drop
                            else "lose" if fault.lose else str(fault.status))
                    self.served.append((method, path, what))
                    return fault
        return None

    @staticmethod
    def reset(h: http.server.BaseHTTPRequestHandler) -> None:
        """End the connection ``h`` serves with a RST and no answer, as a middlebox that gives
        up does (SO_LINGER 0: close() resets)."""
        h.close_connection = True
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def serve(self, h: http.server.BaseHTTPRequestHandler, fault: Fault) -> None:
        """Carry out ``fault`` on the request ``h`` is handling (its body not read yet)."""
        length = int(h.headers.get("Content-Length") or 0)
        h.close_connection = True
        if fault.reset or fault.drop:
            if fault.drop and length:
                h.rfile.read(length // 2)
            self.reset(h)
            return
        if length:
            h.rfile.read(length)
        data = b'{"message": "the network is flaky today"}'
        h.send_response(fault.status)
        if fault.retry_after:
            h.send_header("Retry-After", fault.retry_after)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
