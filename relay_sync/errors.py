"""The exceptions relay_sync raises. Every failure a caller can see is a RelayError.

Each kind of failure is its own subclass, so callers ``except`` a kind instead
of comparing ``.code`` strings; ``.code`` and ``.message`` stay on every one.
The hierarchy, and when each is raised, is documented in docs/api.rst.
"""

from __future__ import annotations

from typing import Union

Code = Union[str, int]


class RelayError(Exception):
    """A RELAY request or session failed.

    ``code`` is the server's result code (``"404"``, ``"500"``, a JSON-RPC
    error number) or one of relay_sync's own words (``"timeout"``,
    ``"connection_lost"``, ``"closed"``...); ``message`` says what happened.
    """

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class AuthenticationError(RelayError):
    """The server refused the credentials in ``signalwire.connect``."""


class RelayTimeoutError(RelayError, TimeoutError):
    """No answer came in time. Also a ``TimeoutError``, so either ``except`` catches it."""

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


class ConnectionLostError(RelayError):
    """The socket went away before the request was answered.

    The server may or may not have acted on the request: retry only what is
    safe to repeat.
    """

    def __init__(self, message: str = "the connection was lost before the response arrived") -> None:
        super().__init__("connection_lost", message)


class ClientClosedError(RelayError):
    """The client was disconnected (by ``disconnect()`` or a fatal error)."""

    def __init__(self, message: str = "the client is disconnected") -> None:
        super().__init__("closed", message)


class SessionLostError(ConnectionLostError):
    """A reconnect opened a new RELAY session instead of resuming the old one.

    The server forgets the old session's calls and messages, so whatever waited
    on them (an action, a call's end, a message's delivery) will never hear
    more and fails with this.
    """

    def __init__(self, message: str = "the RELAY session was not resumed after a reconnect") -> None:
        RelayError.__init__(self, "session_lost", message)


class ConnectFailedError(RelayError):
    """The client could not connect (``"connect_failed"``; ``"certificate_rejected"`` when the
    server's certificate does not verify) or gave up reconnecting (``"reconnect_failed"``)."""

    def __init__(self, message: str, *, code: str = "connect_failed") -> None:
        super().__init__(code, message)


class NotConnectedError(RelayError):
    """A request was made before ``connect()`` (or ``run()``) opened the client."""

    def __init__(self, message: str = "call connect() (or run()) before sending requests") -> None:
        super().__init__("not_connected", message)


class BacklogFullError(RelayError):
    """The link is down and the backlog of requests waiting for it is full; nothing was queued."""

    def __init__(self, message: str) -> None:
        super().__init__("backlog_full", message)


class CallPassedError(RelayError):
    """The call was handed back to RELAY routing with ``pass_()``; it left this client."""

    def __init__(self, message: str) -> None:
        super().__init__("passed", message)


class DialFailedError(RelayError):
    """A dial or bridge ended without any device answering (busy, no answer, unreachable).

    ``reason`` is the server's word for why, when it gave one: ``busy``,
    ``noAnswer`` (see ``relay_sync.constants``), ``decline``...; ``None`` when it did not say.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__("dial_failed", message)
        self.reason = reason


class CallEndedError(RelayError):
    """The call ended, so what was waited for on it will not come."""

    def __init__(self, message: str) -> None:
        super().__init__("call_ended", message)


class RoomEndedError(RelayError):
    """The video room session ended, so what was waited for in it (a recording's end,
    say) will not be reported."""

    def __init__(self, message: str) -> None:
        super().__init__("room_ended", message)


class RoomActionEndedError(RelayError):
    """A command on a room recording, playback or stream that has already ended."""

    def __init__(self, message: str) -> None:
        super().__init__("action_ended", message)


class RestError(RelayError):
    """A REST request (tasks, JWT, recordings) failed.

    ``status`` (also ``code``) is the HTTP status, or ``0`` when no response
    came (the host could not be reached, or the connection broke or timed
    out). ``body`` is the start of the response body, ``method`` and ``url``
    say which request failed; none of them carry credentials.
    """

    BODY_LIMIT = 500

    def __init__(self, status: int, message: str, *, method: str = "", url: str = "", body: str = "") -> None:
        super().__init__(status, message)
        self.status = status
        self.method = method
        self.url = url
        self.body = body[: self.BODY_LIMIT]


# The link went, or the client closed: a request that failed with one of these is
# not refused, and the next session (if any) starts with a clean slate anyway.
LINK_DOWN_ERRORS: tuple[type[RelayError], ...] = (ConnectionLostError, ClientClosedError, NotConnectedError)
