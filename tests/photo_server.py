"""A real HTTP server on 127.0.0.1 that serves photos well, badly, slowly or not at all.

Routes (NAME is a file in the served folder):
  /ok/NAME              200, Content-Length, honours Range (206 + Content-Range)
  /flaky/K/NAME         500 for the first K requests of this URL, then like /ok
  /stall-once/NAME      the first request sleeps past the client's timeout, then like /ok
  /stall/NAME           always sleeps past the client's timeout
  /cut-once/NAME        the first request announces the full length, sends half, closes
  /cut-norange/NAME     like /cut-once, but the server ignores Range (always 200, whole file)
  /cut/NAME             always sends half of what it announces
  /trickle/NAME         honours Range, but sends an eighth of the file every 0.25 s
  /missing/NAME         404
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STALL_S = 1.5


class PhotoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.folder = folder
        self.hits: Counter[str] = Counter()  # path -> requests seen
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of ranged requests
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (timeout) makes the server's write fail: expected here

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: PhotoServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hits[self.path] += 1
            nth = self.server.hits[self.path]
            if self.headers.get("Range"):
                self.server.ranges.append((self.path, self.headers["Range"]))
        parts = self.path.strip("/").split("/")
        route, name = parts[0], parts[-1]
        f = self.server.folder / name
        if route == "missing" or not f.is_file():
            return self._send_status(404)
        data = f.read_bytes()
        if route == "flaky" and nth <= int(parts[1]):
            return self._send_status(500)
        if route == "stall" or (route == "stall-once" and nth == 1):
            self.server.stop.wait(STALL_S)
            if route == "stall":
                return self._send_status(503)
        cut = route == "cut" or (route in ("cut-once", "cut-norange") and nth == 1)
        use_range = route != "cut-norange"
        self._send_file(data, cut=cut, use_range=use_range, trickle=route == "trickle")

    def _send_status(self, code: int) -> None:
        body = f"{code}\n".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, data: bytes, cut: bool, use_range: bool, trickle: bool = False) -> None:
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if use_range and m:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f'"{len(data)}"')
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            time.sleep(0.05)
            return
        if trickle:  # each piece in time for the read timeout, the whole far too slow
            step = len(data) // 8 + 1  # an eighth of the whole file per piece
            for i in range(0, len(body), step):
                self.wfile.write(body[i : i + step])
                self.wfile.flush()
                if self.server.stop.wait(0.25):
                    return
            return
        self.wfile.write(body)


@contextmanager
def serve(folder: Path) -> Iterator[PhotoServer]:
    srv = PhotoServer(folder)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
