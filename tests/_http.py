"""A threaded HTTP server on 127.0.0.1 serving in-memory files (for the download tests)."""

from __future__ import annotations

import http.server
import threading


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) running ``handler`` in a daemon
    thread while the ``with`` block runs; ``url`` ends in '/'. ``stop`` is set on exit, for
    handlers that loop (trickling, endless bodies)."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]):
        self.stop = threading.Event()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class Server(LocalServer):
    """Serves ``files`` ({url path without leading '/': bytes}), honouring Range requests.

    ``truncate > 0`` announces the full length but sends that many bytes less, then hangs
    up (a broken connection). ``requests`` records ``(path, Range header)`` per request.
    """

    def __init__(self, files: dict[str, bytes], *, truncate: int = 0):
        self.files, self.truncate, self.requests = files, truncate, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Range")))
                data = outer.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                self.wfile.write(body[: len(body) - outer.truncate] if outer.truncate else body)

            def log_message(self, *args):
                pass

        super().__init__(Handler)
