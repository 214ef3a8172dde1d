"""RelayClient: configuration, lifecycle and the public entry points.

The client owns three things: a :class:`~relay_sync.transport.Transport`
(created on each ``connect()``; it owns the socket, the I/O thread and the
timer thread), the handler pool that runs every piece of user code, and the
event routes that hand incoming events to the calling, messaging and task
services. Public methods run in the caller's thread and block on futures.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Callable

from ._version import __version__
from .calls import Call, CallingService
from .channels import ChannelHub
from .chat import ChatService
from .commands import Devices
from .config import ClientConfig, check_duration, context_list, max_connections, resolve_config
from .errors import AuthenticationError, ClientClosedError, NotConnectedError, RelayError
from .events import RelayEvent, TaskEvent
from .futures import HandoffFuture, copy_for_waiter, wait_timeout
from .jwt_renewal import Credentials, JWTRenewal
from .lifecycle import ConnectionState, Hook, Lifecycle
from .messaging import Message, MessagingService
from .ordered import OrderedRunner
from .pool import IDLE_TIMEOUT as HANDLER_IDLE_TIMEOUT
from .pool import HandlerPool, abandon_all_pools, run_user_code
from .pubsub import PubSubService
from .rpc import JSONDict, PendingRequest
from .session import Session
from .stats import LatencyHistogram
from .stop_signal import StopSignal
from .timers import Timer
from .transport import AUTH_FAILURE_LIMIT, TRANSIENT_OPEN_FAILURES, Transport, TransportOptions, retry_delay
from .video import VideoService

log = logging.getLogger(__name__)

AGENT = f"relay_sync/{__version__}"
PROTOCOL_VERSION = {"major": 2, "minor": 0, "revision": 0}

# Workers beyond max_active_calls, so listeners, on_completed callbacks and
# message/task handlers still run while every call handler is busy (a call
# handler may be waiting on exactly such a callback).
POOL_HEADROOM = 4
HANDLER_THREAD_PREFIX = "relay_sync-handler"

EventRoute = Callable[[JSONDict], None]


class _ConnectionSlots:
    """RELAY_MAX_CONNECTIONS: how many clients of this process may be connected at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_use = 0

    def acquire(self) -> None:
        limit = max_connections()
        with self._lock:
            if self._in_use >= limit:
                raise RelayError(
                    "too_many_connections",
                    f"{self._in_use} RelayClient(s) already connected in this process "
                    f"(RELAY_MAX_CONNECTIONS={limit}); disconnect() the other client first, "
                    "or set RELAY_MAX_CONNECTIONS to allow more",
                )
            self._in_use += 1

    def release(self) -> None:
        with self._lock:
            self._in_use = max(0, self._in_use - 1)


_connection_slots = _ConnectionSlots()

# Clients to reset in a forked child (gunicorn --preload, Celery prefork):
# the child has none of the parent's threads, and the parent's socket must
# never be written to from two processes.
_live_clients: weakref.WeakSet[RelayClient] = weakref.WeakSet()


def _reset_clients_after_fork() -> None:
    global _connection_slots
    _connection_slots = _ConnectionSlots()
    for client in list(_live_clients):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_clients_after_fork)


def _close_clients_at_exit() -> None:
    """The main thread has finished. Once the application's own threads have
    finished too, close every client: waits in handlers (``call.wait_for_ended()``,
    ``action.wait()``...) fail with ``ClientClosedError``, so the handlers unwind
    and the pool's exit hook, which runs next, can join them. Without this a
    handler blocked in such a wait kept the process alive for ever."""
    try:
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread is not current and not thread.daemon:  # the application's threads (ours are daemons)
                thread.join()
        clients = [client for client in list(_live_clients) if client.state is not ConnectionState.CLOSED]
        if clients:
            log.info("interpreter exit: closing %d RelayClient(s)", len(clients))
        for client in clients:
            client.disconnect()
    except KeyboardInterrupt:  # Ctrl-C while a handler holds the exit up: stop now, quietly
        log.warning("interrupted at exit: handlers still running are left behind")
        abandon_all_pools()


# Registered after the pool's own exit hook, so it runs before it (they run last first).
threading._register_atexit(_close_clients_at_exit)  # type: ignore[attr-defined]


class RelayClient:
    """A blocking RELAY client: one WebSocket session, served by background threads.

    Credentials and host fall back to ``SIGNALWIRE_PROJECT_ID``,
    ``SIGNALWIRE_API_TOKEN``, ``SIGNALWIRE_JWT_TOKEN`` and ``SIGNALWIRE_SPACE``.
    Constructing a client opens nothing; ``connect()`` (or ``run()``, or a
    ``with`` block) does.

    :param project: the project id (``SIGNALWIRE_PROJECT_ID``); with ``token``.
    :param token: the project's API token (``SIGNALWIRE_API_TOKEN``).
    :param jwt_token: a JWT to log in with instead of ``project`` and ``token``
        (``SIGNALWIRE_JWT_TOKEN``); see ``jwt_refresher``.
    :param host: the space's host name, with an optional ``:port`` and never a URL
        (``SIGNALWIRE_SPACE``, default ``relay.signalwire.com``).
    :param contexts: contexts whose inbound calls, messages and tasks this client receives.
    :param max_active_calls: inbound calls handled at once (``RELAY_MAX_ACTIVE_CALLS``,
        default 1000); further calls are handed back to RELAY with ``calling.pass``.
    :param scheme: ``None`` (the default) picks ``"ws"`` for a loopback host (a local
        emulator) and ``"wss"`` for any other; an explicit ``"ws"`` is refused for a
        host that is not loopback.
    :param request_timeout: seconds a request waits for its response; also how long a
        write may wait for the server to take it before the link counts as lost.
    :param ping_interval: seconds of silence from the server before the client pings;
        three unanswered pings in a row force a reconnect. A request left unanswered
        for its whole timeout makes the link suspect: a ping goes out at once, and if
        nothing at all comes from the server within ``request_timeout`` the client reconnects.
    :param reconnect_backoff: ``(min, max)`` seconds of the reconnect backoff; the
        first retry waits a random time under ``min / 2``, later ones grow exponentially
        from ``min`` with up to ``min`` of jitter, never beyond ``max``.
    :param connect_timeout: seconds for the whole of opening the socket (TCP, proxy,
        TLS, WebSocket upgrade) and logging in (default: ``request_timeout``).
    :param proxy: ``http://[user:password@]host:port`` of an HTTP proxy for the socket
        and REST calls; without it, ``https_proxy``/``no_proxy`` from the environment apply.
    :param ca_file: a PEM bundle of CAs to trust besides the system's (``SIGNALWIRE_RELAY_CA_FILE``);
        verification is always on.
    :param jwt_refresher: for a client logged in with ``jwt_token``: a callable returning a
        fresh JWT, used to re-authenticate before the current one expires.
    :param handler_idle_timeout: seconds a handler thread waits for work before it
        retires (default 5). A service that takes calls steadily keeps its threads
        warm, which saves starting them again for the next burst; a script does not
        keep hundreds of idle threads after a storm. Raise it for steady bursts less
        than this far apart, lower it to give threads back sooner.

    Every duration must be a finite number of seconds above 0 and at most a day
    (``ValueError`` naming it otherwise), and ``host`` a name DNS can carry.
    """

    def __init__(
        self,
        project: str | None = None,
        token: str | None = None,
        jwt_token: str | None = None,
        host: str | None = None,
        contexts: Iterable[str] | None = None,
        max_active_calls: int | None = None,
        *,
        scheme: str | None = None,
        request_timeout: float = 10.0,
        ping_interval: float = 30.0,
        reconnect_backoff: tuple[float, float] = (1.0, 30.0),
        connect_timeout: float | None = None,
        jwt_refresher: Callable[[], str] | None = None,
        proxy: str | None = None,
        ca_file: str | None = None,
        handler_idle_timeout: float = HANDLER_IDLE_TIMEOUT,
    ) -> None:
        handler_idle_timeout = check_duration("handler_idle_timeout", handler_idle_timeout)
        self._handler_idle_timeout = handler_idle_timeout
        self._config: ClientConfig = resolve_config(
            project=project,
            token=token,
            jwt_token=jwt_token,
            host=host,
            contexts=contexts,
            max_active_calls=max_active_calls,
            scheme=scheme,
            request_timeout=request_timeout,
            ping_interval=ping_interval,
            reconnect_backoff=reconnect_backoff,
            connect_timeout=connect_timeout,
            proxy=proxy,
            ca_file=ca_file,
        )
        self._contexts: list[str] = list(self._config.contexts)
        self._lifecycle_lock = threading.Lock()
        self._transport: Transport | None = None
        self._holds_slot = False
        self._closed = False
        self._disconnected = threading.Event()  # set once the first disconnect() has finished
        self._reconnect_after_fork = False
        self._fatal: RelayError | None = None
        self._closer: threading.Thread | None = None  # closes the client after a fatal error
        self._stop_signal = StopSignal()
        self._handler_pool = self._new_handler_pool()
        self._lifecycle = Lifecycle(self._handler_pool)
        self._event_routes: dict[str, EventRoute] = {}
        self._close_hooks: list[Callable[[RelayError], None]] = []
        self._session_hooks: list[Callable[[bool], None]] = []

        # What every service may ask of this client: they get this, never the client.
        session = Session(
            request=self._request,
            request_on_session=lambda method, params: self._live_transport().request_on_session(method, params),
            submit=self._submit,
            call_later=self._call_later,
            run_user=self._run_user,
            on_session_start=self._on_session_start,
            on_close=self._on_close,
            handler_pool=lambda: self._handler_pool,
            ordered_runner=lambda owner: OrderedRunner(self._handler_pool, owner),
            relay_protocol=lambda: self.relay_protocol,
            authorization=lambda: self.authorization,
            connected=lambda: self.connected,
        )
        rest_options = self._config.rest_options()
        self._calling = CallingService(session, max_active_calls=self._config.max_active_calls)
        self._add_route("calling", self._calling.on_event)
        self._on_close(self._calling.close)
        self._messaging = MessagingService(session, rest_options)
        self._add_route("messaging", self._messaging.on_event)
        self._add_route("queuing", self._messaging.on_event)
        self._on_close(self._messaging.close)
        self._jwt_renewal = JWTRenewal(
            session,
            Credentials(
                project=self._config.project,
                token=self._config.token,
                jwt_token=self._config.jwt_token,
                refresher=jwt_refresher,
            ),
            rest_options,
        )
        self._channels = ChannelHub(session)
        self._add_route("chat", self._channels.on_event)
        self._on_session_start(self._channels.session_started)
        self._on_close(self._channels.close)
        self._chat = ChatService(self._channels, session)
        self._pubsub = PubSubService(self._channels, session)
        self._video = VideoService(session, request_timeout=self._config.request_timeout)
        self._add_route("video", self._video.on_event)
        self._on_session_start(self._video.session_started)
        self._on_close(self._video.close)
        _live_clients.add(self)

    # -- properties ----------------------------------------------------------

    @property
    def project(self) -> str | None:
        return self._config.project

    @property
    def host(self) -> str:
        return self._config.host

    @property
    def contexts(self) -> list[str]:
        return list(self._contexts)

    @property
    def max_active_calls(self) -> int:
        return self._config.max_active_calls

    @property
    def relay_protocol(self) -> str | None:
        """The protocol string the server assigned to this session (``None`` before connecting)."""
        transport = self._transport
        return transport.session.protocol if transport is not None else None

    @property
    def identity(self) -> str | None:
        transport = self._transport
        return transport.session.identity if transport is not None else None

    @property
    def authorization(self) -> JSONDict | None:
        """The ``authorization`` block of the connect result (for a JWT: ``expires_at``)."""
        transport = self._transport
        return transport.session.authorization if transport is not None else None

    @property
    def connected(self) -> bool:
        """True while authenticated on a live socket."""
        transport = self._transport
        return transport is not None and transport.connected and not self._closed

    @property
    def chat(self) -> ChatService:
        """Chat channels: ``listen``, ``publish``, history, members and member state."""
        return self._chat

    @property
    def pubsub(self) -> PubSubService:
        """PubSub channels: ``listen`` and ``publish``."""
        return self._pubsub

    @property
    def state(self) -> ConnectionState:
        """``disconnected``, ``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
        transport = self._transport
        if self._closed:
            return ConnectionState.CLOSED
        if transport is None:
            return ConnectionState.DISCONNECTED
        return transport.state

    def healthy(self) -> bool:
        """True while connected and the server was heard from within
        ``ping_interval + request_timeout`` seconds: an answer for readiness probes."""
        transport = self._transport
        if transport is None or self.state is not ConnectionState.CONNECTED:
            return False
        quiet = time.monotonic() - transport.last_heard
        return quiet <= self._config.ping_interval + self._config.request_timeout

    def stats(self) -> dict[str, Any]:
        """A snapshot for diagnostics and metrics; cheap, and safe from any thread.

        ``state``; ``connects`` (successful logins) and ``reconnects`` (those after
        a lost link); ``requests_sent`` (requests accepted for sending, including
        keepalive pings and those queued while reconnecting), ``requests_failed``
        (error answers, and requests failed by a lost link or by closing),
        ``requests_timed_out`` (given up on without an answer); ``in_flight`` (on
        the wire, awaiting their answer; ``in_flight_methods`` counts them by method,
        keepalive pings as ``signalwire.ping``) and ``backlog`` (queued until the link is
        back); ``active_calls`` (calls this client holds; ``inbound_calls`` of them
        offered to this client rather than dialed) and ``calls_passed``
        (inbound calls handed back to routing because ``max_active_calls`` were
        busy or no handler thread was free); ``dials_pending`` (dials not yet answered, failed or
        timed out) and ``messages_pending`` (sent messages not yet in a final state) and ``early_message_ids`` (message
        ids whose state events arrived before their send was answered, held so the
        send can replay them; bounded in count and age);
        ``handlers_busy`` and ``handler_threads`` of the handler pool;
        ``last_rtt_ms`` (the latest answer's round trip, ``None`` before one);
        ``request_latency``: every answer's round trip as histogram buckets
        (``{"buckets": [(upper_bound_seconds, cumulative_count), ...], "count", "sum"}``,
        where ``count`` is the +Inf bucket);
        ``jwt_renewal_in``: seconds until a JWT session is renewed (or, with no way
        to refresh, warned about), ``None`` when no renewal is scheduled.
        The request counts are read together, so they agree with each other.
        """
        transport = self._transport
        requests = transport.stats() if transport is not None else _no_requests()
        last_rtt = requests["last_rtt"]
        pool = self._handler_pool
        return {
            "state": self.state,
            **self._lifecycle.counters(),
            "requests_sent": requests["requests_sent"],
            "requests_failed": requests["requests_failed"],
            "requests_timed_out": requests["requests_timed_out"],
            "in_flight": requests["in_flight"],
            "in_flight_methods": requests["in_flight_methods"],
            "backlog": requests["backlog"],
            "active_calls": self._calling.call_count,
            "inbound_calls": self._calling.inbound_count,
            "calls_passed": self._calling.passed_count,
            "dials_pending": self._calling.dial_count,
            "messages_pending": self._messaging.in_flight,
            "early_message_ids": self._messaging.early_ids,
            "handlers_busy": pool.busy_count,
            "handler_threads": pool.worker_count,
            "last_rtt_ms": round(last_rtt * 1000, 3) if last_rtt is not None else None,
            "request_latency": requests["request_latency"],
            "jwt_renewal_in": self._jwt_renewal.seconds_until_renewal(),
        }

    @property
    def video(self) -> VideoService:
        """Video rooms: ``listen`` for rooms starting and ending, ``get_room_sessions``, ``get_room_session``."""
        return self._video

    def __repr__(self) -> str:
        return f"<RelayClient host={self.host!r} contexts={self._contexts!r} {self.state}>"

    # -- lifecycle -----------------------------------------------------------

    def connect(self, timeout: float | None = None) -> None:
        """Open the socket and log in; returns once ``signalwire.connect`` succeeded.

        Raises ``AuthenticationError`` (a ``RelayError``) when the credentials
        are refused and ``RelayError`` when the server cannot be reached.
        Calling it again while connected does nothing; on a closed client it
        raises ``ClientClosedError``, or the error the client gave up with.
        Nothing is retried: ``run()`` is the one that keeps trying.
        """
        if timeout is not None:
            timeout = check_duration("timeout", timeout)
        with self._lifecycle_lock:
            if self._closed:
                if self._fatal is not None:  # it gave up: say why, not just that it is closed
                    raise copy_for_waiter(self._fatal)
                raise ClientClosedError("this client was disconnected; disconnect() is final, create a new RelayClient")
            if self._transport is not None:
                return
            self._reconnect_after_fork = False
            _connection_slots.acquire()
            transport: Transport | None = None
            try:
                transport = self._new_transport()
                # Known before the session starts: session-start hooks (JWT renewal)
                # use the client's timers and authorization from inside open().
                self._transport = transport
                transport.open(timeout)
            except BaseException:  # refused, unreachable or misconfigured: leave nothing behind
                self._transport = None
                if transport is not None:
                    transport.close()
                _connection_slots.release()
                raise
            self._holds_slot = True

    def _new_transport(self) -> Transport:
        return Transport(
            TransportOptions(
                url=self._config.url,
                request_timeout=self._config.request_timeout,
                connect_timeout=self._config.connect_timeout,
                ping_interval=self._config.ping_interval,
                reconnect_backoff=self._config.reconnect_backoff,
                ca_file=self._config.ca_file,
                proxy=self._config.proxy,
            ),
            connect_params=self._connect_params,
            on_event=self._route_event,
            on_session=self._session_started,
            on_fatal=self._on_fatal,
            observer=self._lifecycle,
            on_offers=self._expect_offers,
        )

    def disconnect(self) -> None:
        """Close for good. Every waiting call fails with ``RelayError``; every
        thread the client started has exited when this returns (unless called
        from a handler, whose own thread is still running it). Idempotent: a
        second call, from any thread but a handler, returns once the first is done."""
        self._disconnect(from_run=False)

    def _disconnect(self, *, from_run: bool) -> None:
        # Asked of this client's own pool: a handler of another client is not one of ours.
        in_handler = self._handler_pool.owns_current_thread()
        if not self._lifecycle_lock.acquire(blocking=False):
            # connect() holds the lock while it logs in, for up to connect_timeout:
            # close the transport it is opening so that a login the server sits on
            # gives up now instead of holding disconnect() (and run()) up.
            opening = self._transport
            if opening is not None:
                opening.close()
            self._lifecycle_lock.acquire()
        try:
            closed_already = self._closed
            self._closed = True
            transport, holds_slot = self._transport, self._holds_slot
            self._holds_slot = False
        finally:
            self._lifecycle_lock.release()
        if closed_already:
            # Another disconnect() ran or is still running (or the client gave up and
            # closes itself). Returning before it is done would break the promise above,
            # so wait for it, and for the handlers: the first call may have come from a
            # handler, which cannot wait for itself.
            if not in_handler:  # a handler must not wait: the first call may be waiting for it
                self._disconnected.wait()
                closer = self._closer
                if closer is not None and closer is not threading.current_thread():
                    closer.join()  # it set _disconnected on its way out
                self._handler_pool.shutdown(wait=True)
            return
        self._finish_close(transport, holds_slot, in_handler, from_run)
        log.info("RelayClient disconnected")

    def _finish_close(self, transport: Transport | None, holds_slot: bool, in_handler: bool, from_run: bool) -> None:
        try:
            self._close(transport, in_handler, from_run)
        finally:
            if holds_slot:
                _connection_slots.release()
            self._disconnected.set()

    def _close(self, transport: Transport | None, in_handler: bool, from_run: bool) -> None:
        self._stop_signal.request()
        if transport is not None:
            transport.close()
        error = self._fatal or ClientClosedError()
        for hook in self._close_hooks:
            hook(error)
        # Queued work still runs (on_completed callbacks and listeners learning that
        # their action failed with the close must not be lost), then the workers stop.
        if from_run and not in_handler:
            self._wait_for_handlers_after_signal()
        else:
            self._handler_pool.shutdown(wait=not in_handler)

    def _wait_for_handlers_after_signal(self) -> None:
        """``run()`` is ending: wait for the handlers still running, but after Ctrl-C
        say so, and let a second Ctrl-C (or SIGTERM) stop the wait: the handlers
        still running are then left behind (their threads do not hold the process open)."""
        pool = self._handler_pool
        pool.shutdown(wait=False)
        busy = pool.busy_count
        signals = self._stop_signal.signal_count  # before the prompt: a Ctrl-C right after it counts
        if busy and signals:
            log.warning("waiting for %d handler(s); press Ctrl-C again to stop now", busy)
            if not self._stop_signal.wait_until(lambda: pool.worker_count == 0, signals):
                log.warning("stopping now: %d handler(s) still running are left behind", pool.busy_count)
                pool.abandon()
                return
        pool.shutdown(wait=True)

    def _new_handler_pool(self) -> HandlerPool:
        return HandlerPool(
            max_workers=self._config.max_active_calls + POOL_HEADROOM,
            thread_name_prefix=HANDLER_THREAD_PREFIX,
            idle_timeout=self._handler_idle_timeout,
            on_worker_exit=self._handler_thread_exited,
        )

    def _expect_offers(self, count: int) -> None:
        """I/O thread: a read brought ``count`` inbound calls; start their handler threads now."""
        self._handler_pool.expect(min(count, self._config.max_active_calls))

    def _handler_thread_exited(self) -> None:
        """Runs on each handler thread as it exits: wakes a ``run()`` waiting for the handlers."""
        self._stop_signal.wake()

    close = disconnect

    def __enter__(self) -> RelayClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.disconnect()

    def run(self) -> None:
        """Connect and serve until ``stop()``, Ctrl-C or SIGTERM.

        Unlike ``connect()``, it keeps trying while the first connection fails
        for a reason that may pass (the server is not up yet, the network is
        not ready, the login was cut off), with the reconnect backoff and one
        WARNING per failure, so a service started before its network comes up.
        Reconnects on its own. Raises ``RelayError`` for what retrying cannot
        fix (a refused certificate, a redirect, too many connections), after
        three credential refusals in a row, and when the connection cannot be
        kept. Always disconnects before returning or raising. On the main
        thread, Ctrl-C and SIGTERM end it cleanly: handlers still running are
        waited for (a warning says how many), and a second Ctrl-C stops that
        wait, leaving them behind.
        """
        with self._stop_signal.listening():
            try:
                if self._connect_until_up():
                    self._stop_signal.wait()
            finally:
                if self._stop_signal.signal_received is not None:
                    log.info("signal %d: shutting down", self._stop_signal.signal_received)
                # Still listening: a second signal while the handlers finish ends the wait
                # instead of raising KeyboardInterrupt inside a thread join.
                self._disconnect(from_run=True)
        if self._fatal is not None:
            raise copy_for_waiter(self._fatal)

    def _connect_until_up(self) -> bool:
        """``run()``'s first connection: retry transient failures until connected
        (True) or asked to stop (False); raise anything else."""
        low, high = self._config.reconnect_backoff
        attempt = refusals = 0
        while True:
            attempt += 1
            try:
                self.connect()
                return True
            except RelayError as error:
                if self._closed:  # disconnect() meanwhile, or the client gave up
                    raise
                delay = retry_delay(attempt, low, high)  # failed attempt n: retry n comes next
                if isinstance(error, AuthenticationError):
                    refusals += 1
                    if refusals >= AUTH_FAILURE_LIMIT:
                        raise
                    # The refusal itself was logged (WARNING) where it was noticed.
                    log.info("login refused (attempt %d); retrying in %.1f s", attempt, delay)
                elif error.code in TRANSIENT_OPEN_FAILURES and not self._closed:
                    refusals = 0  # "in a row": a refusal, then the server went away, starts over
                    log.warning("could not connect (attempt %d): %s; retrying in %.1f s", attempt, error, delay)
                else:
                    raise
            if self._stop_signal.wait(delay):
                return False

    def stop(self) -> None:
        """Make ``run()`` return. Safe from any thread, including a handler."""
        self._stop_signal.request()

    # -- requests --------------------------------------------------------------

    def execute(self, method: str, params: JSONDict | None = None, *, timeout: float | None = None) -> JSONDict:
        """Send a raw JSON-RPC request and return its ``result`` (``RelayError`` on failure).

        ``timeout`` (default ``request_timeout``) is checked before anything is sent.
        """
        return self._live_transport().request(method, dict(params or {}), wait_timeout(timeout))

    def execute_future(
        self, method: str, params: JSONDict | None = None, *, timeout: float | None = None
    ) -> Future[JSONDict]:
        """Like ``execute()`` without blocking: a ``concurrent.futures.Future`` of the
        ``result`` (its done-callbacks run on the handler pool).

        The request is sent, or queued while reconnecting, before this returns, so
        requests made one after another go out in that order. A request that cannot
        be taken at all raises here, as ``execute()`` would (``NotConnectedError``,
        ``BacklogFullError``, ``ClientClosedError``); every later outcome (an error
        answer, a lost link, no answer within ``timeout``) is the future's exception.
        The future cannot be cancelled: a sent request cannot be taken back.
        """
        outcome: Future[JSONDict] = HandoffFuture(self._handler_pool)
        outcome.set_running_or_notify_cancel()
        self._live_transport().request_into(outcome, method, dict(params or {}), wait_timeout(timeout))
        return outcome

    def receive(self, contexts: Iterable[str]) -> None:
        """Start receiving inbound calls, messages and tasks on more contexts."""
        added = _nonempty_contexts(contexts)
        self.execute("signalwire.receive", {"contexts": added})
        self._contexts.extend(c for c in added if c not in self._contexts)

    def unreceive(self, contexts: Iterable[str]) -> None:
        """Stop receiving on these contexts."""
        removed = _nonempty_contexts(contexts)
        self.execute("signalwire.unreceive", {"contexts": removed})
        self._contexts[:] = [c for c in self._contexts if c not in removed]

    # -- lifecycle hooks ---------------------------------------------------------
    #
    # Each runs on the handler pool; all of them one at a time, in the order the
    # link events happened. What a hook raises is logged.

    def on_connected(self, hook: Hook) -> Hook:
        """Decorator: ``hook(resumed)`` after every successful login. ``resumed`` is
        False on the first login and after a reconnect that got a new session from
        the server: events sent while the link was down are lost, and calls and
        messages in progress were failed with ``SessionLostError``."""
        return self._lifecycle.add("connected", hook)

    def on_disconnected(self, hook: Hook) -> Hook:
        """Decorator: ``hook(error)`` when the link is lost (``ConnectionLostError``;
        a reconnect follows), and once more with the final error if the client gives
        up reconnecting (it is then closed). Not called for ``disconnect()``."""
        return self._lifecycle.add("disconnected", hook)

    def on_reconnecting(self, hook: Hook) -> Hook:
        """Decorator: ``hook(attempt, delay)`` before each reconnect attempt
        (``attempt`` counts from 1 per outage; ``delay`` is the seconds it waits first)."""
        return self._lifecycle.add("reconnecting", hook)

    def on_auth_error(self, hook: Hook) -> Hook:
        """Decorator: ``hook(error)`` (an ``AuthenticationError``) each time the server
        refuses the credentials, on ``connect()`` or on a reconnect."""
        return self._lifecycle.add("auth_error", hook)

    # -- calls, messages, tasks ------------------------------------------------

    def on_call(self, handler: Callable[[Call], Any]) -> Callable[[Call], Any]:
        """Decorator: ``handler(call)`` runs on the handler pool for each inbound call.

        At most ``max_active_calls`` inbound calls are handled at once (a call
        counts until it has ended and its handler has returned); further calls,
        and calls that arrive while every handler thread is busy, are handed back
        to RELAY routing with ``calling.pass`` (and a warning is logged). When the
        handler raises, the exception is logged with the call id and, if the call
        is still up, the call is hung up.
        """
        return self._calling.on_call(handler)

    def dial(
        self,
        devices: Devices,
        *,
        tag: str | None = None,
        max_duration: int | None = None,
        dial_timeout: float | None = None,
        region: str | None = None,
        node_id: str | None = None,
    ) -> Call:
        """Place an outbound call and block until it is answered; returns the ``Call``.

        ``devices`` is a list of lists of devices: the outer list is tried in
        series, each inner list rung in parallel. ``tag`` defaults to a new
        UUID; ``max_duration`` is in minutes. Raises ``RelayError`` when the
        dial fails, ``DialFailedError`` when no device answered, and
        ``RelayTimeoutError`` (also a ``TimeoutError``) when nobody answered
        within ``dial_timeout`` seconds (default 120). ``region`` and
        ``node_id`` say where the call starts (as in Node's SDK).
        ``relay_sync.devices`` builds the devices; a single device is accepted.
        """
        return self._calling.dial(
            devices, tag=tag, max_duration=max_duration, dial_timeout=dial_timeout, region=region, node_id=node_id
        )

    def dial_future(
        self,
        devices: Devices,
        *,
        tag: str | None = None,
        max_duration: int | None = None,
        dial_timeout: float | None = None,
        region: str | None = None,
        node_id: str | None = None,
    ) -> Future[Call]:
        """Like ``dial()`` without blocking: a ``concurrent.futures.Future`` of the ``Call``
        (its done-callbacks run on the handler pool)."""
        return self._calling.dial_future(
            devices, tag=tag, max_duration=max_duration, dial_timeout=dial_timeout, region=region, node_id=node_id
        )

    def on_message(self, handler: Callable[[Message], Any]) -> Callable[[Message], Any]:
        """Decorator: ``handler(message)`` runs on the handler pool for each inbound SMS/MMS
        (a ``Message`` in state ``received``). Several handlers may be registered."""
        return self._messaging.on_message(handler)

    def on_task(self, handler: Callable[[TaskEvent], Any]) -> Callable[[TaskEvent], Any]:
        """Decorator: ``handler(task)`` runs on the handler pool for each task delivered to
        our contexts. ``task`` is a ``TaskEvent``: ``task.message`` is the dict the sender
        passed, plus ``task.context`` and ``task.timestamp``."""
        return self._messaging.on_task(handler)

    def send_message(
        self,
        *,
        to_number: str,
        from_number: str,
        body: str | None = None,
        media: Sequence[str] | None = None,
        context: str | None = None,
        tags: Sequence[str] | None = None,
        region: str | None = None,
        on_completed: Callable[[RelayEvent], Any] | None = None,
    ) -> Message:
        """Send an SMS/MMS; blocks until the server accepted it (not until delivery).

        Returns the ``Message`` in state ``queued``; ``message.wait()`` blocks
        until it is ``delivered``, ``undelivered`` or ``failed``, and
        ``on_completed(event)`` runs on the handler pool at that point with the
        terminal ``MessageStateEvent`` (as in the async SDK).
        ``context`` defaults to this session's relay protocol. Raises
        ``ValueError`` without ``body`` and ``media``, ``RelayError`` when the
        server refuses the message.
        """
        return self._messaging.send_message(
            to_number=to_number,
            from_number=from_number,
            body=body,
            media=media,
            context=context,
            tags=tags,
            region=region,
            on_completed=on_completed,
        )

    def deliver_task(self, context: str, message: dict[str, Any]) -> None:
        """Hand ``message`` (a JSON object) to the clients listening on ``context``, over REST.

        Uses this client's project, token and host (``relay_sync.rest.deliver_task``);
        needs no socket, so a web view can call it. Raises ``RestError`` when the
        server refuses the task.
        """
        self._messaging.deliver_task(context, message)

    # -- the internal interface the calling/messaging/task services use ------

    def _live_transport(self) -> Transport:
        transport = self._transport
        if self._closed:
            raise copy_for_waiter(self._fatal) if self._fatal is not None else ClientClosedError()
        if transport is None and self._reconnect_after_fork:
            log.info("first use in a forked process: connecting afresh")
            self.connect()
            transport = self._transport
        if transport is None:
            raise NotConnectedError()
        return transport

    def _request(self, method: str, params: JSONDict, timeout: float | None = None) -> JSONDict:
        return self._live_transport().request(method, params, timeout)

    def _submit(self, method: str, params: JSONDict) -> PendingRequest:
        return self._live_transport().submit(method, params)

    def _call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self._live_transport().timers.call_later(delay, callback)

    def _run_user(self, fn: Callable[..., Any], *args: Any, what: str = "handler") -> None:
        """Run user code on the handler pool; an exception is logged, never propagated."""
        try:
            self._handler_pool.run(_run_user_code, fn, args, what)
        except RuntimeError:  # the pool is shut down: the client is closing
            log.debug("%s not run: the client is closed", what)

    def _add_route(self, family: str, route: EventRoute) -> None:
        """Send events whose type starts with ``family.`` to ``route`` (runs on the I/O thread)."""
        self._event_routes[family] = route

    def _on_close(self, hook: Callable[[RelayError], None]) -> None:
        """Run ``hook(error)`` when the client closes, to fail what still waits."""
        self._close_hooks.append(hook)

    def _connect_params(self) -> JSONDict:
        params: JSONDict = {
            "version": dict(PROTOCOL_VERSION),
            "agent": AGENT,
            "event_acks": True,
            "authentication": self._jwt_renewal.credentials.authentication(),
        }
        if self._contexts:
            params["contexts"] = list(self._contexts)
        return params

    def _on_session_start(self, hook: Callable[[bool], None]) -> None:
        """Run ``hook(resumed)`` each time a session is authenticated (I/O or connecting thread)."""
        self._session_hooks.append(hook)

    def _session_started(self, resumed: bool) -> None:
        for hook in self._session_hooks:
            try:
                hook(resumed)
            except Exception:  # a bug in one service must not fail the login or kill the I/O thread
                log.exception("a session-start hook failed")

    def _route_event(self, envelope: JSONDict) -> None:
        event_type = envelope.get("event_type")
        if not isinstance(event_type, str):
            log.warning("dropping an event without a string event_type")
            return
        route = self._event_routes.get(event_type.partition(".")[0])
        if route is None:
            log.debug("dropping an event nobody handles: %s", event_type)
            return
        route(envelope)

    def _after_fork_in_child(self) -> None:
        """Runs in a forked child (only the forking thread exists there).

        The parent's socket, threads and locks are not usable here: forget the
        transport without touching it (no close frame may reach the parent's
        session), build fresh locks, pool and tables, and connect again on
        first use. Handlers registered with on_call/on_message/on_task stay.
        """
        self._reconnect_after_fork = self._transport is not None and not self._closed
        self._lifecycle_lock = threading.Lock()
        self._transport = None
        self._holds_slot = False
        self._stop_signal.after_fork_in_child()  # forked while run() listened: the child's signals are its own
        self._stop_signal = StopSignal()
        self._disconnected = threading.Event()  # a disconnect() running in the parent never ends here
        self._closer = None
        if self._closed:
            self._disconnected.set()
        self._handler_pool = self._new_handler_pool()
        self._lifecycle.after_fork(self._handler_pool)
        self._calling.after_fork()
        self._messaging.after_fork()
        self._jwt_renewal.after_fork()
        self._channels.after_fork()
        self._video.after_fork()

    def _on_fatal(self, error: RelayError) -> None:
        """The transport gave up (I/O thread): the client closes itself for good, as
        ``disconnect()`` would, and every later use raises ``error``.

        The I/O thread only marks the client closed; a short-lived thread does the
        closing, which joins the I/O thread and must never wait for user code here.
        (Nobody holds ``_lifecycle_lock`` while waiting for this I/O thread.)
        """
        self._fatal = error
        self._lifecycle.gave_up(error)
        with self._lifecycle_lock:
            closed_already = self._closed
            self._closed = True
            transport, holds_slot = self._transport, self._holds_slot
            self._holds_slot = False
        self._stop_signal.request()
        if closed_already:  # disconnect() got here first and is closing
            return
        self._closer = threading.Thread(
            target=self._finish_close,
            # in_handler=True: release everything, but leave waiting for the handlers
            # to disconnect() or run(), which may.
            args=(transport, holds_slot, True, False),
            name="relay_sync-closer",
            daemon=True,
        )
        self._closer.start()


def _no_requests() -> dict[str, Any]:
    """The request part of stats() before the first connect(): nothing sent yet."""
    return {
        "requests_sent": 0,
        "requests_failed": 0,
        "requests_timed_out": 0,
        "in_flight": 0,
        "in_flight_methods": {},
        "backlog": 0,
        "last_rtt": None,
        "request_latency": LatencyHistogram().snapshot(),
    }


def _run_user_code(fn: Callable[..., Any], args: tuple[Any, ...], what: str) -> None:
    run_user_code(fn, *args, what=what)


def _nonempty_contexts(contexts: Iterable[str]) -> list[str]:
    result = context_list(contexts)
    if not result:
        raise ValueError("contexts must name at least one context, e.g. ['office']")
    return result
