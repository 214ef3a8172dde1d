"""Plain HTTP on the RELAY port: tell a REST request from a WebSocket
handshake, and serve the REST request.

RELAY's REST side (tasks, JWTs, recordings) lives on the same host and port
as its WebSocket, so the test server's listening socket takes both. The
websockets library refuses requests with a body, so the connection handler
peeks at the first bytes (:func:`is_rest_request`) and hands REST requests
to :func:`serve_http` instead. Runs on the connection's own thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import socket
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

log = logging.getLogger(__name__)

# "GET / HTTP/1.1\r\n", the shortest request line there is, is 16 bytes.
_PEEK_BYTES = 16
# Request lines that are REST, not a WebSocket handshake (which is "GET /...").
_REST_PREFIXES = (b"POST ", b"PUT ", b"DELETE ", b"PATCH ", b"HEAD ", b"GET /api/", b"GET /recordings/")
DEFAULT_MAX_BODY = 1 << 20
# After refusing a body unread: how long and how much to drain before closing.
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 16 << 20


@dataclass(frozen=True)
class HttpRequest:
    """One REST request as the emulator's routes see it."""

    method: str
    path: str
    headers: Message
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON (``ValueError`` when it is not JSON)."""
        return json.loads(self.body.decode("utf-8"))

    def basic_auth(self) -> tuple[str, str] | None:
        """The ``(user, password)`` of an ``Authorization: Basic`` header, if any."""
        header = self.headers.get("Authorization") or ""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if colon else None


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any) -> HttpResponse:
        return cls(status, json.dumps(value).encode("utf-8"))

    @classmethod
    def error(cls, status: int, message: str, **headers: str) -> HttpResponse:
        return cls(status, json.dumps({"error": message}).encode("utf-8"), headers=headers)


HttpRoute = Callable[[HttpRequest], HttpResponse]


def is_rest_request(sock: socket.socket, timeout: float) -> bool:
    """Peek (without consuming) at the request line: True for REST, False for a WebSocket handshake.

    ``sock`` must be a blocking socket. Raises ``OSError`` when the peer sends
    nothing within ``timeout`` seconds.
    """
    # MSG_WAITALL makes the peek wait for the whole 16 bytes, which only works
    # on a socket in blocking mode (settimeout() would make it non-blocking
    # underneath); SO_RCVTIMEO bounds the wait instead.
    _set_receive_timeout(sock, timeout)
    try:
        head = sock.recv(_PEEK_BYTES, socket.MSG_PEEK | _WAITALL)
    finally:
        _set_receive_timeout(sock, 0.0)
    if not head:
        raise ConnectionResetError("the peer closed the connection before sending a request")
    return head.startswith(_REST_PREFIXES)


# Windows cannot combine MSG_WAITALL with MSG_PEEK; a request line arrives in one segment anyway.
_WAITALL = 0 if sys.platform == "win32" else getattr(socket, "MSG_WAITALL", 0)


def _set_receive_timeout(sock: socket.socket, seconds: float) -> None:
    if sys.platform == "win32":
        value = struct.pack("I", int(seconds * 1000))
    else:
        whole = int(seconds)
        value = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)


def serve_http(sock: socket.socket, route: HttpRoute, *, timeout: float, max_body: int = DEFAULT_MAX_BODY) -> None:
    """Answer one HTTP request on ``sock`` with ``route``, then close the connection."""

    class Handler(_RestHandler):
        pass

    Handler.route = staticmethod(route)
    Handler.max_body = max_body
    Handler.timeout = timeout
    try:
        handler = Handler(sock, sock.getpeername(), None)  # type: ignore[arg-type]  # no socketserver here
        if handler.body_unread:
            _linger(sock)
    except OSError as error:
        log.debug("REST connection failed: %s", error)


def _linger(sock: socket.socket) -> None:
    """Read and discard what the client still sends, so closing does not reset the
    connection (a reset can destroy the response before the client read it)."""
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(_LINGER_SECONDS)
    discarded = 0
    while discarded < _LINGER_BYTES:
        chunk = sock.recv(65536)
        if not chunk:
            return
        discarded += len(chunk)


class _RestHandler(BaseHTTPRequestHandler):
    """http.server's request parsing, answering every method through one route."""

    protocol_version = "HTTP/1.1"
    server_version = "RelayEmulator"
    route: Callable[[HttpRequest], HttpResponse]
    max_body: int
    body_unread = False

    def handle(self) -> None:
        # One request per connection: keeps shutdown from waiting on idle keep-alive sockets.
        self.close_connection = True
        self.handle_one_request()

    def _dispatch(self) -> None:
        length_header = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_header)
        except ValueError:
            self._reply(HttpResponse.error(HTTPStatus.BAD_REQUEST, "Content-Length is not a number"))
            return
        if length < 0 or length > self.max_body:
            self.body_unread = True
            self._reply(
                HttpResponse.error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {self.max_body} bytes")
            )
            return
        body = self.rfile.read(length) if length else b""
        request = HttpRequest(self.command, self.path, self.headers, body)
        try:
            response = self.route(request)
        except Exception:  # a bug in a route: answer 500 and keep the server up
            log.exception("REST route failed for %s %s", self.command, self.path)
            response = HttpResponse.error(HTTPStatus.INTERNAL_SERVER_ERROR, "emulator error")
        self._reply(response)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def do_HEAD(self) -> None:
        self._reply(HttpResponse(HTTPStatus.METHOD_NOT_ALLOWED))

    def _reply(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.body or response.status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        log.debug("REST %s", format % args)
