"""Opening the WebSocket: TCP (through an HTTP proxy when one applies), TLS and
the upgrade, under one deadline and cancellable from any thread.

A socket timeout bounds one system call, so a server that trickles a byte at
a time can stretch a handshake made of many calls without limit. Here every
socket of an attempt is registered with an :class:`OpeningWatch`; when the
attempt's deadline passes (the transport arms a timer on its timer thread) or
the client closes, the watch shuts those sockets down, which wakes whatever
call is blocked on them at once. The login that follows the upgrade stays
under the same watch (see ``Transport._open_session``).

websocket-client still writes and checks the upgrade request; it is handed
the connected (and TLS-wrapped) socket and told never to follow a redirect: a
``3xx`` answer to the upgrade would otherwise take the credentials to wherever
``Location`` points, over plain ``ws://`` if it says so.

Runs in the connecting thread (the caller of ``connect()``, or the I/O thread
on a reconnect); ``OpeningWatch.stop`` runs on the timer thread or in the
thread that closes the client. The DNS lookup, which no socket shutdown can
interrupt, runs on a short-lived ``relay_sync-dns`` thread that the connecting
thread waits for under the same watch and deadline (see ``_resolve``).
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
import threading
from base64 import b64encode
from typing import Any
from urllib.parse import urlsplit

import requests.utils
import websocket

from .config import ProxySettings, parse_proxy
from .errors import RelayError

# Why a watch stopped an attempt.
DEADLINE = "deadline"
CLOSING = "closing"

# The longest proxy answer to CONNECT read before giving up on it.
MAX_PROXY_RESPONSE = 16 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# What a non-blocking connect() answers when the SYN is on its way (10035 is Windows' WSAEWOULDBLOCK).
_CONNECT_STARTED = frozenset({0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, 10035})


class OpeningWatch:
    """The sockets of one connection attempt, shut down together by ``stop()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._waiters: list[threading.Event] = []  # set by stop(): waits that are not on a socket
        self._finished = False
        self.stopped_by: str | None = None

    def track(self, sock: socket.socket) -> None:
        """Watch ``sock``; raise at once if the attempt is already stopped (nothing to wake yet)."""
        with self._lock:
            if self.stopped_by is not None:
                raise ConnectionAbortedError(f"the connection attempt was stopped ({self.stopped_by})")
            self._sockets.append(sock)

    def wake_on_stop(self, event: threading.Event) -> None:
        """Set ``event`` when the attempt is stopped (at once if it already was)."""
        with self._lock:
            if self.stopped_by is None:
                self._waiters.append(event)
                return
        event.set()

    def check(self) -> None:
        """Raise if the attempt was stopped. Called once a socket is connecting:
        from then on a stop's shutdown aborts it, but one that came just before
        found nothing to abort."""
        with self._lock:
            if self.stopped_by is not None:
                raise ConnectionAbortedError(f"the connection attempt was stopped ({self.stopped_by})")

    def stop(self, reason: str) -> None:
        """Cut the attempt short (any thread). No effect once it has finished."""
        with self._lock:
            if self._finished or self.stopped_by is not None:
                return
            self.stopped_by = reason
            sockets = list(self._sockets)
            waiters = list(self._waiters)
        for sock in sockets:
            _shut(sock)
        for event in waiters:
            event.set()

    def finish(self) -> bool:
        """The attempt succeeded: stop watching. False if it was stopped first."""
        with self._lock:
            self._finished = True
            self._sockets.clear()
            self._waiters.clear()
            return self.stopped_by is None


def open_websocket(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None,
    proxy: ProxySettings | None,
    timeout: float,
    watch: OpeningWatch,
) -> websocket.WebSocket:
    """TCP, proxy tunnel, TLS and the WebSocket upgrade; raises what the network raised,
    or ``RelayError("redirect_refused")`` when the server answers the upgrade with a redirect.

    ``proxy`` is the client's ``proxy=``; without one, the environment's proxy for
    ``url`` applies (see ``environment_proxy``).
    """
    parts = urlsplit(url)
    is_secure = parts.scheme == "wss"
    hostname = parts.hostname or ""
    port = parts.port or (443 if is_secure else 80)
    from_environment = proxy is None
    if proxy is None:
        proxy = environment_proxy(url)
    if proxy is not None:
        sock = _through_proxy(proxy, hostname, port, timeout, watch, from_environment=from_environment)
    else:
        sock = _connect_tcp(hostname, port, timeout, watch)
    try:
        if is_secure:
            sock = _start_tls(sock, ssl_context or ssl.create_default_context(), hostname, watch)
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        try:
            ws.connect(url, socket=sock, timeout=timeout, redirect_limit=0)  # type: ignore[no-untyped-call]
        except websocket.WebSocketException:
            _refuse_redirect(ws)
            raise
        _refuse_redirect(ws)
    except BaseException:
        sock.close()
        raise
    return ws


def environment_proxy(url: str) -> ProxySettings | None:
    """The HTTP proxy the environment names for a ``ws://``/``wss://`` ``url``, or None.

    The rules are requests' (``https_proxy`` for ``wss``, ``http_proxy`` for
    ``ws``, ``all_proxy``, and ``no_proxy`` with its domain suffixes and address
    ranges), so the socket and the REST helpers always agree on whether a host
    goes through the proxy. A proxy without a scheme is taken as ``http://``.
    """
    as_http = ("https" if url.startswith("wss:") else "http") + url[url.index(":") :]
    chosen = (requests.utils.select_proxy(as_http, requests.utils.get_environ_proxies(as_http)) or "").strip()
    if not chosen:  # unset, or blank
        return None
    try:
        return parse_proxy(chosen if "://" in chosen else f"http://{chosen}")
    except ValueError as error:
        # parse_proxy's message never holds the value, which may carry a password.
        # Not a transient code: run() must not retry what only a new setting fixes.
        raise RelayError(
            "proxy_invalid",
            f"the proxy set in the environment (https_proxy, http_proxy or all_proxy) is not usable: {error}",
        ) from None


def _through_proxy(
    proxy: ProxySettings, host: str, port: int, timeout: float, watch: OpeningWatch, *, from_environment: bool
) -> socket.socket:
    """A socket tunnelled through ``proxy`` to ``host:port`` (CONNECT)."""
    sock: socket.socket | None = None
    try:
        sock = _connect_tcp(proxy.host, proxy.port, timeout, watch)
        _tunnel(sock, host, port, proxy.auth)
    except BaseException as error:
        if sock is not None:
            sock.close()
        timed_out = isinstance(error, (TimeoutError, socket.timeout, websocket.WebSocketTimeoutException))
        if from_environment and isinstance(error, (OSError, websocket.WebSocketException)) and not timed_out:
            # Nobody passed this proxy to the client: say where it came from, and the way round it.
            raise websocket.WebSocketProxyException(
                f"{error} (through the proxy named by https_proxy/http_proxy/all_proxy; "
                f"add {host} to no_proxy to connect directly)"
            ) from error
        raise
    return sock


def trust_context(ca_file: str | None) -> ssl.SSLContext:
    """The system's trust store, plus the CAs in ``ca_file`` when given (added, not instead)."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, OSError) as error:  # checked at construction: replaced or removed since
            raise ValueError(
                f"ca_file {ca_file!r} holds no usable PEM certificate: {error.strerror or error}"
            ) from None
    return context


class _Lookup:
    """One ``getaddrinfo`` call, run on its own thread; ``ready`` is set when it is done
    (and by the watch, when the attempt is stopped first)."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self.ready = threading.Event()
        self.done = False
        self._addresses: list[Any] = []
        self._error: Exception | None = None

    def run(self) -> None:  # the relay_sync-dns thread
        try:
            self._addresses = socket.getaddrinfo(self._host, self._port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        except Exception as error:  # noqa: BLE001 - handed to the connecting thread, which raises it
            self._error = error
        finally:
            self.done = True
            self.ready.set()

    def addresses(self) -> list[Any]:
        if self._error is not None:
            raise self._error
        return self._addresses


def _resolve(host: str, port: int, timeout: float, watch: OpeningWatch) -> list[Any]:
    """``getaddrinfo`` under the attempt's deadline and watch.

    The system resolver cannot be interrupted, and one whose DNS server does not
    answer takes its own time (tens of seconds). So the lookup runs on a
    short-lived daemon thread while this one waits for it, for the deadline and
    for a stop: a stopped attempt leaves a slow lookup behind, to end on its own.
    """
    lookup = _Lookup(host, port)
    watch.wake_on_stop(lookup.ready)
    resolver = threading.Thread(target=lookup.run, name="relay_sync-dns", daemon=True)
    resolver.start()
    lookup.ready.wait(timeout)
    if lookup.done:
        resolver.join()  # it is returning: no thread outlives a lookup that finished
    watch.check()  # stopped (deadline or close): raises
    if not lookup.done:
        raise TimeoutError(f"the DNS lookup of {host} took longer than {timeout:g} s")
    return lookup.addresses()


def _connect_tcp(host: str, port: int, timeout: float, watch: OpeningWatch) -> socket.socket:
    last_error: OSError | None = None
    for family, kind, proto, _, address in _resolve(host, port, timeout, watch):
        sock = socket.socket(family, kind, proto)
        try:
            watch.track(sock)
            _start_connecting(sock, address)
            watch.check()
            _wait_connected(sock, timeout)
        except OSError as error:
            sock.close()
            last_error = error
            if watch.stopped_by is not None:
                break  # the next address would be shut down the same way
            continue
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last_error or OSError(f"no address found for {host}")


def _start_connecting(sock: socket.socket, address: Any) -> None:
    """Send the SYN without waiting: the socket is connecting when this returns."""
    sock.setblocking(False)
    started = sock.connect_ex(address)
    if started not in _CONNECT_STARTED:
        raise OSError(started, os.strerror(started))


def _wait_connected(sock: socket.socket, timeout: float) -> None:
    # A selector, not select(): select() refuses descriptors numbered 1024 and up.
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        if not selector.select(timeout):
            raise TimeoutError(f"TCP connect timed out after {timeout:g} s")
    failed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if failed:
        raise OSError(failed, os.strerror(failed))


def _start_tls(sock: socket.socket, context: ssl.SSLContext, hostname: str, watch: OpeningWatch) -> ssl.SSLSocket:
    tls = context.wrap_socket(sock, server_hostname=hostname, do_handshake_on_connect=False)
    try:
        watch.track(tls)  # the same descriptor as before, tracked again as the object now in use
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return tls


def _tunnel(sock: socket.socket, host: str, port: int, auth: tuple[str, str] | None) -> None:
    """Ask an HTTP proxy for a tunnel (CONNECT) to ``host:port``."""
    request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if auth and auth[0]:
        credentials = b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        request += f"Proxy-Authorization: Basic {credentials}\r\n"
    sock.sendall((request + "\r\n").encode("latin-1"))
    answer = b""
    # Read a byte at a time: anything after the blank line belongs to TLS or the upgrade.
    while not answer.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise websocket.WebSocketProxyException("the proxy closed the connection during CONNECT")
        answer += byte
        if len(answer) > MAX_PROXY_RESPONSE:
            raise websocket.WebSocketProxyException("the proxy's answer to CONNECT is too long")
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or parts[1] != "200":
        raise websocket.WebSocketProxyException(f"the proxy refused the tunnel: {status_line!r}")


def _refuse_redirect(ws: websocket.WebSocket) -> None:
    response = ws.handshake_response
    status = getattr(response, "status", None)
    if status not in REDIRECT_STATUSES:
        return
    headers = getattr(response, "headers", None) or {}
    location = str(headers.get("location", ""))[:200]
    raise RelayError(
        "redirect_refused",
        f"the server answered the WebSocket upgrade with {status} redirecting to {location!r}; "
        "relay_sync never follows a redirect there (it would carry the credentials): set host to the real server",
    )


def _shut(sock: socket.socket) -> None:
    """Wake any thread blocked on ``sock`` (even mid-connect or mid-handshake)."""
    try:
        # The plain socket's shutdown, also for an SSLSocket: its own shutdown() would
        # drop the TLS state under the feet of the thread still reading through it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, or already closed: nothing is blocked on it
