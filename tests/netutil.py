"""Network test doubles on loopback: an HTTP CONNECT proxy and TLS material."""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import threading
from urllib.parse import urlsplit


class ConnectProxy(socketserver.ThreadingTCPServer):
    """A tiny HTTP proxy: CONNECT tunnels, and plain-HTTP requests in absolute
    form (``POST http://host:port/path``), recording each target ``host:port``.

    With ``credentials=("user", "pass")`` it demands Proxy-Authorization.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _TunnelHandler)
        self.credentials = credentials
        self.targets: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, name="test-connect-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class _TunnelHandler(socketserver.BaseRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if self.server.credentials is not None:
            expected = "Basic " + base64.b64encode(":".join(self.server.credentials).encode()).decode()
            if headers.get("proxy-authorization") != expected:
                self.request.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                return
        if method == "CONNECT":
            self.server.targets.append(target)
            host, _, port = target.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=5) as upstream:
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pump(self.request, upstream)
            return
        url = urlsplit(target)
        if url.scheme != "http" or url.hostname is None:
            self.request.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            return
        self.server.targets.append(f"{url.hostname}:{url.port or 80}")
        origin_form = (url.path or "/") + (f"?{url.query}" if url.query else "")
        forwarded = head.replace(target.encode("latin-1"), origin_form.encode("latin-1"), 1)
        with socket.create_connection((url.hostname, url.port or 80), timeout=5) as upstream:
            upstream.sendall(forwarded)
            _pump(self.request, upstream)


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    peers = {a: b, b: a}
    while True:
        readable, _, _ = select.select(list(peers), [], [])
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            peers[sock].sendall(data)
