"""RelayTestServer: a real RELAY WebSocket server on 127.0.0.1, in a thread of
the test process.

It speaks the session part of PROTOCOL.md (connect with project/token or JWT,
protocol resumption, authorization_state, event ACKs, pings both ways,
server disconnects) and answers every other method with a 200 result unless
a test says otherwise with :meth:`RelayTestServer.respond`. It keeps a journal
of every frame so tests can assert on what the client sent, and offers the
faults a client must survive: dropped sockets, silence, malformed frames.

Each connection is served by its own thread (websockets' sync server).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, Optional

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
# handler(session, params) -> result dict (or None for the default result)
MethodHandler = Callable[["ServerSession", JSONDict], Optional[JSONDict]]
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
        self._acked: set[str] = set()
        self._answers: dict[str, JSONDict] = {}
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

    def send_disconnect(self, restart: bool = False) -> None:
        """Ask the client to reconnect, as the server does before a deploy; then close."""
        request_id = self.request("signalwire.disconnect", {"restart": restart})
        self.wait_answer(request_id, timeout=5)
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

    # -- what the client answered ------------------------------------------

    def acked(self, request_id: str) -> bool:
        return request_id in self._acked

    def wait_answer(self, request_id: str, timeout: float = 5.0) -> JSONDict:
        """Block until the client answered a server request; returns the answer frame."""
        with self.server._changed:
            if not self.server._changed.wait_for(lambda: request_id in self._answers, timeout):
                raise TimeoutError(f"the client did not answer {request_id} within {timeout} s")
            return self._answers[request_id]

    def _note_answer(self, frame: JSONDict) -> None:
        request_id = frame.get("id")
        if isinstance(request_id, str):
            self._answers[request_id] = frame
            if "result" in frame:
                self._acked.add(request_id)


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
    ) -> None:
        self.project = project
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
        self._protocols: set[str] = set()
        self._timers: list[threading.Timer] = []
        self.journal: list[JournalEntry] = []
        self.sessions: list[ServerSession] = []

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> RelayTestServer:
        self._server = serve(
            self._serve_connection, self._host, self._port, ping_interval=None, compression=None, max_size=2**22
        )
        self._port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="relay-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._logins_open.set()
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
    def relay_host(self) -> str:
        return f"{self._host}:{self._port}"

    scheme = "ws"

    def client_kwargs(self, **overrides: Any) -> JSONDict:
        """Keyword arguments for a RelayClient that talks to this server."""
        kwargs: JSONDict = {"project": self.project, "token": self.token, "host": self.relay_host, "scheme": "ws"}
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

    # -- serving ----------------------------------------------------------------

    def _record(self, session: int, direction: str, frame: Any) -> None:
        with self._changed:
            self.journal.append(JournalEntry(session, direction, frame))
            self._changed.notify_all()

    def _serve_connection(self, connection: ServerConnection) -> None:
        with self._changed:
            session = ServerSession(self, len(self.sessions), connection)
            self.sessions.append(session)
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
                session._note_answer(frame)
                self._changed.notify_all()
            return
        if session.silent:
            return
        method, params = frame["method"], frame.get("params") or {}
        if method == "signalwire.connect":
            self._login(session, frame["id"], params)
            return
        behaviour = self._behaviours.get(method, MethodBehaviour())
        if behaviour.silent:
            return
        answer = self._answer(session, method, params, frame["id"], behaviour)

        def deliver() -> None:
            session.send(answer)
            if behaviour.after is not None:
                behaviour.after(session, params, answer.get("result") or {})

        if behaviour.delay > 0:
            timer = threading.Timer(behaviour.delay, deliver)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        else:
            deliver()

    def _answer(
        self, session: ServerSession, method: str, params: JSONDict, request_id: Any, behaviour: MethodBehaviour
    ) -> JSONDict:
        if behaviour.error is not None:
            return {"jsonrpc": "2.0", "id": request_id, "error": behaviour.error}
        result: JSONDict
        if behaviour.handler is not None:
            result = behaviour.handler(session, params) or {"code": "200", "message": "OK"}
        elif behaviour.result is not None:
            result = dict(behaviour.result)
        else:
            result = self._default_result(session, method, params)
        if behaviour.code is not None:
            result["code"] = behaviour.code
            result["message"] = behaviour.message or f"{method} failed"
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

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
        authentication = params.get("authentication") or {}
        ok = not self.reject_logins and (
            authentication.get("jwt_token") in self.jwt_tokens
            or (authentication.get("project") == self.project and authentication.get("token") == self.token)
        )
        if not ok:
            session.send(
                {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32002, "message": "Authentication failed"}}
            )
            return
        requested = params.get("protocol")
        protocol = requested if requested in self._protocols else f"signalwire_{uuid.uuid4().hex}"
        self._protocols.add(protocol)
        session.protocol = protocol
        session.contexts = set(params.get("contexts") or [])
        result = {
            "identity": f"{self.project}@relay-test",
            "authorization": dict(self.authorization),
            "protocol": protocol,
            "sessionid": str(uuid.uuid4()),
        }
        session.send({"jsonrpc": "2.0", "id": request_id, "result": result})
        if self.authorization_state_after_connect is not None:
            session.push_authorization_state(self.authorization_state_after_connect)
        session.authenticated.set()
        with self._changed:
            self._changed.notify_all()
