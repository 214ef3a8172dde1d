"""JSON-RPC 2.0 framing for RELAY: request ids, the table of requests awaiting
their response, and the rule that turns a response into a result or a
RelayError.

Futures in the table are resolved by the I/O thread; callers block on them in
their own threads.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import Future
from typing import Any

from .errors import AuthenticationError, RelayError
from .futures import fail, settle
from .stats import LatencyHistogram

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]

CONNECT_METHOD = "signalwire.connect"

# Values of these keys never reach a log line, an exception message or a repr.
SECRET_KEYS = frozenset(
    {"token", "jwt_token", "refresh_token", "project", "project_id", "authorization_state", "identity", "signature"}
)
MASK = "***"

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# Strings from the wire may hold anything JSON can, even a lone surrogate ("\ud800")
# that has no UTF-8 form. Answers, which echo the server's request id, are always
# written with \u escapes (real ids are ASCII, where both ways are the same); so are
# the rare requests that send such a string back (see encode_request).
_encode_ascii = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_encode_string = json.encoder.encode_basestring_ascii  # a JSON string literal, as _encode_ascii writes one


# Request and control ids are random (version 4) UUID strings. They come from a
# private generator seeded by os.urandom rather than from uuid.uuid4(): that reads
# os.urandom each time, a system call that hands the GIL to another thread in the
# middle of every request. Ids must be unique, not secret.
_id_source = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_id_source.seed)  # a forked child must not repeat the parent's ids
_random_bits = _id_source.getrandbits
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def new_id() -> str:
    """A new random UUID string."""
    digits = "%032x" % ((_random_bits(128) & _UUID4_CLEAR) | _UUID4_SET)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def encode_request(method: str, params: JSONDict, request_id: str | None = None) -> tuple[str, str]:
    """Return ``(id, text)`` of a request frame."""
    request_id = request_id or new_id()
    frame = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    text = _encode(frame)
    if not text.isascii() and not _utf8_encodable(text):
        # A string from the wire (a call id, an event field sent back) may hold a lone
        # surrogate, which UTF-8 cannot carry: write it as a \u escape instead of
        # failing the request with UnicodeEncodeError when it is framed.
        text = _encode_ascii(frame)
    return request_id, text


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode_result(request_id: Any, result: JSONDict | None = None) -> str:
    """The answer to a server-initiated request (event ACK, ping, disconnect)."""
    if result is None and type(request_id) is str:
        # Every event is ACKed on the I/O thread: skip the general encoder for this one shape.
        return f'{{"jsonrpc":"2.0","id":{_encode_string(request_id)},"result":{{}}}}'
    return _encode_ascii({"jsonrpc": "2.0", "id": request_id, "result": result if result is not None else {}})


def encode_error(request_id: Any, code: int, message: str) -> str:
    return _encode_ascii({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


# Nesting shown in a log line or repr. A frame from the wire may nest as deep as the
# JSON parser allows; copying all of it recursively would overflow the stack.
MASK_DEPTH = 20


def masked(value: Any, depth: int = 0) -> Any:
    """A copy of a frame fit for a log line: secret values replaced by ``***``,
    anything nested deeper than ``MASK_DEPTH`` by ``...``."""
    if isinstance(value, dict):
        if depth >= MASK_DEPTH:
            return "{...}"
        return {k: (MASK if k in SECRET_KEYS else masked(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list):
        if depth >= MASK_DEPTH:
            return "[...]"
        return [masked(v, depth + 1) for v in value]
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


class _SessionProtocol:
    """The type of ``SESSION_PROTOCOL``."""

    def __repr__(self) -> str:
        return "SESSION_PROTOCOL"


# A top-level param value that stands for the protocol of the session the request
# goes out on, filled in by the transport as the frame is written: a request queued
# while reconnecting (or made in a forked child before it connected) cannot know it yet.
SESSION_PROTOCOL: Any = _SessionProtocol()


def takes_session_protocol(params: JSONDict) -> bool:
    return any(value is SESSION_PROTOCOL for value in params.values())


def fill_session_protocol(params: JSONDict, protocol: str | None) -> JSONDict:
    return {name: protocol if value is SESSION_PROTOCOL else value for name, value in params.items()}


class PendingRequest:
    """One request awaiting its response: the frame text and the future it resolves.

    ``unfilled`` holds the params while they still wait for ``SESSION_PROTOCOL``
    to be filled in (``text`` is empty until then).
    """

    __slots__ = ("future", "method", "protocol", "request_id", "sent_at", "text", "unfilled")

    def __init__(self, request_id: str, method: str, text: str, unfilled: JSONDict | None = None) -> None:
        self.request_id = request_id
        self.method = method
        self.text = text
        self.unfilled = unfilled
        self.protocol: str | None = None  # what SESSION_PROTOCOL was filled with
        self.sent_at = 0.0  # monotonic time it went on the wire (set by PendingTable.add)
        self.future: Future[JSONDict] = Future()

    def fill(self, protocol: str | None) -> None:
        """Write the frame text, with ``protocol`` for every ``SESSION_PROTOCOL`` param."""
        if self.unfilled is not None:
            _, self.text = encode_request(self.method, fill_session_protocol(self.unfilled, protocol), self.request_id)
            self.protocol = protocol
            self.unfilled = None

    @property
    def sent(self) -> bool:
        """True once it went out on a live socket; False while it waits in the reconnect backlog."""
        return self.sent_at > 0.0

    def fail(self, error: BaseException) -> None:
        fail(self.future, error)


class PendingTable:
    """Requests sent on the live socket, by id, until their response arrives.

    It also counts what became of them: how many failed (an error answer, or
    the link lost under them) and how long answers took (``latency``), for
    ``RelayClient.stats()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, PendingRequest] = {}
        self.failed = 0
        self.latency = LatencyHistogram()

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, pending: PendingRequest) -> None:
        pending.sent_at = time.monotonic()
        with self._lock:
            self._by_id[pending.request_id] = pending

    def discard(self, request_id: str) -> bool:
        """Forget a request without settling it; True if it was still waiting."""
        with self._lock:
            return self._by_id.pop(request_id, None) is not None

    def resolve(self, frame: JSONDict) -> None:
        """Settle the request a response frame answers (I/O thread)."""
        request_id = frame.get("id")
        now = time.monotonic()
        with self._lock:
            pending = self._by_id.pop(request_id, None) if isinstance(request_id, str) else None
            if pending is not None:
                self.latency.observe(now - pending.sent_at)
        if pending is None:
            log.debug("ignoring a response to no pending request (late or unknown id %r)", request_id)
            return
        try:
            result = response_result(pending.method, frame)
        except RelayError as error:
            with self._lock:
                self.failed += 1
            pending.fail(error)
            return
        settle(pending.future, result)

    def fail_all(self, error: RelayError) -> None:
        with self._lock:
            failed = list(self._by_id.values())
            self._by_id.clear()
            self.failed += len(failed)
        for pending in failed:
            pending.fail(error)

    def fail_some(self, requests: list[PendingRequest], error: RelayError) -> None:
        """Fail these requests (a write of them failed); those already settled stay as they are."""
        with self._lock:
            for pending in requests:
                if self._by_id.pop(pending.request_id, None) is not None:
                    self.failed += 1
        for pending in requests:
            pending.fail(error)

    def snapshot(self) -> dict[str, Any]:
        """Counts for ``stats()``, taken together."""
        with self._lock:
            return {
                "in_flight": len(self._by_id),
                "in_flight_methods": dict(Counter(pending.method for pending in self._by_id.values())),
                "failed": self.failed,
                "latency": self.latency.snapshot(),
                "last_rtt": self.latency.last,
            }
