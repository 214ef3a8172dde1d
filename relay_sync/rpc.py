"""JSON-RPC 2.0 framing for RELAY: request ids, the table of requests awaiting
their response, and the rule that turns a response into a result or a
RelayError.

Futures in the table are resolved by the I/O thread; callers block on them in
their own threads.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from concurrent.futures import Future
from typing import Any

from .errors import AuthenticationError, RelayError
from .futures import fail, settle

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]

CONNECT_METHOD = "signalwire.connect"

# Values of these keys never reach a log line, an exception message or a repr.
SECRET_KEYS = frozenset(
    {"token", "jwt_token", "refresh_token", "project", "project_id", "authorization_state", "identity"}
)
MASK = "***"

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def new_id() -> str:
    return str(uuid.uuid4())


def encode_request(method: str, params: JSONDict, request_id: str | None = None) -> tuple[str, str]:
    """Return ``(id, text)`` of a request frame."""
    request_id = request_id or new_id()
    return request_id, _encode({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def encode_result(request_id: Any, result: JSONDict | None = None) -> str:
    """The answer to a server-initiated request (event ACK, ping, disconnect)."""
    return _encode({"jsonrpc": "2.0", "id": request_id, "result": result if result is not None else {}})


def encode_error(request_id: Any, code: int, message: str) -> str:
    return _encode({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


def masked(value: Any) -> Any:
    """A copy of a frame fit for a log line: secret values replaced by ``***``."""
    if isinstance(value, dict):
        return {k: (MASK if k in SECRET_KEYS else masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def response_result(method: str, frame: JSONDict) -> JSONDict:
    """Apply PROTOCOL.md's result rule to a response frame.

    A JSON-RPC ``error`` object fails; otherwise ``result.code`` must be 2xx
    when present (``signalwire.connect`` is exempt: its result has no code).
    """
    error = frame.get("error")
    if error is not None:
        code: Any = error.get("code", "error") if isinstance(error, dict) else "error"
        message = error.get("message", "request failed") if isinstance(error, dict) else str(error)
        if method == CONNECT_METHOD:
            raise AuthenticationError(code, str(message))
        raise RelayError(code, str(message))
    result = frame.get("result")
    if result is None:
        return {}
    if not isinstance(result, dict):
        return {"result": result}
    if method == CONNECT_METHOD:
        return result
    code = result.get("code")
    if code is None or str(code).startswith("2"):
        return result
    raise RelayError(str(code), str(result.get("message", f"{method} failed")))


class PendingRequest:
    """One request awaiting its response: the frame text and the future it resolves."""

    __slots__ = ("future", "method", "request_id", "text")

    def __init__(self, request_id: str, method: str, text: str) -> None:
        self.request_id = request_id
        self.method = method
        self.text = text
        self.future: Future[JSONDict] = Future()

    def fail(self, error: BaseException) -> None:
        fail(self.future, error)


class PendingTable:
    """Requests sent on the live socket, by id, until their response arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, PendingRequest] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def methods(self) -> list[str]:
        """The methods still awaiting a response (for diagnostics and tests)."""
        with self._lock:
            return [pending.method for pending in self._by_id.values()]

    def add(self, pending: PendingRequest) -> None:
        with self._lock:
            self._by_id[pending.request_id] = pending

    def discard(self, request_id: str) -> None:
        with self._lock:
            self._by_id.pop(request_id, None)

    def resolve(self, frame: JSONDict) -> None:
        """Settle the request a response frame answers (I/O thread)."""
        request_id = frame.get("id")
        with self._lock:
            pending = self._by_id.pop(request_id, None) if isinstance(request_id, str) else None
        if pending is None:
            log.debug("ignoring a response to no pending request (late or unknown id %r)", request_id)
            return
        try:
            result = response_result(pending.method, frame)
        except RelayError as error:
            pending.fail(error)
            return
        settle(pending.future, result)

    def fail_all(self, error: RelayError) -> list[PendingRequest]:
        with self._lock:
            failed = list(self._by_id.values())
            self._by_id.clear()
        for pending in failed:
            pending.fail(error)
        return failed
