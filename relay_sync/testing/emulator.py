"""RelayEmulator: a simulated SignalWire RELAY space on loopback, for tests,
demos and trying an app without an account or a network.

It is the test server (``server.py``: sessions, login, journal, faults)
plus a simulated phone network: calls offered to clients and driven by
their commands (``calling.py``, ``media.py``, ``ringing.py``), messages and
tasks (``sms.py``), REST endpoints on the same port (``rest_api.py``), and
event delivery that survives reconnects (``outbox.py``). Declared phones
(``phones.py``) decide who answers, what they press and say.

Threads: websockets' connection threads answer requests, one network
thread (``clock.py``) runs everything timed, and the caller's thread runs
``place_call``/``send_sms``/``stop``.

Example::

    with RelayEmulator() as emulator:
        emulator.phone("+15550100", digits="1")
        client = emulator.client(contexts=["default"])
        ...
        call = emulator.place_call("+15550199", "+15550100")
        call.wait_ended(timeout=5)
        print(call.lines())
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..config import ENV_PROJECT, ENV_SPACE, ENV_TOKEN
from ..rpc import JSONDict
from .calling import CallingEngine, EmulatorLimitError
from .chat import ChatEngine
from .clock import Scheduled
from .http import HttpRequest, HttpResponse
from .legs import CallHandle, TranscriptEntry
from .media import MediaOperations, ok, refuse
from .network import Limits, Network
from .phones import Phone
from .recordings import RecordingStore
from .rest_api import RestApi
from .server import DISCONNECT_ANSWER_TIMEOUT, MethodBehaviour, MethodHandler, RelayTestServer, ServerSession
from .sms import MessagingEngine
from .tokens import TokenIssuer
from .video import VideoRooms

if TYPE_CHECKING:
    from ..client import RelayClient

log = logging.getLogger(__name__)

__all__ = ["CallHandle", "EmulatorLimitError", "Phone", "RelayEmulator", "TranscriptEntry"]

DEFAULT_TIME_FACTOR = 0.05
METHOD_NOT_FOUND = -32601  # JSON-RPC: the server has no such method


def _check_duration(name: str, value: float) -> None:
    """A duration setting must be a finite number of seconds above zero (inf would stall the clock)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise ValueError(f"{name} must be a finite number of seconds above zero, not {value!r}")


class RelayEmulator(RelayTestServer):
    """A simulated RELAY space on ``host`` (loopback unless told otherwise).

    :param project: the project id clients and REST calls must use.
    :param token: its API token.
    :param time_factor: real seconds per simulated second: prompts, ringing,
        speech and message delivery run this much faster (0.05: twenty times).
    :param ring_timeout: simulated seconds an unanswered call rings before ``noAnswer``.
    :param ping_interval: real seconds between the server's own pings to each client (None: never).
    :param orphan_timeout: real seconds a client may stay away (without resuming its
        session) before its calls are hung up and its undelivered events dropped; the
        session can then not be resumed: a client coming back later gets a new one.
    :param max_sessions: open WebSocket sessions; more are refused with HTTP 503.
    :param max_calls: calls up at once; ``place_call`` raises ``EmulatorLimitError`` beyond it.
    :param max_frame_size: the largest frame a client may send, in bytes.
    :param max_journal: frames kept in ``journal``; older ones are forgotten. It also
        bounds the clients' answers kept (``max_journal`` in all) and the closed sessions
        and resumable protocols kept (``max_journal // 100`` each, at least 10); every
        other table has a cap of its own. ``table_sizes()`` shows them all.
    """

    def __init__(
        self,
        project: str = "test",
        token: str = "test",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        time_factor: float = DEFAULT_TIME_FACTOR,
        ring_timeout: float = 30.0,
        ping_interval: float | None = None,
        orphan_timeout: float = 30.0,
        max_sessions: int = 100,
        max_calls: int = 1000,
        max_frame_size: int = 1 << 20,
        max_journal: int = 100_000,
    ) -> None:
        for name, value in (
            ("time_factor", time_factor),
            ("ring_timeout", ring_timeout),
            ("orphan_timeout", orphan_timeout),
            ("ping_interval", 1.0 if ping_interval is None else ping_interval),
        ):
            _check_duration(name, value)
        super().__init__(
            project,
            token,
            host=host,
            port=port,
            jwt_tokens=(),
            max_sessions=max_sessions,
            max_frame_size=max_frame_size,
            max_journal=max_journal,
        )
        self.network = Network(
            time_factor=time_factor,
            limits=Limits(max_calls=max_calls, ring_timeout=ring_timeout, orphan_timeout=orphan_timeout),
            project=project,
        )
        self.recordings = RecordingStore()
        self.tokens = TokenIssuer(project)
        self.media = MediaOperations(self.network, self.recordings, base_url=lambda: f"http://{self.relay_host}")
        self.calling = CallingEngine(self.network, self.media)
        self.messaging = MessagingEngine(self.network, space_id=f"{project}-space")
        self.chat = ChatEngine(self.network)
        self.video = VideoRooms(self.network, self.recordings, base_url=lambda: f"http://{self.relay_host}")
        self._rest = RestApi(
            project=project, token=token, tokens=self.tokens, messaging=self.messaging, recordings=self.recordings
        )
        # The methods the emulated server implements, one row each: method -> handler(session, params).
        # Anything else gets JSON-RPC -32601, as from the real server. Services add their rows here.
        self.methods: dict[str, MethodHandler] = {
            "signalwire.ping": self._ping,
            "signalwire.receive": self._receive,
            "signalwire.unreceive": self._unreceive,
            "signalwire.reauthenticate": self._reauthenticate,
            "messaging.send": self.messaging.send,
        }
        self.methods.update(self.calling.methods())
        self.methods.update(self.chat.handlers())
        self.methods.update(self.video.methods)
        self.ping_interval = ping_interval
        self._pinger: Scheduled | None = None
        # protocol -> its orphan timer: one per protocol gone away, cancelled when it comes back.
        self._orphan_timers: dict[str, Scheduled] = {}
        self._orphan_lock = threading.Lock()
        self._transcript_changed = threading.Condition()
        self.network.transcript.listen(self._on_transcript)

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> RelayEmulator:
        if self._host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("the emulator listens beyond loopback on %s: anyone who can reach it can use it", self._host)
        self.network.scheduler.start()
        super().start()
        if self.ping_interval is not None:
            self._pinger = self.network.scheduler.after_real(self.ping_interval, self._ping_clients)
        log.info("RELAY emulator listening on %s", self.relay_host)
        return self

    def stop(self) -> None:
        self.network.scheduler.stop()
        super().stop()

    def __enter__(self) -> RelayEmulator:
        return self.start()

    @property
    def time_factor(self) -> float:
        return self.network.scheduler.time_factor

    def client(self, **kwargs: Any) -> RelayClient:
        """A ``RelayClient`` for this emulator (not connected yet); ``kwargs`` go to its constructor."""
        from ..client import RelayClient  # the SDK imports nothing from testing; keep it that way

        return RelayClient(**self.client_kwargs(**kwargs))

    def environment(self) -> dict[str, str]:
        """The ``SIGNALWIRE_*`` environment variables that point a client at this emulator."""
        return {ENV_PROJECT: self.project, ENV_TOKEN: self.token, ENV_SPACE: self.relay_host}

    def rest_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``relay_sync.rest`` helpers aimed at this emulator."""
        return {"project": self.project, "token": self.token, "host": self.relay_host, "scheme": "http"}

    # -- the simulated world ------------------------------------------------------

    def phone(
        self,
        number: str,
        *,
        answers: bool = True,
        after: float = 0.0,
        busy: bool = False,
        digits: str | Sequence[str] | None = None,
        speech: str | Sequence[str] | None = None,
        **behaviour: Any,
    ) -> Phone:
        """Declare how ``number`` behaves when dialed or when it calls in (see :class:`Phone`
        for ``context``, ``machine``, ``fax``, ``message_seconds``, ``hangup_after``, ``sms``)."""
        return self.network.phones.add(
            Phone.declare(number, answers=answers, after=after, busy=busy, digits=digits, speech=speech, **behaviour)
        )

    def place_call(self, to_number: str, from_number: str, *, context: str | None = None) -> CallHandle:
        """``from_number`` calls ``to_number``: the call is offered to a client on ``context``
        (default: the context declared for ``to_number``, else ``"default"``)."""
        leg = self.calling.place_call(to_number, from_number, context)
        return CallHandle(leg, self.network.transcript, self.calling.phone_hangs_up, self.calling.press)

    def press(self, call_id: str, digits: str) -> None:
        """The far end of call ``call_id`` (inbound or dialed) presses ``digits`` now;
        ``bind_digit`` bindings for them run (see also ``CallHandle.press``)."""
        with self.network.lock:
            leg = self.network.legs.get(call_id)
        if leg is None:
            raise KeyError(f"no call {call_id!r} is up")
        self.calling.press(leg, digits)

    def send_sms(
        self,
        to_number: str,
        from_number: str,
        body: str | None = None,
        *,
        media: Sequence[str] = (),
        context: str | None = None,
        tags: Sequence[str] = (),
    ) -> str:
        """``from_number`` texts ``to_number``: a client on ``context`` receives it. Returns the message id."""
        return self.messaging.receive(to_number, from_number, body, media=media, context=context, tags=tags)

    def deliver_task(self, context: str, message: JSONDict) -> None:
        """Deliver a task as ``POST /api/relay/rest/tasks`` would, without HTTP."""
        self.messaging.task(context, message)

    def chat_publish(
        self, channel: str, content: Any, member_id: str | None = None, *, meta: JSONDict | None = None
    ) -> str:
        """Someone else (``member_id``, default one outside member) publishes ``content`` on
        Chat/PubSub ``channel``: every client subscribed to it receives it. Returns the message id."""
        return self.chat.publish(channel, content, member_id, meta)

    def table_sizes(self) -> dict[str, int]:
        """How many entries each table of the emulator holds now, by name (the
        server's, plus the simulated network's): every one is bounded, so a
        long-running emulator's memory stays flat. For soak tests and monitoring."""
        sizes = super().table_sizes()
        sizes.update(self.network.table_sizes())
        sizes.update(self.network.outbox.table_sizes())
        sizes.update(self.calling.table_sizes())
        sizes.update(self.chat.table_sizes())
        sizes.update(self.video.table_sizes())
        sizes["scheduled"] = self.network.scheduler.pending
        sizes["routing_contexts"] = self.network.router.context_count
        sizes["transcript"] = len(self.network.transcript)
        sizes["recordings"] = len(self.recordings)
        sizes["refresh_tokens"] = self.tokens.refresh_token_count
        return sizes

    @property
    def active_calls(self) -> int:
        with self.network.lock:
            return len(self.network.legs)

    # -- the transcript -----------------------------------------------------------

    @property
    def transcript(self) -> list[TranscriptEntry]:
        """Everything that happened on the simulated network, oldest first, as
        :class:`TranscriptEntry` objects; ``str(entry)`` is a readable line."""
        return self.network.transcript.entries()

    def on_transcript(self, listener: Callable[[TranscriptEntry], None]) -> None:
        """Call ``listener(entry)`` for each new transcript entry (on the thread that made it)."""
        self.network.transcript.listen(listener)

    def wait_for_transcript(self, text: str, *, timeout: float = 5.0) -> TranscriptEntry:
        """Block until a transcript entry contains ``text``; returns the first such entry."""

        def found() -> TranscriptEntry | None:
            return next((e for e in self.network.transcript.entries() if text in e.text), None)

        with self._transcript_changed:
            entry = self._transcript_changed.wait_for(found, timeout)
        if entry is None:
            raise TimeoutError(f"no transcript entry containing {text!r} within {timeout} s")
        return entry

    def _on_transcript(self, entry: TranscriptEntry) -> None:
        with self._transcript_changed:
            self._transcript_changed.notify_all()

    # -- fault controls -------------------------------------------------------------

    def drop_sessions(self) -> None:
        """Drop every live socket abruptly (clients reconnect and resume their protocol)."""
        for session in self.live_sessions():
            session.drop()

    def disconnect_sessions(self, *, restart: bool = False, timeout: float = DISCONNECT_ANSWER_TIMEOUT) -> None:
        """Send ``signalwire.disconnect`` to every live session, then close it; with
        ``restart=True`` clients must log in from scratch. Clients get ``timeout``
        seconds in all to answer; those that do not are dropped all the same."""
        sessions = self.live_sessions()
        asked = [(session, session.request("signalwire.disconnect", {"restart": restart})) for session in sessions]
        deadline = time.monotonic() + timeout
        for session, request_id in asked:
            session.close_after(request_id, deadline)

    def lose_acks(self, session: ServerSession) -> None:
        """Act as if this session's event ACKs never arrive: its events are resent after a reconnect."""
        self.network.outbox.lose_acks(session)

    # -- hooks into the session layer (connection threads) ----------------------------

    def _builtin_behaviour(self, method: str) -> MethodBehaviour | None:
        handler = self.methods.get(method)
        if handler is None:
            return MethodBehaviour(error={"code": METHOD_NOT_FOUND, "message": f"Method not found: {method}"})
        return MethodBehaviour(handler=handler)

    def _ping(self, session: ServerSession, params: JSONDict) -> JSONDict:
        return self._default_result(session, "signalwire.ping", params)

    def _unreceive(self, session: ServerSession, params: JSONDict) -> JSONDict:
        return self._default_result(session, "signalwire.unreceive", params)

    def _receive(self, session: ServerSession, params: JSONDict) -> JSONDict:
        result = self._default_result(session, "signalwire.receive", params)
        self.network.subscribed()  # calls, messages and tasks may be waiting for these contexts
        return result

    def _reauthenticate(self, session: ServerSession, params: JSONDict) -> JSONDict:
        authentication = params.get("authentication")
        jwt_token = authentication.get("jwt_token") if isinstance(authentication, dict) else None
        claims = self.tokens.verify(jwt_token)
        if claims is None:
            return refuse("401", "the JWT is not valid or has expired")
        return ok("Reauthenticated", authorization=self._jwt_authorization(claims))

    def _authorize(self, authentication: JSONDict) -> JSONDict | None:
        if "jwt_token" in authentication and not self.reject_logins:
            claims = self.tokens.verify(authentication["jwt_token"])
            if claims is not None:
                return self._jwt_authorization(claims)
        return super()._authorize(authentication)

    def _jwt_authorization(self, claims: JSONDict) -> JSONDict:
        return {**self.authorization, "expires_at": claims["exp"], "resource": claims.get("resource")}

    def _session_started(self, session: ServerSession, resumed: bool) -> None:
        if session.protocol is not None:
            with self._orphan_lock:
                timer = self._orphan_timers.pop(session.protocol, None)
            if timer is not None:
                timer.cancel()  # back in time: it gets the full grace again when it next leaves
        if self.authorization_state_after_connect is None:
            # Like RELAY: an opaque blob the client sends back when it reconnects.
            session.push_authorization_state(secrets.token_urlsafe(32))
        self.network.outbox.attach(session)
        self.network.subscribed()

    def _session_ended(self, session: ServerSession) -> None:
        self.network.outbox.detach(session)
        self.chat.session_ended(session)
        protocol = session.protocol
        if protocol is None or not session.authenticated.is_set():
            return
        timer = self.network.scheduler.after_real(self.network.limits.orphan_timeout, lambda: self._abandon(protocol))
        with self._orphan_lock:
            previous = self._orphan_timers.get(protocol)
            self._orphan_timers[protocol] = timer
        if previous is not None:
            previous.cancel()

    def _abandon(self, protocol: str) -> None:
        """``protocol`` stayed away past ``orphan_timeout`` (network thread): its calls are hung
        up and its events dropped, so it cannot be resumed: a client coming back gets a new session."""
        with self._orphan_lock:
            self._orphan_timers.pop(protocol, None)
        if self.network.outbox.live_session(protocol) is not None:
            return  # resumed meanwhile
        self.forget_protocol(protocol)
        self.calling.client_gone(protocol)
        self.video.client_gone(protocol)

    def _answer_received(self, session: ServerSession, frame: JSONDict) -> None:
        self.network.outbox.ack(session, frame)

    def _http(self, request: HttpRequest) -> HttpResponse:
        return self._rest(request)

    def _ping_clients(self) -> None:
        for session in self.live_sessions():
            session.ping()
        if self.ping_interval is not None:
            self._pinger = self.network.scheduler.after_real(self.ping_interval, self._ping_clients)
