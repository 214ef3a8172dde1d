"""RelayTestServer: a real RELAY WebSocket server on 127.0.0.1, in a thread of
the test process.

It speaks the session part of PROTOCOL.md (connect with project/token or JWT,
protocol resumption, authorization_state, event ACKs, pings both ways,
server disconnects) and answers every other method with a 200 result unless
a test says otherwise with :meth:`RelayTestServer.respond`. Like the server, it
refuses requests before login (-32002) and params of the wrong shape (-32602),
and a failing handler costs the client an error answer (-32603), not its socket. It keeps a journal
of every frame so tests can assert on what the client sent, and offers the
faults a client must survive: dropped sockets, silence, malformed frames.

With ``max_journal`` set (the emulator always sets it: it is a dev server
people leave running) every table is bounded: the journal, the clients'
answers (at most ``max_journal`` in all), closed sessions and remembered
protocols (``max_journal // 100`` each, at least 10). ``table_sizes()``
shows them.

Each connection is served by its own thread (websockets' sync server). The
same port answers plain HTTP for RELAY's REST side (see ``http.py``): 404
here, real routes in :class:`~relay_sync.testing.emulator.RelayEmulator`,
which builds on this class through the ``_builtin_behaviour``,
``_authorize``, ``_session_started``, ``_session_ended`` and
``_answer_received`` hooks.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Callable

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from ..rpc import JSONDict
from .http import HttpRequest, HttpResponse, is_rest_request, serve_http

log = logging.getLogger(__name__)

# Seconds a new connection may take to send its request line, and a REST request to arrive.
FRONT_DOOR_TIMEOUT = 10.0

# Seconds the server waits for clients to answer signalwire.disconnect before dropping them anyway.
DISCONNECT_ANSWER_TIMEOUT = 5.0

# JSON-RPC error codes the server answers with (-32002 as RELAY's for a failed or missing login).
NOT_AUTHENTICATED = -32002
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# With max_journal set: closed sessions kept, and protocols remembered beyond the live ones.
MIN_CLOSED_SESSIONS_KEPT = 10


@dataclass
class Reply:
    """What a method handler may return instead of a bare result: the result,
    and work to run right after the answer went out (events that follow it)."""

    result: JSONDict
    then: Callable[[], None] | None = None


# handler(session, params) -> result dict, a Reply, or None for the default result
MethodHandler = Callable[["ServerSession", JSONDict], "JSONDict | Reply | None"]
# after(session, params, result): runs right after the answer went out
AfterAnswer = Callable[["ServerSession", JSONDict, JSONDict], None]


@dataclass(frozen=True)
class JournalEntry:
    session: int
    direction: str  # "recv" (client → server) or "send" (server → client)
    frame: Any  # the decoded JSON value, or the raw text/bytes when it was not JSON


@dataclass
class MethodBehaviour:
    result: JSONDict | None = None
    code: str | None = None
    message: str | None = None
    error: JSONDict | None = None
    delay: float = 0.0
    silent: bool = False
    handler: MethodHandler | None = None
    after: AfterAnswer | None = None

    @property
    def only_timing(self) -> bool:
        """Says only when (``delay``) and what follows (``after``), not what the answer is."""
        answer = (self.result, self.code, self.message, self.error, self.handler)
        return all(part is None for part in answer) and not self.silent


class ServerSession:
    """One client connection as the server sees it."""

    def __init__(self, server: RelayTestServer, number: int, connection: ServerConnection) -> None:
        self.server = server
        self.number = number
        self.connection = connection
        self.protocol: str | None = None
        self.contexts: set[str] = set()
        self.authenticated = threading.Event()
        self.closed = threading.Event()
        self.silent = False
        self._answers: dict[str, JSONDict] = {}  # request id -> the client's answer (bounded by the server)
        self._send_lock = threading.Lock()

    # -- pushing to the client ---------------------------------------------

    def send(self, frame: JSONDict | str | bytes) -> None:
        data: str | bytes = frame if isinstance(frame, (str, bytes)) else json.dumps(frame)
        self.server._record(self.number, "send", frame)
        with self._send_lock:
            try:
                self.connection.send(data)
            except ConnectionClosed:
                log.debug("session %d: send on a closed connection", self.number)

    def request(self, method: str, params: JSONDict) -> str:
        """Send a server → client request; returns its id (see :meth:`wait_answer`)."""
        request_id = str(uuid.uuid4())
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return request_id

    def push_event(self, event_type: str, params: JSONDict, **envelope: Any) -> str:
        """Send a ``signalwire.event``; returns its id, acknowledged once the client answers."""
        body: JSONDict = {"event_type": event_type, "event_channel": self.protocol, "timestamp": time.time()}
        body.update(envelope)
        body["params"] = params
        return self.request("signalwire.event", body)

    def push_envelope(self, envelope: JSONDict) -> str:
        """Send a ``signalwire.event`` whose params are exactly ``envelope`` (tasks have no nested params)."""
        return self.request("signalwire.event", envelope)

    def ping(self) -> str:
        return self.request("signalwire.ping", {"timestamp": time.time()})

    def send_disconnect(self, restart: bool = False, timeout: float = DISCONNECT_ANSWER_TIMEOUT) -> bool:
        """Ask the client to reconnect, as the server does before a deploy; then close,
        answered or not. Returns whether the client answered within ``timeout`` seconds."""
        return self.close_after(self.request("signalwire.disconnect", {"restart": restart}), time.monotonic() + timeout)

    def close_after(self, request_id: str, deadline: float) -> bool:
        """Wait (until ``deadline``, a ``time.monotonic()``) for the answer to ``request_id``, then
        drop the socket either way: a client that does not answer is gone for the server too."""
        try:
            self.wait_answer(request_id, timeout=max(0.0, deadline - time.monotonic()))
            return True
        except TimeoutError:
            log.warning("session %d did not answer signalwire.disconnect: dropping it", self.number)
            return False
        finally:
            self.drop()

    def push_authorization_state(self, state: str) -> str:
        return self.push_event("signalwire.authorization.state", {"authorization_state": state})

    def drop(self) -> None:
        """Drop the TCP connection abruptly, without a close frame."""
        try:
            self.connection.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone
        self.connection.close_socket()  # also wakes websockets' reader thread

    def go_silent(self) -> None:
        """Keep the socket open but stop answering anything (a half-open link)."""
        self.silent = True

    def send_malformed(self) -> None:
        """Send a text frame that is not JSON, as a broken server might."""
        self.send("{this is not json")

    @property
    def live(self) -> bool:
        """Authenticated and not closed."""
        return self.authenticated.is_set() and not self.closed.is_set()

    # -- what the client answered ------------------------------------------

    def acked(self, request_id: str) -> bool:
        """The client answered this request with a result (among the answers still kept)."""
        return "result" in self._answers.get(request_id, {})

    def wait_answer(self, request_id: str, timeout: float = 5.0) -> JSONDict:
        """Block until the client answered a server request; returns the answer frame."""
        with self.server._changed:
            if not self.server._changed.wait_for(lambda: request_id in self._answers, timeout):
                raise TimeoutError(f"the client did not answer {request_id} within {timeout} s")
            return self._answers[request_id]

    def _note_answer(self, frame: JSONDict) -> str | None:
        """Keep the client's answer; returns its request id (None: not one of ours)."""
        request_id = frame.get("id")
        if not isinstance(request_id, str):
            return None
        self._answers[request_id] = frame
        return request_id


class RelayTestServer:
    """A RELAY server on loopback. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        project: str = "test",
        token: str = "test",
        *,
        jwt_tokens: Iterable[str] = ("test-jwt",),
        host: str = "127.0.0.1",
        port: int = 0,
        authorization: JSONDict | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_sessions: int | None = None,
        max_frame_size: int = 2**22,
        max_journal: int | None = None,
    ) -> None:
        self.project = project
        self._ssl_context = ssl_context
        self.token = token
        self.jwt_tokens: set[str] = set(jwt_tokens)
        self.authorization: JSONDict = authorization or {"project_id": project, "scopes": ["calling", "messaging"]}
        self.reject_logins = False
        self._logins_open = threading.Event()
        self._logins_open.set()
        self.authorization_state_after_connect: str | None = None
        self._host = host
        self._port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self._behaviours: dict[str, MethodBehaviour] = {}
        # Protocols a client may resume, oldest login first (bounded with max_journal).
        self._protocols: OrderedDict[str, None] = OrderedDict()
        self._timers: list[threading.Timer] = []
        self.journal: list[JournalEntry] = []
        self.sessions: list[ServerSession] = []
        # (session, request id) of the answers kept, oldest first: at most max_journal in all.
        self._answer_order: deque[tuple[ServerSession, str]] = deque()
        self.max_sessions = max_sessions
        self.max_frame_size = max_frame_size
        self.max_journal = max_journal
        self._session_count = 0
        self._websocket_handler: Callable[[socket.socket, Any], None] | None = None
        self._at_the_door: set[socket.socket] = set()  # accepted, not yet handed to websockets
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> RelayTestServer:
        self._stopping = False
        self._server = serve(
            self._serve_connection,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ping_interval=None,
            compression=None,
            max_size=self.max_frame_size,
            process_request=self._admit,
        )
        if self._ssl_context is None:
            # Every accepted socket goes through the front door first, which sends
            # REST requests to serve_http and WebSocket handshakes on to websockets.
            # (Over TLS the bytes cannot be peeked before the handshake: WebSocket only.)
            self._websocket_handler = self._server.handler
            self._server.handler = self._front_door
        self._port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="relay-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._logins_open.set()
        with self._changed:
            self._stopping = True
            waiting = list(self._at_the_door)
        for sock in waiting:  # wakes a front door still waiting for a request or serving REST
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
        for timer in self._timers:
            timer.cancel()
        for session in list(self.sessions):
            session.drop()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> RelayTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def host(self) -> str:
        """The address the server listens on (without the port)."""
        return self._host

    @property
    def relay_host(self) -> str:
        return f"{self._host}:{self._port}"

    @property
    def scheme(self) -> str:
        return "wss" if self._ssl_context is not None else "ws"

    def client_kwargs(self, **overrides: Any) -> JSONDict:
        """Keyword arguments for a RelayClient that talks to this server."""
        kwargs: JSONDict = {
            "project": self.project,
            "token": self.token,
            "host": self.relay_host,
            "scheme": self.scheme,
        }
        kwargs.update(overrides)
        return kwargs

    # -- scripting ------------------------------------------------------------

    def respond(
        self,
        method: str,
        *,
        result: JSONDict | None = None,
        code: str | None = None,
        message: str | None = None,
        error: JSONDict | None = None,
        delay: float = 0.0,
        silent: bool = False,
        handler: MethodHandler | None = None,
        after: AfterAnswer | None = None,
    ) -> None:
        """Say how to answer ``method`` from now on.

        ``code``/``message`` set ``result.code``; ``error`` answers with a
        JSON-RPC error object; ``delay`` answers later; ``silent`` never
        answers; ``handler(session, params)`` computes the result (and may
        push events on the session, which then reach the client ahead of
        the answer); ``after(session, params, result)`` runs right after the
        answer was sent, to push events that follow it on the wire.

        On the emulator, a ``respond()`` with only ``delay`` and/or ``after``
        keeps the method's emulated answer and effects (a slow server that
        still works); any other argument replaces them.
        """
        self._behaviours[method] = MethodBehaviour(result, code, message, error, delay, silent, handler, after)

    def pause_logins(self) -> None:
        """Hold every ``signalwire.connect`` unanswered until :meth:`resume_logins`."""
        self._logins_open.clear()

    def resume_logins(self) -> None:
        self._logins_open.set()

    def session(self, index: int = -1) -> ServerSession:
        return self.sessions[index]

    def wait_for_session(self, count: int, timeout: float = 5.0) -> ServerSession:
        """Block until ``count`` sessions have authenticated; returns the latest."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: sum(1 for s in self.sessions if s.authenticated.is_set()) >= count, timeout
            )
        if not ok:
            raise TimeoutError(f"fewer than {count} authenticated sessions after {timeout} s")
        return [s for s in self.sessions if s.authenticated.is_set()][-1]

    def requests(self, method: str | None = None) -> list[JSONDict]:
        """Request frames the clients sent (optionally only those of ``method``), oldest first."""
        with self._changed:
            return [
                e.frame
                for e in self.journal
                if e.direction == "recv"
                and isinstance(e.frame, dict)
                and "method" in e.frame
                and (method is None or e.frame["method"] == method)
            ]

    def wait_for_request(
        self,
        method: str,
        predicate: Callable[[JSONDict], bool] = lambda params: True,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> JSONDict:
        """Block until ``count`` requests of ``method`` matching ``predicate`` arrived; returns the last."""

        def matching() -> list[JSONDict]:
            return [f for f in self.requests(method) if predicate(f.get("params") or {})]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(f"{count} {method} request(s) not seen within {timeout} s")
            return matching()[count - 1]

    def events(self, event_type: str | None = None, *, session: int | None = None) -> list[JSONDict]:
        """Envelopes (``params`` of ``signalwire.event``) the server sent, oldest first;
        redeliveries appear once per send."""
        with self._changed:
            return [
                e.frame["params"]
                for e in self.journal
                if e.direction == "send"
                and (session is None or e.session == session)
                and isinstance(e.frame, dict)
                and e.frame.get("method") == "signalwire.event"
                and (event_type is None or e.frame["params"].get("event_type") == event_type)
            ]

    def wait_for_event(
        self,
        event_type: str,
        predicate: Callable[[JSONDict], bool] = lambda params: True,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> JSONDict:
        """Block until ``count`` events of ``event_type`` whose ``params`` match ``predicate``
        were sent; returns the last envelope."""

        def matching() -> list[JSONDict]:
            return [e for e in self.events(event_type) if predicate(e.get("params") or {})]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(f"{count} {event_type} event(s) not sent within {timeout} s")
            return matching()[count - 1]

    def wait_for_journal(
        self, predicate: Callable[[JournalEntry], bool], *, count: int = 1, timeout: float = 5.0
    ) -> JournalEntry:
        """Block until ``count`` journal entries match ``predicate``; returns the last of them."""

        def matching() -> list[JournalEntry]:
            return [e for e in self.journal if predicate(e)]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(f"{count} matching journal entries not seen within {timeout} s")
            return matching()[count - 1]

    # -- serving ----------------------------------------------------------------

    def _record(self, session: int, direction: str, frame: Any) -> None:
        with self._changed:
            self.journal.append(JournalEntry(session, direction, frame))
            if self.max_journal is not None and len(self.journal) > self.max_journal + self.max_journal // 8:
                del self.journal[: len(self.journal) - self.max_journal]  # trimmed in batches: amortised O(1)
            self._changed.notify_all()

    def table_sizes(self) -> dict[str, int]:
        """How many entries each of the server's tables holds now, by table name:
        a way to check that a long-running server stays bounded."""
        with self._changed:
            return {
                "journal": len(self.journal),
                "sessions": len(self.sessions),
                "answers": sum(len(s._answers) for s in self.sessions),
                "protocols": len(self._protocols),
                "delayed_answers": len(self._timers),
            }

    @property
    def _closed_sessions_kept(self) -> int | None:
        """Closed sessions (and gone protocols) kept; None: all of them (no max_journal)."""
        if self.max_journal is None:
            return None
        return max(MIN_CLOSED_SESSIONS_KEPT, self.max_journal // 100)

    def live_sessions(self) -> list[ServerSession]:
        """Sessions that are authenticated and still open, oldest first."""
        with self._changed:
            return [s for s in self.sessions if s.live]

    # -- the front door: REST or WebSocket ---------------------------------------

    def _front_door(self, sock: socket.socket, address: Any) -> None:
        """Runs on websockets' per-connection thread for every accepted socket."""
        with self._changed:
            stopping = self._stopping
            if not stopping:
                self._at_the_door.add(sock)
        if stopping:  # accepted while stop() runs: it would never wake this socket
            sock.close()
            self._release_handler_thread()
            return
        try:
            rest = is_rest_request(sock, timeout=FRONT_DOOR_TIMEOUT)
        except OSError:
            rest = None  # the peer sent nothing usable, or stop() shut the socket
        if rest is False and self._websocket_handler is not None:
            with self._changed:
                self._at_the_door.discard(sock)
            self._websocket_handler(sock, address)  # releases the thread's slot itself
            return
        try:
            if rest:
                serve_http(sock, self._http, timeout=FRONT_DOOR_TIMEOUT)
        finally:
            with self._changed:
                self._at_the_door.discard(sock)
            sock.close()
            self._release_handler_thread()

    def _release_handler_thread(self) -> None:
        # websockets' Server.shutdown() waits until every connection thread left
        # its handler_threads set; websockets' own handler removes itself, ours must too.
        server = self._server
        threads = getattr(server, "handler_threads", None)
        if server is not None and threads is not None:
            with server.lock:
                threads.discard(threading.current_thread())

    def _http(self, request: HttpRequest) -> HttpResponse:
        """Answer a REST request; the plain test server has no REST endpoints."""
        return HttpResponse.error(404, f"no such endpoint: {request.method} {request.path}")

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """websockets' process_request: refuse a handshake beyond ``max_sessions`` with 503."""
        if self.max_sessions is None:
            return None
        with self._changed:
            open_sessions = sum(1 for s in self.sessions if not s.closed.is_set())
        if open_sessions < self.max_sessions:
            return None
        log.warning("refusing a connection: %d sessions open (max_sessions=%d)", open_sessions, self.max_sessions)
        body = b"too many sessions\n"
        headers = Headers([("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Retry-After", "1")])
        return Response(503, "Service Unavailable", headers, body)

    # -- serving ----------------------------------------------------------------

    def _serve_connection(self, connection: ServerConnection) -> None:
        with self._changed:
            session = ServerSession(self, self._session_count, connection)
            self._session_count += 1
            self.sessions.append(session)
            self._forget_old_sessions()
        try:
            for raw in connection:
                self._handle_raw(session, raw)
        except ConnectionClosed:
            pass  # the client went away: the session ends below
        except OSError:
            pass  # dropped by a fault control
        finally:
            session.closed.set()
            with self._changed:
                self._changed.notify_all()
            self._session_ended(session)

    def _forget_old_sessions(self) -> None:
        """With ``max_journal`` set (a long-running server), keep closed sessions bounded too (lock held)."""
        kept = self._closed_sessions_kept
        if kept is None:
            return
        closed = [s for s in self.sessions if s.closed.is_set()]
        for session in closed[: max(0, len(closed) - kept)]:
            self.sessions.remove(session)
            session._answers.clear()

    def _keep_answer(self, session: ServerSession, frame: JSONDict) -> None:
        """Note a client's answer; with ``max_journal`` set the oldest answers go first (lock held)."""
        request_id = session._note_answer(frame)
        if request_id is None or self.max_journal is None:
            return
        self._answer_order.append((session, request_id))
        while len(self._answer_order) > self.max_journal:
            old_session, old_id = self._answer_order.popleft()
            old_session._answers.pop(old_id, None)

    def _remember_protocol(self, protocol: str) -> None:
        """A protocol clients may resume; with ``max_journal`` set, those of the sessions
        gone longest are forgotten first (such a client then starts a new session)."""
        with self._changed:
            self._protocols[protocol] = None
            self._protocols.move_to_end(protocol)
            kept = self._closed_sessions_kept
            if kept is None:
                return
            live = {s.protocol for s in self.sessions if s.live}
            for old in [p for p in self._protocols if p not in live][: max(0, len(self._protocols) - len(live) - kept)]:
                del self._protocols[old]

    def forget_protocol(self, protocol: str) -> None:
        """``protocol`` can no longer be resumed: a client asking for it gets a new session."""
        with self._changed:
            self._protocols.pop(protocol, None)

    def _handle_raw(self, session: ServerSession, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            self._record(session.number, "recv", raw)
            return
        self._record(session.number, "recv", frame)
        if not isinstance(frame, dict):
            return
        if "method" not in frame:
            with self._changed:
                self._keep_answer(session, frame)
                self._changed.notify_all()
            self._answer_received(session, frame)
            return
        if session.silent:
            return
        try:
            self._dispatch(session, frame)
        except Exception:  # a handler's bug must not close the client's socket: it gets -32603
            log.exception("session %d: answering %s failed", session.number, frame.get("method"))
            self._refuse(session, frame.get("id"), INTERNAL_ERROR, "Internal error")

    def _refuse(self, session: ServerSession, request_id: Any, code: int, message: str) -> None:
        """Answer a request with a JSON-RPC error object (a notification gets no answer)."""
        if request_id is not None:
            session.send({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})

    def _dispatch(self, session: ServerSession, frame: JSONDict) -> None:
        method, params, request_id = frame["method"], frame.get("params", {}), frame.get("id")
        if not isinstance(params, dict):
            self._refuse(session, request_id, INVALID_PARAMS, f"{method}: params must be an object")
            return
        if method == "signalwire.connect":
            try:
                self._login(session, request_id, params)
            except (TypeError, ValueError) as error:  # contexts that are not strings, say
                self._refuse(session, request_id, INVALID_PARAMS, f"{method}: invalid params ({error})")
            return
        if not session.authenticated.is_set():
            self._refuse(
                session, request_id, NOT_AUTHENTICATED, f"{method}: not authenticated; send signalwire.connect first"
            )
            return
        behaviour = self._behaviour(method)
        if behaviour.silent:
            return
        try:
            answer, then = self._answer(session, method, params, request_id, behaviour)
        except (TypeError, ValueError, KeyError, AttributeError) as error:  # params of the wrong shape
            log.info("session %d: bad params for %s: %r", session.number, method, error)
            self._refuse(session, request_id, INVALID_PARAMS, f"{method}: invalid params ({error})")
            return

        def deliver() -> None:
            session.send(answer)
            try:
                if then is not None:
                    then()
                if behaviour.after is not None:
                    behaviour.after(session, params, answer.get("result") or {})
            except Exception:  # the answer is out: log, and keep the session (and a delay's timer) going
                log.exception("session %d: the events after %s failed", session.number, method)

        if behaviour.delay > 0:
            timer = threading.Timer(behaviour.delay, deliver)
            timer.daemon = True
            with self._changed:
                self._timers = [t for t in self._timers if t.is_alive()]  # only those still to fire
                self._timers.append(timer)
            timer.start()
        else:
            deliver()

    def _behaviour(self, method: str) -> MethodBehaviour:
        """How to answer ``method``: as ``respond()`` said, else built in. A ``respond()`` that
        only slows the method down (``delay``/``after``) keeps the built-in answer and effects."""
        scripted = self._behaviours.get(method)
        builtin = self._builtin_behaviour(method)
        if scripted is None:
            return builtin or MethodBehaviour()
        if builtin is not None and scripted.only_timing:
            return replace(builtin, delay=scripted.delay, after=scripted.after or builtin.after)
        return scripted

    def _answer(
        self, session: ServerSession, method: str, params: JSONDict, request_id: Any, behaviour: MethodBehaviour
    ) -> tuple[JSONDict, Callable[[], None] | None]:
        if behaviour.error is not None:
            return {"jsonrpc": "2.0", "id": request_id, "error": behaviour.error}, None
        result: JSONDict
        then: Callable[[], None] | None = None
        if behaviour.handler is not None:
            handled = behaviour.handler(session, params)
            if isinstance(handled, Reply):
                result, then = handled.result, handled.then
            else:
                result = handled or {"code": "200", "message": "OK"}
        elif behaviour.result is not None:
            result = dict(behaviour.result)
        else:
            result = self._default_result(session, method, params)
        if behaviour.code is not None:
            result["code"] = behaviour.code
            result["message"] = behaviour.message or f"{method} failed"
        return {"jsonrpc": "2.0", "id": request_id, "result": result}, then

    # -- hooks for subclasses (the emulator) --------------------------------------

    def _builtin_behaviour(self, method: str) -> MethodBehaviour | None:
        """How to answer ``method`` when no ``respond()`` covers it (None: the default result)."""
        return None

    def _authorize(self, authentication: JSONDict) -> JSONDict | None:
        """The ``authorization`` block for these credentials, or None to refuse the login."""
        if self.reject_logins:
            return None
        if authentication.get("jwt_token") in self.jwt_tokens or (
            authentication.get("project") == self.project and authentication.get("token") == self.token
        ):
            return dict(self.authorization)
        return None

    def _session_started(self, session: ServerSession, resumed: bool) -> None:
        """Runs on the connection's thread once the connect result went out."""

    def _session_ended(self, session: ServerSession) -> None:
        """Runs on the connection's thread when its socket closed."""

    def _answer_received(self, session: ServerSession, frame: JSONDict) -> None:
        """Runs on the connection's thread for each answer to a server → client request."""

    def _default_result(self, session: ServerSession, method: str, params: JSONDict) -> JSONDict:
        contexts = params.get("contexts") or []
        if method == "signalwire.ping":
            return {"timestamp": params.get("timestamp", time.time())}
        if method == "signalwire.receive":
            session.contexts.update(contexts)
            return {"code": "200", "message": "Receiving all inbound related to the requested relay contexts"}
        if method == "signalwire.unreceive":
            session.contexts.difference_update(contexts)
            return {"code": "200", "message": "Unreceived"}
        if method == "signalwire.reauthenticate":
            jwt = (params.get("authentication") or {}).get("jwt_token")
            if jwt not in self.jwt_tokens:
                return {"code": "401", "message": "Unauthorized"}
            return {"code": "200", "message": "Reauthenticated"}
        if method == "messaging.send":
            return {"code": "200", "message": "Message accepted", "message_id": str(uuid.uuid4())}
        return {"code": "200", "message": "OK"}

    def _login(self, session: ServerSession, request_id: Any, params: JSONDict) -> None:
        if not self._logins_open.wait(timeout=30):
            return
        authentication = params.get("authentication")
        authorization = self._authorize(authentication if isinstance(authentication, dict) else {})
        if authorization is None:
            session.send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": NOT_AUTHENTICATED, "message": "Authentication failed"},
                }
            )
            return
        requested = params.get("protocol")
        protocol = requested if isinstance(requested, str) and requested in self._protocols else None
        resumed = protocol is not None
        protocol = protocol or f"signalwire_{uuid.uuid4().hex}"
        self._remember_protocol(protocol)
        session.protocol = protocol
        session.contexts = set(params.get("contexts") or [])
        result = {
            "identity": f"{self.project}@relay-test",
            "authorization": authorization,
            "protocol": protocol,
            "sessionid": str(uuid.uuid4()),
        }
        session.send({"jsonrpc": "2.0", "id": request_id, "result": result})
        if self.authorization_state_after_connect is not None:
            session.push_authorization_state(self.authorization_state_after_connect)
        session.authenticated.set()
        with self._changed:
            self._changed.notify_all()
        self._session_started(session, resumed)
