"""An HTTP server for media on a loopback port, as a CDN serves it: byte ranges (unless switched off),
keep-alive, redirects; it keeps every request's headers and counts the bytes it sent and the
connections it was sent on."""

from __future__ import annotations

import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

TYPES = {".mp4": "video/mp4", ".wav": "audio/wav", ".png": "image/png"}


class MediaServer(ThreadingHTTPServer):
    """Serves ``files`` by path; answers 503 to the requests numbered in ``busy`` (from 1), hangs up on
    those in ``dropped`` without an answer, and answers 500 from request ``fail_from`` on. A context
    manager that starts it on a thread and stops it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.reset()

    def reset(self) -> None:
        self.ranges = True
        self.busy: set[int] = set()
        self.dropped: set[int] = set()
        self.fail_from: int | None = None
        self.requests: list[dict[str, str]] = []
        self.sent = 0
        self.connections = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that stops reading (past its byte limit) resets the connection: that is its right
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: MediaServer
    protocol_version = "HTTP/1.1"  # keep-alive, as servers that serve media do
    # headers and body go in two writes: with Nagle's algorithm on, the body of every answer after a
    # connection's first waits out the client's delayed ACK (40 ms)
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append({k.lower(): v for k, v in self.headers.items()})
        if self.path in srv.redirects:
            self._answer(302, b"", {"location": srv.redirects[self.path]})
            return
        if len(srv.requests) in srv.dropped:
            self.close_connection = True
            return
        if len(srv.requests) in srv.busy:
            self._answer(503, b"", {"retry-after": "1"})
            return
        body = srv.files.get(self.path)
        if body is None or (srv.fail_from is not None and len(srv.requests) >= srv.fail_from):
            self._answer(404 if body is None else 500, b"", {})
            return
        headers = {"content-type": TYPES[Path(self.path).suffix], "accept-ranges": "bytes"}
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("range", "")) if srv.ranges else None
        if wanted is None:
            self._answer(200, body, headers)
            return
        start = int(wanted[1])
        end = min(int(wanted[2]) if wanted[2] else len(body) - 1, len(body) - 1)
        if start >= len(body):
            self._answer(416, b"", {"content-range": f"bytes */{len(body)}"})
            return
        self._answer(206, body[start : end + 1], {**headers, "content-range": f"bytes {start}-{end}/{len(body)}"})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "content-length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.server.sent += len(body)

    def log_message(self, *args: object) -> None:
        pass
