"""The RELAY session over one WebSocket: the I/O thread, requests, keepalive
and reconnects.

Threads:

* the **I/O thread** (``relay_sync-io``) is the only reader of the socket. It
  parses frames, answers server requests (event ACKs, pings, disconnects),
  resolves request futures and hands events to the client's ``on_event``
  callback, which must not block. When the link is lost it reconnects, with a
  tenacity policy, in the same thread.
* the **timer thread** (``relay_sync-timer``) runs keepalive pings and other
  internal deadlines.
* caller threads send requests through the connection's ``FrameWriter``
  (framing.py) and block on futures.

The frames themselves are framing.py's: this module owns the session across
connections (login, backlog, reconnects), not the bytes on the socket.

Requests made while the link is down wait in a bounded backlog and go out,
in order, once the session is authenticated again. Requests already on the
wire when the link dies fail with ``ConnectionLostError``: the server may have
acted on them, so they are never silently resent.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable

import tenacity
import websocket

from .config import ProxySettings
from .errors import (
    AuthenticationError,
    BacklogFullError,
    ClientClosedError,
    ConnectFailedError,
    ConnectionLostError,
    RelayError,
    RelayTimeoutError,
)
from .framing import FrameReader, FrameWriter
from .futures import copy_for_waiter, fail, settle
from .keepalive import Keepalive
from .lifecycle import ConnectionState, LinkObserver
from .opening import CLOSING, DEADLINE, OpeningWatch, open_websocket, trust_context
from .rpc import (
    CONNECT_METHOD,
    JSONDict,
    PendingRequest,
    PendingTable,
    encode_error,
    encode_request,
    encode_result,
    fill_session_protocol,
    masked,
    response_result,
    takes_session_protocol,
)
from .timers import TimerThread

log = logging.getLogger(__name__)
frame_log = logging.getLogger("relay_sync.frames")

# A read that brings at least this many inbound-call offers is announced to
# on_offers before they are dispatched. (A substring test on the raw frame: a
# false positive only starts a thread that retires unused.)
OFFER_BURST = 4
OFFER_MARK = b'"calling.call.receive"'

BACKLOG_LIMIT = 500
AUTH_FAILURE_LIMIT = 3

# What a lost link looks like from websocket-client and the socket layer.
LINK_ERRORS = (websocket.WebSocketException, OSError, ssl.SSLError)

# What a socket call that ran out of time raises (socket.timeout is TimeoutError from 3.10 on).
SOCKET_TIMEOUTS = (socket.timeout, TimeoutError, websocket.WebSocketTimeoutException)

# Codes of the errors ``open()`` raises that may heal on their own (the server is
# not up yet, restarting, or the network is not ready): ``run()`` retries them.
# Anything else (a refused certificate, a redirect, a configuration limit) will
# not get better by trying again.
TRANSIENT_OPEN_FAILURES = frozenset({"connect_failed", "timeout"})


def retry_delay(retry: int, low: float, high: float) -> float:
    """Seconds to wait before retry number ``retry`` (from 1) to connect, ``reconnect_backoff``
    being ``(low, high)``; never more than ``high``.

    The first retry waits a random time under ``low / 2``: quick to heal a blip, and a
    restarted server is not hit by all of its clients in the same instant. Later ones
    back off exponentially from ``low`` towards ``high``, plus up to ``low`` of jitter
    for the same reason (the exponential part stops at ``high - low`` to leave it room).
    """
    if retry <= 1:
        return random.uniform(0, low / 2)
    # The outer min: (high - low) + jitter may round one float step above high.
    return min(high, min(low * 2.0 ** min(retry - 2, 32), high - low) + random.uniform(0, low))


@dataclass(frozen=True)
class TransportOptions:
    url: str
    request_timeout: float
    connect_timeout: float
    ping_interval: float
    reconnect_backoff: tuple[float, float]
    ca_file: str | None = None  # added to the system's trust store
    proxy: ProxySettings | None = None  # the client's proxy=; None: the environment's, if any


@dataclass
class Link:
    """One open connection: the websocket-client object that opened it (and shuts
    it down) and the one owner of each direction of its socket."""

    ws: websocket.WebSocket
    reader: FrameReader
    writer: FrameWriter[PendingRequest]
    # Messages read in the same burst as the login answer, left for the I/O thread.
    early: list[tuple[int, bytes]]


@dataclass
class SessionInfo:
    """What ``signalwire.connect`` returned, plus the state resent on reconnect."""

    protocol: str | None = None
    identity: str | None = None
    authorization: JSONDict | None = None
    session_id: str | None = None
    authorization_state: str | None = None

    def forget_resumption(self) -> None:
        self.protocol = None
        self.authorization_state = None

    def __repr__(self) -> str:  # authorization details and state are secrets
        return f"SessionInfo(protocol={'set' if self.protocol else None})"


class Transport:
    """One authenticated RELAY session that survives reconnects until ``close()``."""

    def __init__(
        self,
        options: TransportOptions,
        *,
        connect_params: Callable[[], JSONDict],
        on_event: Callable[[JSONDict], None],
        on_session: Callable[[bool], None] = lambda resumed: None,
        on_fatal: Callable[[RelayError], None] = lambda error: None,
        observer: LinkObserver | None = None,
        on_offers: Callable[[int], None] | None = None,
    ) -> None:
        self._options = options
        # Told how many inbound calls one read brought, before they are dispatched (and 0
        # after), so the handler pool can start their threads ahead of them.
        self._on_offers = on_offers
        self._connect_params = connect_params
        self._on_event = on_event
        self._on_session = on_session
        self._on_fatal = on_fatal
        self._observer = observer or LinkObserver()

        self.session = SessionInfo()
        self.timers = TimerThread("relay_sync-timer")
        self._keepalive = Keepalive(
            self.timers,
            interval=options.ping_interval,
            answer_timeout=options.request_timeout,
            send_ping=self._send_keepalive_ping,
            force_close=self.force_reconnect,
        )
        self._pending = PendingTable()
        self._backlog: deque[PendingRequest] = deque()
        # _state_lock guards _link, _connected, _closed and the backlog (taken after a
        # writer's send lock when both are needed: see _flush_backlog).
        self._state_lock = threading.Lock()
        self._link: Link | None = None
        self._opening: OpeningWatch | None = None  # the connection attempt in progress
        self._ssl_context = trust_context(options.ca_file) if options.url.startswith("wss:") else None
        self._connected = False
        self._closed = False
        self._logged_in_once = False
        # Counters for stats(), guarded by _state_lock like the backlog they describe.
        # A request counts as sent once accepted (on the wire or in the backlog).
        self._requests_sent = 0
        self._requests_timed_out = 0
        self._backlog_failed = 0  # queued requests failed by close() or giving up
        self._fatal: RelayError | None = None
        self._closing = threading.Event()
        self._io_thread: threading.Thread | None = None
        self._auth_failures = 0

    # -- public surface ----------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def state(self) -> ConnectionState:
        with self._state_lock:
            if self._closed:
                return ConnectionState.CLOSED
            if self._connected:
                return ConnectionState.CONNECTED
            return ConnectionState.RECONNECTING if self._logged_in_once else ConnectionState.CONNECTING

    @property
    def last_heard(self) -> float:
        """``time.monotonic()`` when the server was last heard from."""
        return self._keepalive.last_heard

    def stats(self) -> dict[str, Any]:
        """The request counters, taken together (see ``RelayClient.stats``)."""
        with self._state_lock:
            table = self._pending.snapshot()  # under our lock too: the counts agree with each other
            return {
                "requests_sent": self._requests_sent,
                "requests_failed": table["failed"] + self._backlog_failed,
                "requests_timed_out": self._requests_timed_out,
                "in_flight": table["in_flight"],
                "in_flight_methods": table["in_flight_methods"],
                "backlog": len(self._backlog),
                "last_rtt": table["last_rtt"],
                "request_latency": table["latency"],
            }

    def open(self, timeout: float | None = None) -> None:
        """Connect and authenticate in the caller's thread, then start the I/O thread.

        Raises ``AuthenticationError`` when the credentials are refused and
        ``RelayError`` when the server cannot be reached; nothing is retried.
        """
        try:
            self.timers.start()  # first: it enforces the login's deadline
            link = self._open_session(timeout if timeout is not None else self._options.connect_timeout)
            self._keepalive.start()
            # Under the lock, and never once closed: close() joins exactly the thread started here.
            with self._state_lock:
                if self._closed:
                    raise ClientClosedError()
                self._io_thread = threading.Thread(
                    target=self._io_main, args=(link,), name="relay_sync-io", daemon=True
                )
                self._io_thread.start()
        except RelayError:  # before LINK_ERRORS: RelayTimeoutError is an OSError too
            self.close()
            raise
        except LINK_ERRORS as error:
            if self._closing.is_set():  # close() (the client's disconnect()) cut the login short
                raise ClientClosedError() from None
            self.close()
            if isinstance(error, ssl.SSLCertVerificationError):
                raise ConnectFailedError(
                    f"could not connect to {self._options.url}: {_describe(error)}", code="certificate_rejected"
                ) from None
            raise ConnectFailedError(f"could not connect to {self._options.url}: {_describe(error)}") from None

    def request(self, method: str, params: JSONDict, timeout: float | None = None) -> JSONDict:
        """Send a request and block until its result (2xx) or a ``RelayError``."""
        return self._wait(self.submit(method, params), method, timeout)

    def request_on_session(
        self, method: str, params: JSONDict, timeout: float | None = None
    ) -> tuple[JSONDict, str | None]:
        """``request``, also returning the session protocol its ``SESSION_PROTOCOL``
        params went out with (read now, the session may already have changed)."""
        pending = self.submit(method, params)
        return self._wait(pending, method, timeout), pending.protocol

    def _wait(self, pending: PendingRequest, method: str, timeout: float | None) -> JSONDict:
        wait = timeout if timeout is not None else self._options.request_timeout
        try:
            # Any finite timeout is allowed; past TIMEOUT_MAX the lock under the future raises OverflowError.
            return pending.future.result(min(wait, threading.TIMEOUT_MAX))
        except FutureTimeout:
            if self._stop_waiting(pending):
                raise RelayTimeoutError(f"{method} got no response within {wait:g} s") from None
            # The answer (or a failure) slipped in as we gave up: whoever took the request
            # from the table settles its future right after, so this wait is short.
            return pending.future.result()

    def request_into(self, outcome: Future[JSONDict], method: str, params: JSONDict, timeout: float | None) -> None:
        """Send a request without blocking; ``outcome`` settles as ``request`` would return or raise.

        The caller makes ``outcome`` (a ``HandoffFuture``), so its done-callbacks run
        where the caller chose, not on the I/O thread that answers the request.
        The timeout is a timer, as nobody blocks on the answer.
        """
        pending = self.submit(method, params)
        wait = timeout if timeout is not None else self._options.request_timeout

        def expire() -> None:  # timer thread
            if self._stop_waiting(pending):
                fail(outcome, RelayTimeoutError(f"{method} got no response within {wait:g} s"))
            # else the answer or failure came first: `answered` passes it on

        deadline = self.timers.call_later(wait, expire)

        def answered(request: Future[JSONDict]) -> None:  # whichever thread settled the request
            deadline.cancel()
            error = request.exception()
            if error is None:
                settle(outcome, request.result())
            else:
                fail(outcome, error)

        pending.future.add_done_callback(answered)

    def _stop_waiting(self, pending: PendingRequest) -> bool:
        """Stop waiting for ``pending``: True if it was still unanswered (it is then
        never sent or settled, and the link is suspect). False if its answer or failure
        came first: whoever took it from the table settles its future."""
        if not self.abandon(pending):
            return False
        self._keepalive.suspect()
        return True

    def submit(self, method: str, params: JSONDict) -> PendingRequest:
        """Send (or queue, while reconnecting) a request; its future settles with the result."""
        if takes_session_protocol(params):  # encoded once the session is known (below, or at the flush)
            request_id, _ = encode_request(method, fill_session_protocol(params, ""))  # a bad param raises here
            pending = PendingRequest(request_id, method, "", unfilled=params)
        else:
            request_id, text = encode_request(method, params)
            pending = PendingRequest(request_id, method, text)
        with self._state_lock:
            if self._closed:
                raise copy_for_waiter(self._fatal) if self._fatal is not None else ClientClosedError()
            if not self._connected:
                if len(self._backlog) >= BACKLOG_LIMIT:
                    raise BacklogFullError(
                        f"{BACKLOG_LIMIT} requests are already waiting for the connection to come back"
                    )
                self._backlog.append(pending)
                self._requests_sent += 1
                return pending
            link = self._link
            pending.fill(self.session.protocol)
            self._pending.add(pending)
            self._requests_sent += 1
        self._log_frame("send", pending.text)
        if link is None:  # cannot happen while connected; fail as a lost link would
            self._pending.fail_some([pending], ConnectionLostError())
        else:
            link.writer.send(pending)
        return pending

    def abandon(self, pending: PendingRequest) -> bool:
        """Forget a request whose caller stopped waiting: never send it later.
        Counted as timed out, and True, unless its answer (or failure) came first."""
        with self._state_lock:
            try:
                self._backlog.remove(pending)
                gave_up = True
            except ValueError:  # already sent: drop it from the table
                gave_up = self._pending.discard(pending.request_id)
            if gave_up:
                self._requests_timed_out += 1
        return gave_up

    def force_reconnect(self, reason: str = "requested") -> None:
        """Drop the socket; the I/O thread notices and reconnects."""
        with self._state_lock:
            link = self._link
        if link is not None:
            log.info("closing the socket to reconnect (%s)", reason)
            _shutdown(link.ws)

    def close(self) -> None:
        """Close for good: fail everything waiting, stop and join our threads. Idempotent."""
        with self._state_lock:
            already = self._closed
            self._closed = True
            self._connected = False
            link, self._link = self._link, None
            opening = self._opening
            backlog = list(self._backlog)
            self._backlog.clear()
            self._backlog_failed += len(backlog)
        self._closing.set()
        if opening is not None:
            opening.stop(CLOSING)  # wakes a connect or reconnect blocked anywhere in its handshake
        if not already:
            error: RelayError = self._fatal or ClientClosedError()
            for pending in backlog:
                pending.fail(error)
            self._pending.fail_all(error)
        self._keepalive.stop()
        if link is not None:
            link.writer.close()  # a goodbye close frame, if the link takes it
            _shutdown(link.ws)
        with self._state_lock:
            thread = self._io_thread
        if thread is not None and thread.ident is not None and thread is not threading.current_thread():
            thread.join()
        self.timers.stop()

    # -- session setup (caller thread on open, I/O thread on reconnect) ----

    def _open_session(self, timeout: float) -> Link:
        """Open the socket and log in, all within ``timeout`` seconds, or raise.

        ``close()`` or the deadline timer stop the attempt's watch, which shuts
        its sockets down wherever the attempt is blocked (TCP connect, proxy,
        TLS, upgrade or login); the error that wakes it is reported as what it
        is: ``ClientClosedError`` or ``RelayTimeoutError``.
        """
        watch = OpeningWatch()
        with self._state_lock:
            if self._closed:
                raise ClientClosedError()
            self._opening = watch
        log.debug("connecting to %s (%g s to open the socket and log in)", self._options.url, timeout)
        deadline = self.timers.call_later(timeout, lambda: watch.stop(DEADLINE))
        try:
            link, result = self._open_and_authenticate(watch, timeout)
            if not watch.finish():  # stopped just as the login succeeded: honour the stop
                _shutdown(link.ws)
                raise websocket.WebSocketConnectionClosedException("the connection attempt was stopped")
        except (RelayError, *LINK_ERRORS) as error:
            if watch.stopped_by == CLOSING:
                raise ClientClosedError() from None
            # A socket timeout is the deadline too: each call's timeout is the whole
            # of it, so one that fires first means the whole time has passed.
            timed_out = isinstance(error, SOCKET_TIMEOUTS) and not isinstance(error, RelayError)
            if watch.stopped_by == DEADLINE or timed_out:
                raise RelayTimeoutError(
                    f"connecting to {self._options.url} and logging in took longer than {timeout:g} s"
                ) from None
            raise
        finally:
            deadline.cancel()
            with self._state_lock:
                if self._opening is watch:
                    self._opening = None
        link.ws.settimeout(None)  # the I/O thread blocks in recv(); keepalive detects silence
        link.writer.limit_sends()
        resumed = self._store_session(result)
        self._auth_failures = 0
        log.debug("RELAY session %s on %s", "resumed" if resumed else "started", self._options.url)
        # The hooks run before the backlog goes out: a service failing what a lost session
        # took with it then still finds every queued request unsent, as one of this session's.
        self._on_session(resumed)
        if self._flush_backlog(link):  # not when close() came during the login
            self._observer.connected(resumed)  # after the flush: a hook sees a live client
        return link

    def _open_and_authenticate(self, watch: OpeningWatch, timeout: float) -> tuple[Link, JSONDict]:
        ws = open_websocket(
            self._options.url, ssl_context=self._ssl_context, proxy=self._options.proxy, timeout=timeout, watch=watch
        )
        sock = ws.sock
        if sock is None:
            raise websocket.WebSocketConnectionClosedException("the socket closed during the upgrade")
        writer: FrameWriter[PendingRequest] = FrameWriter(
            sock,
            limit=self._options.request_timeout,
            on_failed=lambda requests, error: self._write_failed(ws, requests),
        )
        link = Link(ws, FrameReader(sock.recv_into, writer.answer_control), writer, [])
        with self._state_lock:
            if self._closed:
                _shutdown(ws)
                raise ClientClosedError()
            self._link = link  # server requests during the handshake are answered on it
        try:
            return link, self._authenticate(link, timeout)
        except BaseException:
            with self._state_lock:
                if self._link is link:
                    self._link = None
            _shutdown(ws)
            raise

    def _authenticate(self, link: Link, timeout: float) -> JSONDict:
        """Send ``signalwire.connect`` and read until its answer, handling what comes
        before it; what comes after it in the same read is left in ``link.early``."""
        params = dict(self._connect_params())
        if self.session.protocol:
            params["protocol"] = self.session.protocol
        if self.session.authorization_state:
            params["authorization_state"] = self.session.authorization_state
        request_id, text = encode_request(CONNECT_METHOD, params)
        self._log_frame("send", text)
        link.ws.settimeout(timeout)
        link.writer.send_now(text)
        # One deadline for the whole login: a server that keeps sending other
        # frames (pings, events) must not stretch it by restarting a per-recv timeout.
        # (A server trickling one frame a byte at a time is cut off by the opening watch.)
        deadline = time.monotonic() + timeout
        writer = link.writer
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError()
                link.ws.settimeout(remaining)
                messages = link.reader.read()
            except SOCKET_TIMEOUTS:
                raise RelayTimeoutError(f"{CONNECT_METHOD} got no response within {timeout:g} s") from None
            for index, (_opcode, payload) in enumerate(messages):
                frame = self._decode(payload)
                if frame is None:
                    continue
                if frame.get("id") == request_id and "method" not in frame:
                    link.early = messages[index + 1 :]
                    writer.flush_replies()  # the answers to what came before the login's
                    try:
                        return response_result(CONNECT_METHOD, frame)
                    except AuthenticationError as error:
                        self._auth_failures += 1
                        self._observer.login_refused(error)
                        if params.get("protocol") or params.get("authorization_state"):
                            self.session.forget_resumption()  # the next attempt logs in from scratch
                        raise
                try:
                    self._dispatch(frame, writer)
                except Exception:  # as on the I/O thread: one bad frame must not fail the login
                    log.exception("failed to handle a frame from the server")
            writer.flush_replies()

    def _store_session(self, result: JSONDict) -> bool:
        protocol = result.get("protocol")
        resumed = bool(self.session.protocol) and protocol == self.session.protocol
        self.session.protocol = protocol if isinstance(protocol, str) else None
        identity = result.get("identity")
        self.session.identity = identity if isinstance(identity, str) else None
        authorization = result.get("authorization")
        self.session.authorization = authorization if isinstance(authorization, dict) else None
        session_id = result.get("sessionid")
        self.session.session_id = session_id if isinstance(session_id, str) else None
        return resumed

    def _flush_backlog(self, link: Link) -> bool:
        """Mark the session live and send what queued while it was down, oldest first
        (False, doing nothing, once the transport is closed).

        Holding the writer's send lock while flipping ``_connected`` keeps a
        request made right now from overtaking the queued ones.
        """
        with link.writer.held() as queue, self._state_lock:
            if self._closed:
                return False
            queued = list(self._backlog)
            self._backlog.clear()
            for pending in queued:
                pending.fill(self.session.protocol)  # the new session's
                self._pending.add(pending)
                self._log_frame("send", pending.text)
                queue(pending)
            self._connected = True
            self._logged_in_once = True
        return True

    def _write_failed(self, ws: websocket.WebSocket, requests: list[PendingRequest]) -> None:
        """A write on ``ws`` failed (the writing thread): its requests may or may not
        have left, so they fail rather than risk a double send; and the socket is dead,
        though the I/O thread may not have noticed yet: without marking the link down,
        every request made until it does would fail the same way instead of waiting in
        the backlog for the reconnect."""
        self._pending.fail_some(requests, ConnectionLostError())
        with self._state_lock:
            if self._link is not None and self._link.ws is ws:
                self._connected = False
        _shutdown(ws)

    def _send_keepalive_ping(self) -> Callable[[], None] | None:
        with self._state_lock:
            live = self._connected and not self._closed
        if not live:
            return None
        try:
            pending = self.submit("signalwire.ping", {})
        except RelayError:
            return None

        def forget() -> None:  # the keepalive stops waiting for this ping
            self.abandon(pending)

        return forget

    # -- the I/O thread ----------------------------------------------------

    def _io_main(self, link: Link) -> None:
        try:
            current: Link | None = link
            while current is not None:
                error = self._read_until_lost(current)
                self._link_lost(current, error)
                if self._closing.is_set():
                    break
                current = self._reconnect()
        except Exception as error:  # a bug: the only reader must not vanish and leave the session "connected"
            log.exception("the I/O thread failed")
            if not self._closing.is_set():
                self._give_up(error)
        log.debug("I/O thread exiting")

    def _read_until_lost(self, link: Link) -> BaseException:
        """Read and dispatch until the link fails; returns why."""
        reader, writer = link.reader, link.writer
        keepalive = self._keepalive
        monotonic = time.monotonic
        decode, dispatch = self._decode, self._dispatch
        messages, link.early = link.early, []  # what came with the login answer first
        while True:
            offers = self._count_offers(messages)
            for _opcode, payload in messages:
                frame = decode(payload)
                if frame is None:
                    continue
                try:
                    dispatch(frame, writer)
                except Exception:  # a bug in frame handling must not kill the only reader
                    log.exception("failed to handle a frame from the server")
            if offers:
                self._announce_offers(0)
            writer.flush_replies()
            try:
                messages = reader.read()
            except LINK_ERRORS as error:
                return error
            keepalive.last_heard = monotonic()

    def _count_offers(self, messages: list[tuple[int, bytes]]) -> int:
        """Inbound calls in a burst of at least OFFER_BURST messages, announced to
        ``on_offers`` before any is dispatched; 0 (nothing announced) otherwise."""
        if self._on_offers is None or len(messages) < OFFER_BURST:
            return 0
        offers = sum(1 for _opcode, payload in messages if OFFER_MARK in payload)
        if offers < OFFER_BURST:
            return 0
        self._announce_offers(offers)
        return offers

    def _announce_offers(self, count: int) -> None:
        assert self._on_offers is not None
        try:
            self._on_offers(count)
        except Exception:  # a hint only: the offers are dispatched all the same
            log.exception("could not prepare for %d inbound calls", count)

    def _link_lost(self, link: Link, error: BaseException | None) -> None:
        self._keepalive.stop()
        with self._state_lock:
            if self._link is link:
                self._link = None
            self._connected = False
        _shutdown(link.ws)
        self._pending.fail_all(ConnectionLostError())
        if not self._closing.is_set():
            self._observer.link_lost(ConnectionLostError(f"the connection was lost: {_describe(error)}"))

    def _reconnect(self) -> Link | None:
        """Log in again with backoff; None when closing or when retrying is hopeless."""
        low, high = self._options.reconnect_backoff
        first_delay = retry_delay(1, low, high)
        self._observer.reconnecting(1, first_delay, None)
        if self._closing.wait(first_delay):
            return None
        retrying = tenacity.Retrying(
            # After failed attempt n comes retry n + 1.
            wait=lambda state: retry_delay(state.attempt_number + 1, low, high),
            stop=lambda state: self._closing.is_set() or self._auth_failures >= AUTH_FAILURE_LIMIT,
            retry=tenacity.retry_if_exception_type((RelayError, *LINK_ERRORS)),
            sleep=self._sleep_unless_closing,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            link: Link = retrying(self._reconnect_once)
        except ClientClosedError:
            return None
        except (RelayError, *LINK_ERRORS) as error:
            if self._closing.is_set():
                return None
            self._give_up(error)
            return None
        self._keepalive.start()
        return link

    def _sleep_unless_closing(self, seconds: float) -> None:
        self._closing.wait(seconds)  # close() cuts the backoff short

    def _reconnect_once(self) -> Link:
        if self._closing.is_set():
            raise ClientClosedError()
        return self._open_session(self._options.connect_timeout)

    def _give_up(self, error: BaseException) -> None:
        if isinstance(error, AuthenticationError):
            fatal: RelayError = AuthenticationError(
                error.code,
                f"the server refused the credentials {AUTH_FAILURE_LIMIT} times while reconnecting: {error.message}",
            )
        elif isinstance(error, (RelayError, *LINK_ERRORS)):
            fatal = ConnectFailedError(f"could not reconnect: {_describe(error)}", code="reconnect_failed")
        else:
            fatal = ConnectFailedError(f"the connection failed: {_describe(error)}", code="reconnect_failed")
        log.error("giving up on the connection: %r", fatal)
        self._fatal = fatal
        self._keepalive.stop()
        with self._state_lock:
            self._closed = True
            self._connected = False
            link, self._link = self._link, None
            backlog = list(self._backlog)
            self._backlog.clear()
            self._backlog_failed += len(backlog)
        if link is not None:  # only after an unexpected error: a reconnect that failed has no link
            _shutdown(link.ws)
        for pending in backlog:
            pending.fail(fatal)
        self._pending.fail_all(fatal)
        self._on_fatal(fatal)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        self._observer.reconnecting(state.attempt_number + 1, delay, error)

    # -- incoming frames (I/O thread) --------------------------------------

    def _decode(self, raw: Any) -> JSONDict | None:
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                log.warning("dropping a frame that is not UTF-8 (%d bytes)", len(raw))
                return None
        try:
            frame = json.loads(raw)
        except (ValueError, TypeError, RecursionError):
            log.warning("dropping a frame that is not valid JSON (%d chars)", len(raw))
            return None
        if not isinstance(frame, dict):
            log.warning("dropping a frame that is not a JSON object (%s)", type(frame).__name__)
            return None
        if frame_log.isEnabledFor(logging.DEBUG):
            frame_log.debug("recv %s", masked(frame))
        return frame

    def _dispatch(self, frame: JSONDict, writer: FrameWriter[PendingRequest]) -> None:
        """Handle one frame read on the connection ``writer`` answers on."""
        method = frame.get("method")
        if method is None:
            self._pending.resolve(frame)
            return
        request_id = frame.get("id")
        params = frame.get("params")
        if not isinstance(params, dict):
            params = {}
        if method == "signalwire.event":
            if request_id is not None:
                self._reply(writer, encode_result(request_id))  # the event ACK
            self._handle_event(params)
        elif method == "signalwire.ping":
            if request_id is not None:
                self._reply(writer, encode_result(request_id))
        elif method == "signalwire.disconnect":
            self._handle_server_disconnect(request_id, params, writer)
        else:
            log.warning("ignoring an unknown server request %r", method if isinstance(method, str) else type(method))
            if request_id is not None:
                self._reply(writer, encode_error(request_id, -32601, "method not supported by this client"))

    def _handle_event(self, params: JSONDict) -> None:
        if params.get("event_type") == "signalwire.authorization.state":
            inner = params.get("params")
            state = inner.get("authorization_state") if isinstance(inner, dict) else None
            if isinstance(state, str):
                self.session.authorization_state = state
            return
        self._on_event(params)

    def _handle_server_disconnect(self, request_id: Any, params: JSONDict, writer: FrameWriter[PendingRequest]) -> None:
        restart = params.get("restart") is True
        log.info("the server asked to disconnect (restart=%s); reconnecting", restart)
        with self._state_lock:
            self._connected = False  # new requests wait in the backlog for the next session
        if restart:
            self.session.forget_resumption()
        if request_id is not None:
            self._reply(writer, encode_result(request_id))
            writer.flush_replies(wait=True)  # before the socket goes
        self.force_reconnect("server disconnect")

    def _reply(self, writer: FrameWriter[PendingRequest], text: str) -> None:
        """Answer a server request: written with the rest of the burst's answers."""
        self._log_frame("send", text)
        writer.reply(text)

    @staticmethod
    def _log_frame(direction: str, text: str) -> None:
        if frame_log.isEnabledFor(logging.DEBUG):
            try:
                frame_log.debug("%s %s", direction, masked(json.loads(text)))
            except ValueError:
                frame_log.debug("%s <unparsable frame>", direction)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text


def _shutdown(ws: websocket.WebSocket) -> None:
    """Wake a thread blocked in recv() on this socket and release it."""
    sock = ws.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the peer
    ws.shutdown()  # type: ignore[no-untyped-call]
