"""Misbehaving network pieces on 127.0.0.1 for the connection-fault tests: a
TCP proxy that can trickle or stall bytes, raw servers that trickle an
upgrade answer or redirect it, and a log handler a test can wait on.

Each piece runs its own daemon threads and stops them on ``close()``; a test
waits on what they record (connections accepted, log records), never on time.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable

# Seconds between two bytes of a trickle: slow enough that a 2 KB TLS
# handshake or an endless upgrade answer takes minutes, fast enough that
# every per-call socket timeout keeps being reset.
TRICKLE_INTERVAL = 0.1


class _Listener:
    """A listening socket on 127.0.0.1 whose connections are served by ``serve(conn)``
    in their own threads; counts connections and closes them all on ``close()``."""

    def __init__(self, serve: Callable[[socket.socket], None], backlog: int = 64) -> None:
        self._serve = serve
        self.stopping = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.port: int = self._sock.getsockname()[1]
        self._changed = threading.Condition()
        self.accepted = 0
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept_loop, name="test-listener", daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with self._changed:
                self.accepted += 1
                self._open.append(conn)
                self._changed.notify_all()
            threading.Thread(target=self._serve_quietly, args=(conn,), name="test-listener-conn", daemon=True).start()

    def _serve_quietly(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except OSError:
            pass  # the client went away, or close() shut the connection
        finally:
            conn.close()

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.accepted >= count, timeout):
                raise TimeoutError(f"{self.accepted} of {count} connections arrived")

    def close(self) -> None:
        self.stopping.set()
        self._sock.close()
        with self._changed:
            conns = list(self._open)
        for conn in conns:
            _shut(conn)

    def __enter__(self) -> _Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class TrickleServer(_Listener):
    """Accepts, then sends an upgrade answer that never ends, one byte at a time:
    every single recv() of the client gets a byte well within any timeout."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._context = ssl_context
        super().__init__(self._trickle)

    def _trickle(self, conn: socket.socket) -> None:
        if self._context is not None:
            conn = self._context.wrap_socket(conn, server_side=True)
        answer = b"HTTP/1.1 101 Switching Protocols\r\nX-Padding: " + b"a" * 1_000_000
        for index in range(len(answer)):
            if self.stopping.wait(TRICKLE_INTERVAL):
                return
            conn.sendall(answer[index : index + 1])


class RedirectServer(_Listener):
    """Answers every WebSocket upgrade with ``status`` and ``Location: location``
    (over TLS when given a context)."""

    def __init__(self, location: str, status: int = 302, ssl_context: ssl.SSLContext | None = None) -> None:
        self._answer = f"HTTP/1.1 {status} Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
        self._context = ssl_context
        self.requests: list[bytes] = []
        super().__init__(self._redirect)

    def _redirect(self, conn: socket.socket) -> None:
        if self._context is not None:
            conn = self._context.wrap_socket(conn, server_side=True)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        self.requests.append(head)
        conn.sendall(self._answer)
        self.stopping.wait(10)  # leave closing to the client


class FaultProxy(_Listener):
    """A TCP proxy to 127.0.0.1:``upstream_port`` whose links can be made to misbehave.

    ``stall_upstream()`` makes every link open now stop reading what the client
    sends (the client's writes back up) while still passing what the server
    sends. ``trickle_new_links`` makes links opened from then on pass the
    server's bytes one at a time.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self.trickle_new_links = False
        self._stalls: list[threading.Event] = []
        super().__init__(self._relay)

    def stall_upstream(self) -> None:
        for stall in list(self._stalls):
            stall.set()

    def _relay(self, client: socket.socket) -> None:
        stall = threading.Event()
        self._stalls.append(stall)
        trickle = self.trickle_new_links
        with socket.create_connection(("127.0.0.1", self._upstream_port), timeout=10) as server:
            server.settimeout(None)
            up = threading.Thread(target=self._pump, args=(client, server, stall, False), daemon=True)
            up.start()
            self._pump(server, client, threading.Event(), trickle)
            _shut(client)
            _shut(server)
            up.join(timeout=10)

    def _pump(self, source: socket.socket, sink: socket.socket, stall: threading.Event, trickle: bool) -> None:
        try:
            while not self.stopping.is_set():
                if stall.is_set():
                    self.stopping.wait()  # read nothing more: the sender's buffers fill up
                    return
                data = source.recv(65536)
                if not data:
                    return
                if not trickle:
                    sink.sendall(data)
                    continue
                for index in range(len(data)):
                    if self.stopping.wait(TRICKLE_INTERVAL):
                        return
                    sink.sendall(data[index : index + 1])
        except OSError:
            return
        finally:
            _shut(sink)


def refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class FullBacklog:
    """A listener that never accepts, with its backlog already full: a new
    connection's SYN goes unanswered and ``connect()`` hangs in the kernel."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port: int = self._sock.getsockname()[1]
        self._fillers: list[socket.socket] = []
        while True:  # fill the queue until a connect stops completing
            filler = socket.socket()
            filler.settimeout(0.5)
            try:
                filler.connect(("127.0.0.1", self.port))
            except OSError:
                filler.close()
                break
            self._fillers.append(filler)

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._sock.close()

    def __enter__(self) -> FullBacklog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LogWatch(logging.Handler):
    """Collects relay_sync's log records; tests wait for the ones they expect."""

    def __init__(self, logger: str = "relay_sync") -> None:
        super().__init__(logging.DEBUG)
        self._logger = logging.getLogger(logger)
        self._changed = threading.Condition()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def matching(self, level: int, text: str) -> list[logging.LogRecord]:
        with self._changed:
            return [r for r in self.records if r.levelno == level and text in r.getMessage()]

    def wait_for(self, level: int, text: str, count: int = 1, timeout: float = 10.0) -> list[logging.LogRecord]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.matching(level, text)) >= count, timeout):
                raise TimeoutError(f"{len(self.matching(level, text))} of {count} log records containing {text!r}")
        return self.matching(level, text)

    def __enter__(self) -> LogWatch:
        self._previous_level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._previous_level)
