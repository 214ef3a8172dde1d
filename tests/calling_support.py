"""Helpers for the calling tests: inbound calls pushed by the test server, and
a server script that plays a call's part (answer → answered, end → ended,
play → playing/finished).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from typing import Any

from relay_sync import Call, RelayClient
from relay_sync.testing import RelayTestServer, ServerSession

JSONDict = dict[str, Any]
WAIT = 2.0  # seconds any single step of a test may take


def new_id() -> str:
    return str(uuid.uuid4())


def receive_params(call_id: str, **overrides: Any) -> JSONDict:
    """The params of a ``calling.call.receive`` event for an inbound call on ``office``."""
    params: JSONDict = {
        "call_id": call_id,
        "node_id": f"node-{call_id[:8]}",
        "project_id": "project-1",
        "context": "office",
        "call_state": "ringing",
        "direction": "inbound",
        "tag": f"tag-{call_id[:8]}",
        "segment_id": f"segment-{call_id[:8]}",
        "device": {"type": "phone", "params": {"from_number": "+15551110000", "to_number": "+15552220000"}},
    }
    params.update(overrides)
    return params


def push_inbound(session: ServerSession, call_id: str | None = None, **overrides: Any) -> str:
    """Announce an inbound call to the client; returns its call_id."""
    call_id = call_id or new_id()
    session.push_event("calling.call.receive", receive_params(call_id, **overrides))
    return call_id


def push_state(session: ServerSession, call_id: str, call_state: str, **extra: Any) -> None:
    params: JSONDict = {"call_id": call_id, "node_id": f"node-{call_id[:8]}", "call_state": call_state}
    params.update(extra)
    session.push_event("calling.call.state", params)


def push_control(session: ServerSession, event_type: str, call_id: str, control_id: str, **params: Any) -> None:
    """Push an operation event (play, record, collect...) for ``control_id``."""
    body: JSONDict = {"call_id": call_id, "node_id": f"node-{call_id[:8]}", "control_id": control_id}
    body.update(params)
    session.push_event(event_type, body)


def script_call_lifecycle(server: RelayTestServer, *, play_finishes: bool = True) -> None:
    """Answer commands the way RELAY does: the state/operation events are pushed
    before the response, so a command's effect is visible when it returns."""

    def answer(session: ServerSession, params: JSONDict) -> JSONDict:
        push_state(session, params["call_id"], "answered")
        return {"code": "200", "message": "Answered"}

    def end(session: ServerSession, params: JSONDict) -> JSONDict:
        push_state(session, params["call_id"], "ending")
        push_state(session, params["call_id"], "ended", end_reason=params.get("reason", "hangup"))
        return {"code": "200", "message": "Ended"}

    def play(session: ServerSession, params: JSONDict) -> JSONDict:
        push_control(session, "calling.call.play", params["call_id"], params["control_id"], state="playing")
        if play_finishes:
            push_control(session, "calling.call.play", params["call_id"], params["control_id"], state="finished")
        return {"code": "200", "message": "Playing"}

    server.respond("calling.answer", handler=answer)
    server.respond("calling.end", handler=end)
    server.respond("calling.play", handler=play)


def inbound_call(client: RelayClient, server: RelayTestServer, **overrides: Any) -> Call:
    """Register a handler that hands the Call to the test thread, push one inbound call, return it."""
    calls: queue.Queue[Call] = queue.Queue()
    client.on_call(calls.put)
    push_inbound(server.session(), **overrides)
    return calls.get(timeout=WAIT)


def params_of(frame: JSONDict) -> JSONDict:
    params: JSONDict = frame["params"]
    return params


class LogSignal(logging.Handler):
    """Collects ``relay_sync`` ERROR records containing ``text`` (from any
    thread) and sets ``seen`` at the first, so a test can wait for a log line
    written on another thread. Use as a context manager."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.ERROR)
        self.text = text
        self.seen = threading.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.records.append(record)
            self.seen.set()

    def __enter__(self) -> LogSignal:
        logging.getLogger("relay_sync").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("relay_sync").removeHandler(self)


def assert_control_id_free(call: Call, control_id: str) -> None:
    """The call no longer holds an action under ``control_id``: starting another one with
    it is allowed (while an action runs, reusing its control_id is a ``ValueError``)."""
    call.play([{"type": "silence", "params": {"duration": 1}}], control_id=control_id)
