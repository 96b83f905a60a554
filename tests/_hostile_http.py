"""A 127.0.0.1 HTTP server whose routes misbehave on purpose (for the download tests).

``HostileServer({"path": behaviour})`` serves each path with a function
``behaviour(handler, stop)`` that writes the raw response itself (``handler.wfile``);
``stop`` is a threading.Event set when the server shuts down, so every endless behaviour
ends with the test. The helpers below build the behaviours. Every behaviour also ends by
itself after ``LIFETIME`` seconds, so code that never gives up makes a test fail, not hang.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable

from _http import LocalServer

#: The longest any behaviour keeps a connection open (seconds).
LIFETIME = 5.0

Behaviour = Callable[[http.server.BaseHTTPRequestHandler, threading.Event], None]


def _alive(start: float, stop: threading.Event) -> bool:
    return not stop.is_set() and time.monotonic() - start < LIFETIME


def trickle_body(every: float = 0.05, announce: int = 10**6) -> Behaviour:
    """Headers at once (``Content-Length: announce``), then one byte every ``every`` s."""

    def run(h, stop):
        h.send_response(200)
        h.send_header("Content-Length", str(announce))
        h.end_headers()
        start = time.monotonic()
        while _alive(start, stop):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(every)

    return run


def trickle_headers(every: float = 0.05) -> Behaviour:
    """The status line and headers, one byte every ``every`` s (a very long header)."""

    def run(h, stop):
        start = time.monotonic()
        h.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
        while _alive(start, stop):
            h.wfile.write(b"a")
            h.wfile.flush()
            time.sleep(every)

    return run


def silent(after_headers: bool = True) -> Behaviour:
    """Sends headers (or nothing at all), then nothing until the lifetime ends."""

    def run(h, stop):
        if after_headers:
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.end_headers()
            h.wfile.flush()
        stop.wait(LIFETIME)

    return run


def endless(announce: int | None = None, chunk: int = 1 << 16) -> Behaviour:
    """An endless body (no Content-Length unless ``announce``), as fast as it is read."""

    def run(h, stop):
        h.send_response(200)
        if announce is not None:
            h.send_header("Content-Length", str(announce))
        h.send_header("Connection", "close")
        h.end_headers()
        block, start = b"\0" * chunk, time.monotonic()
        while _alive(start, stop):
            h.wfile.write(block)

    return run


def redirect(location: str, code: int = 302) -> Behaviour:
    def run(h, stop):
        h.send_response(code)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return run


def wrong_range(data: bytes) -> Behaviour:
    """Answers a Range request with 206 but the whole file (``Content-Range: bytes 0-``)."""

    def run(h, stop):
        h.send_response(206 if h.headers.get("Range") else 200)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
        h.end_headers()
        h.wfile.write(data)

    return run


def serve(data: bytes) -> Behaviour:
    """A well-behaved file (no Range support)."""

    def run(h, stop):
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return run


class HostileServer(LocalServer):
    """Serves ``routes`` ({url path without leading '/': behaviour}); 404 elsewhere.

    ``requests`` records ``(path, Range header)`` per request.
    """

    def __init__(self, routes: dict[str, Behaviour]):
        self.routes, self.requests = routes, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Range")))
                behaviour = outer.routes.get(self.path.lstrip("/"))
                if behaviour is None:
                    self.send_error(404)
                    return
                try:
                    behaviour(self, outer.stop)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up: what the tests want it to do

            def log_message(self, *args):
                pass

        super().__init__(Handler)


def garbage(text: bytes = b"SSH-2.0-OpenSSH_9.6\r\n\r\n") -> Behaviour:
    """Something that is not an HTTP answer at all."""

    def run(h, stop):
        h.wfile.write(text)

    return run
