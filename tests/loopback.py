"""Serve an http.server handler on a free loopback port for the length of a with-block, and a
handler that answers GETs from a function (a static site: a mirror, an index, a download site)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message


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
