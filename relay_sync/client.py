"""RelayClient: configuration, lifecycle and the public entry points.

The client owns three things: a :class:`~relay_sync.transport.Transport`
(created on each ``connect()``; it owns the socket, the I/O thread and the
timer thread), the handler pool that runs every piece of user code, and the
event routes that hand incoming events to the calling, messaging and task
services. Public methods run in the caller's thread and block on futures.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from types import FrameType, TracebackType
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Type

from ._version import __version__
from .calls import CallingService
from .config import ClientConfig, max_connections, resolve_config
from .errors import ClientClosedError, RelayError
from .messaging import MessagingService
from .rpc import JSONDict, PendingRequest
from .timers import TimerThread
from .transport import Transport, TransportOptions

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
                    f"{self._in_use} RelayClient(s) already connected in this process; "
                    "set RELAY_MAX_CONNECTIONS to allow more",
                )
            self._in_use += 1

    def release(self) -> None:
        with self._lock:
            self._in_use = max(0, self._in_use - 1)


_connection_slots = _ConnectionSlots()


class RelayClient:
    """A blocking RELAY client: one WebSocket session, served by background threads.

    Credentials and host fall back to ``SIGNALWIRE_PROJECT_ID``,
    ``SIGNALWIRE_API_TOKEN``, ``SIGNALWIRE_JWT_TOKEN`` and ``SIGNALWIRE_SPACE``.
    Constructing a client opens nothing; ``connect()`` (or ``run()``, or a
    ``with`` block) does.

    :param contexts: contexts whose inbound calls, messages and tasks this client receives.
    :param max_active_calls: inbound calls handled at once (``RELAY_MAX_ACTIVE_CALLS``,
        default 1000); further calls are handed back to RELAY with ``calling.pass``.
    :param scheme: ``"wss"``; ``"ws"`` only for a loopback host (a local emulator).
    :param request_timeout: seconds a request waits for its response.
    :param ping_interval: seconds of silence from the server before the client pings;
        three unanswered pings in a row force a reconnect.
    :param reconnect_backoff: ``(min, max)`` seconds of the reconnect backoff; the
        first retry waits a random time under ``min``.
    :param connect_timeout: seconds to open the socket and log in (default: ``request_timeout``).
    :param jwt_refresher: for a client logged in with ``jwt_token``: a callable returning a
        fresh JWT, used to re-authenticate before the current one expires.
    """

    def __init__(
        self,
        project: Optional[str] = None,
        token: Optional[str] = None,
        jwt_token: Optional[str] = None,
        host: Optional[str] = None,
        contexts: Optional[Iterable[str]] = None,
        max_active_calls: Optional[int] = None,
        *,
        scheme: str = "wss",
        request_timeout: float = 10.0,
        ping_interval: float = 30.0,
        reconnect_backoff: Tuple[float, float] = (1.0, 30.0),
        connect_timeout: Optional[float] = None,
        jwt_refresher: Optional[Callable[[], str]] = None,
    ) -> None:
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
        )
        self._jwt_token = self._config.jwt_token
        self._contexts: List[str] = list(self._config.contexts)
        self._lifecycle_lock = threading.Lock()
        self._transport: Optional[Transport] = None
        self._holds_slot = False
        self._closed = False
        self._fatal: Optional[RelayError] = None
        self._stop_requested = threading.Event()
        self._handler_pool = ThreadPoolExecutor(
            max_workers=self._config.max_active_calls + POOL_HEADROOM,
            thread_name_prefix=HANDLER_THREAD_PREFIX,
        )
        self._event_routes: Dict[str, EventRoute] = {}
        self._close_hooks: List[Callable[[RelayError], None]] = []
        self._session_hooks: List[Callable[[bool], None]] = []
        self._jwt_refresher = jwt_refresher

        self._calling = CallingService(self)
        self._add_route("calling", self._calling.on_event)
        self._on_close(self._calling.close)
        self._messaging = MessagingService(self)
        self._add_route("messaging", self._messaging.on_event)
        self._add_route("queuing", self._messaging.on_event)
        self._on_close(self._messaging.close)

    # -- properties ----------------------------------------------------------

    @property
    def project(self) -> Optional[str]:
        return self._config.project

    @property
    def host(self) -> str:
        return self._config.host

    @property
    def contexts(self) -> List[str]:
        return list(self._contexts)

    @property
    def max_active_calls(self) -> int:
        return self._config.max_active_calls

    @property
    def relay_protocol(self) -> Optional[str]:
        """The protocol string the server assigned to this session (``None`` before connecting)."""
        transport = self._transport
        return transport.session.protocol if transport is not None else None

    @property
    def identity(self) -> Optional[str]:
        transport = self._transport
        return transport.session.identity if transport is not None else None

    @property
    def authorization(self) -> Optional[JSONDict]:
        """The ``authorization`` block of the connect result (for a JWT: ``expires_at``)."""
        transport = self._transport
        return transport.session.authorization if transport is not None else None

    @property
    def connected(self) -> bool:
        """True while authenticated on a live socket."""
        transport = self._transport
        return transport is not None and transport.connected and not self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "not connected")
        return f"<RelayClient host={self.host!r} contexts={self._contexts!r} {state}>"

    # -- lifecycle -----------------------------------------------------------

    def connect(self, timeout: Optional[float] = None) -> None:
        """Open the socket and log in; returns once ``signalwire.connect`` succeeded.

        Raises ``AuthenticationError`` (a ``RelayError``) when the credentials
        are refused and ``RelayError`` when the server cannot be reached.
        Calling it again while connected does nothing.
        """
        with self._lifecycle_lock:
            if self._closed:
                raise ClientClosedError("this client was disconnected; disconnect() is final, create a new RelayClient")
            if self._transport is not None:
                return
            _connection_slots.acquire()
            transport = Transport(
                TransportOptions(
                    url=self._config.url,
                    request_timeout=self._config.request_timeout,
                    connect_timeout=self._config.connect_timeout,
                    ping_interval=self._config.ping_interval,
                    reconnect_backoff=self._config.reconnect_backoff,
                ),
                connect_params=self._connect_params,
                on_event=self._route_event,
                on_session=self._session_started,
                on_fatal=self._on_fatal,
            )
            try:
                transport.open(timeout)
            except BaseException:
                _connection_slots.release()
                raise
            self._holds_slot = True
            self._transport = transport

    def disconnect(self) -> None:
        """Close for good. Every waiting call fails with ``RelayError``; every
        thread the client started has exited when this returns (unless called
        from a handler, whose own thread is still running it). Idempotent."""
        with self._lifecycle_lock:
            if self._closed:
                return
            self._closed = True
            transport, holds_slot = self._transport, self._holds_slot
            self._holds_slot = False
        self._stop_requested.set()
        if transport is not None:
            transport.close()
        error = self._fatal or ClientClosedError()
        for hook in self._close_hooks:
            hook(error)
        in_handler = threading.current_thread().name.startswith(HANDLER_THREAD_PREFIX)
        self._handler_pool.shutdown(wait=not in_handler, cancel_futures=True)
        if holds_slot:
            _connection_slots.release()
        log.info("RelayClient disconnected")

    close = disconnect

    def __enter__(self) -> "RelayClient":
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.disconnect()

    def run(self) -> None:
        """Connect and serve until ``stop()``, ``KeyboardInterrupt`` or SIGTERM.

        Reconnects on its own. Raises ``RelayError`` when the connection cannot
        be kept (for example, the credentials are refused on reconnect).
        Disconnects before returning.
        """
        self.connect()
        restore = self._install_sigterm_handler()
        try:
            self._stop_requested.wait()
        except KeyboardInterrupt:
            log.info("interrupted: shutting down")
        finally:
            restore()
            self.disconnect()
        if self._fatal is not None:
            raise self._fatal

    def stop(self) -> None:
        """Make ``run()`` return. Safe from any thread, including a handler."""
        self._stop_requested.set()

    def _install_sigterm_handler(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
            log.info("SIGTERM: shutting down")
            self.stop()

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        return lambda: signal.signal(signal.SIGTERM, previous)

    # -- requests --------------------------------------------------------------

    def execute(self, method: str, params: Optional[JSONDict] = None, *, timeout: Optional[float] = None) -> JSONDict:
        """Send a raw JSON-RPC request and return its ``result`` (``RelayError`` on failure)."""
        return self._live_transport().request(method, dict(params or {}), timeout)

    def receive(self, contexts: Iterable[str]) -> None:
        """Start receiving inbound calls, messages and tasks on more contexts."""
        added = _context_list(contexts)
        self.execute("signalwire.receive", {"contexts": added})
        self._contexts.extend(c for c in added if c not in self._contexts)

    def unreceive(self, contexts: Iterable[str]) -> None:
        """Stop receiving on these contexts."""
        removed = _context_list(contexts)
        self.execute("signalwire.unreceive", {"contexts": removed})
        self._contexts[:] = [c for c in self._contexts if c not in removed]

    # -- calls, messages, tasks ------------------------------------------------

    def on_call(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Decorator: ``handler(call)`` runs on the handler pool for each inbound call."""
        return self._calling.on_call(handler)

    def dial(
        self,
        devices: List[List[JSONDict]],
        *,
        tag: Optional[str] = None,
        max_duration: Optional[int] = None,
        dial_timeout: Optional[float] = None,
    ) -> Any:
        """Place an outbound call and block until it is answered; returns the ``Call``."""
        return self._calling.dial(devices, tag=tag, max_duration=max_duration, dial_timeout=dial_timeout)

    def dial_future(
        self,
        devices: List[List[JSONDict]],
        *,
        tag: Optional[str] = None,
        max_duration: Optional[int] = None,
        dial_timeout: Optional[float] = None,
    ) -> Any:
        """Like ``dial()`` without blocking: a ``concurrent.futures.Future`` of the ``Call``."""
        return self._calling.dial_future(devices, tag=tag, max_duration=max_duration, dial_timeout=dial_timeout)

    def on_message(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Decorator: ``handler(message)`` runs on the handler pool for each inbound SMS/MMS."""
        return self._messaging.on_message(handler)

    def on_task(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Decorator: ``handler(task)`` runs on the handler pool for each task delivered to our contexts."""
        return self._messaging.on_task(handler)

    def send_message(self, **options: Any) -> Any:
        """Send an SMS/MMS; blocks until the server accepted it and returns the ``Message``."""
        return self._messaging.send_message(**options)

    # -- the internal interface the calling/messaging/task services use ------

    def _live_transport(self) -> Transport:
        transport = self._transport
        if self._closed:
            raise self._fatal or ClientClosedError()
        if transport is None:
            raise RelayError("not_connected", "call connect() (or run()) before sending requests")
        return transport

    def _request(self, method: str, params: JSONDict, timeout: Optional[float] = None) -> JSONDict:
        return self._live_transport().request(method, params, timeout)

    def _submit(self, method: str, params: JSONDict) -> PendingRequest:
        return self._live_transport().submit(method, params)

    @property
    def _timers(self) -> TimerThread:
        return self._live_transport().timers

    def _run_user(self, fn: Callable[..., Any], *args: Any, what: str = "handler") -> None:
        """Run user code on the handler pool; an exception is logged, never propagated."""
        try:
            self._handler_pool.submit(_call_user, fn, args, what)
        except RuntimeError:  # the pool is shut down: the client is closing
            log.debug("%s not run: the client is closed", what)

    def _add_route(self, family: str, route: EventRoute) -> None:
        """Send events whose type starts with ``family.`` to ``route`` (runs on the I/O thread)."""
        self._event_routes[family] = route

    def _on_close(self, hook: Callable[[RelayError], None]) -> None:
        """Run ``hook(error)`` when the client closes, to fail what still waits."""
        self._close_hooks.append(hook)

    def _connect_params(self) -> JSONDict:
        authentication: JSONDict
        if self._jwt_token:
            authentication = {"jwt_token": self._jwt_token}
        else:
            authentication = {"project": self._config.project, "token": self._config.token}
        params: JSONDict = {
            "version": dict(PROTOCOL_VERSION),
            "agent": AGENT,
            "event_acks": True,
            "authentication": authentication,
        }
        if self._contexts:
            params["contexts"] = list(self._contexts)
        return params

    def _on_session_start(self, hook: Callable[[bool], None]) -> None:
        """Run ``hook(resumed)`` each time a session is authenticated (I/O or connecting thread)."""
        self._session_hooks.append(hook)

    def _session_started(self, resumed: bool) -> None:
        for hook in self._session_hooks:
            hook(resumed)

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

    def _on_fatal(self, error: RelayError) -> None:
        self._fatal = error
        for hook in self._close_hooks:
            hook(error)
        self._stop_requested.set()


def _call_user(fn: Callable[..., Any], args: Tuple[Any, ...], what: str) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("%s %r raised", what, getattr(fn, "__name__", fn))


def _context_list(contexts: Iterable[str]) -> List[str]:
    if isinstance(contexts, str):
        return [contexts]
    result = list(contexts)
    if not result or not all(isinstance(c, str) and c for c in result):
        raise ValueError(f"contexts must be a non-empty list of non-empty strings, not {result!r}")
    return result
