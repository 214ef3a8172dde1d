"""Shared pieces of the fault matrix: a server that plays the network's part
(calls, dials, messages), an on_call desk that records what each handler did,
and the checks every fault test ends with: nothing hangs, no table keeps what
it should have let go, and the client is connected again and serves calls.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, Callable

from relay_sync import Call, RelayClient, RelayError, RelayTimeoutError
from relay_sync.client import POOL_HEADROOM
from relay_sync.messaging import EARLY_EVENT_MAX_IDS
from relay_sync.testing import RelayTestServer, ServerSession

from ..calling_support import new_id, push_control, push_inbound, push_state, script_call_lifecycle

JSONDict = dict[str, Any]

# Seconds any one step may take. Generous: the suite runs on loaded CI machines.
STEP = 5.0
OFFICE_NUMBER = "+15552220000"


def phone(number: str) -> JSONDict:
    return {"type": "phone", "params": {"to_number": number, "from_number": OFFICE_NUMBER}}


# -- the server's side ------------------------------------------------------------


def script_dial(server: RelayTestServer) -> None:
    """``calling.dial``: the leg is created and answered, and the dial reports the
    winner, all ahead of the response (a drop in between loses the rest)."""

    def dial(session: ServerSession, params: JSONDict) -> JSONDict:
        tag, call_id = params["tag"], new_id()
        push_state(session, call_id, "created", tag=tag, direction="outbound")
        push_state(session, call_id, "answered", tag=tag, direction="outbound")
        leg = {"call_id": call_id, "node_id": f"node-{call_id[:8]}", "tag": tag, "dial_winner": True}
        session.push_event("calling.call.dial", {"tag": tag, "dial_state": "answered", "call": leg})
        return {"code": "200", "message": "Dialing"}

    server.respond("calling.dial", handler=dial)


def script_messaging(server: RelayTestServer) -> None:
    """``messaging.send``: the message goes queued → sent → delivered ahead of the response."""

    def send(session: ServerSession, params: JSONDict) -> JSONDict:
        message_id = new_id()
        for state in ("queued", "sent", "delivered"):
            session.push_event("messaging.state", {"message_id": message_id, "message_state": state})
        return {"code": "200", "message": "Message accepted", "message_id": message_id}

    server.respond("messaging.send", handler=send)


def script_everything(server: RelayTestServer) -> None:
    script_call_lifecycle(server)
    script_dial(server)
    script_messaging(server)


def end_call(session: ServerSession, call_id: str) -> None:
    """The far end hangs up."""
    push_state(session, call_id, "ended", end_reason="hangup")


def finish_play(session: ServerSession, call_id: str, control_id: str) -> None:
    push_control(session, "calling.call.play", call_id, control_id, state="finished")


def current_session(client: RelayClient, server: RelayTestServer) -> ServerSession:
    """The server's side of the session the client is on now (found by sending it a probe)."""
    marker = new_id()
    client.execute("probe.session", {"marker": marker}, timeout=STEP)
    entry = server.wait_for_journal(
        lambda e: (
            e.direction == "recv"
            and isinstance(e.frame, dict)
            and e.frame.get("method") == "probe.session"
            and e.frame["params"].get("marker") == marker
        )
    )
    return next(s for s in server.sessions if s.number == entry.session)


# -- the client's side -------------------------------------------------------------


class CallDesk:
    """An ``on_call`` handler that answers, plays a prompt, and hangs up, recording
    each call's outcome ("done", or the RelayError it met) by call id.

    ``gate`` holds every handler before it answers (set: no hold), so a test can
    fill the client to capacity; ``work(call)`` replaces the default script.
    """

    def __init__(self, client: RelayClient, work: Callable[[Call], Any] | None = None) -> None:
        self.client = client
        self.gate = threading.Event()
        self.gate.set()
        self.work = work or answer_play_hang_up
        self.arrived: list[str] = []
        self.outcomes: dict[str, Any] = {}
        self.peak_calls = 0
        self._changed = threading.Condition()
        client.on_call(self._handle)

    def _handle(self, call: Call) -> None:
        with self._changed:
            self.arrived.append(call.call_id)
            self.peak_calls = max(self.peak_calls, self.client.stats()["active_calls"])
            self._changed.notify_all()
        outcome: Any
        if not self.gate.wait(STEP * 2):
            outcome = TimeoutError("the test never opened the gate")
        else:
            try:
                self.work(call)
                outcome = "done"
            except RelayError as error:
                outcome = error
        with self._changed:
            self.outcomes[call.call_id] = outcome
            self._changed.notify_all()

    def wait_arrived(self, count: int, timeout: float = STEP) -> list[str]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.arrived) >= count, timeout):
                raise TimeoutError(f"{len(self.arrived)} of {count} calls reached the handler")
            return list(self.arrived)

    def wait_outcomes(self, call_ids: Iterable[str], timeout: float = STEP) -> dict[str, Any]:
        wanted = list(call_ids)
        with self._changed:
            if not self._changed.wait_for(lambda: all(c in self.outcomes for c in wanted), timeout):
                missing = [c for c in wanted if c not in self.outcomes]
                raise TimeoutError(f"{len(missing)} handler(s) still running: {missing[:3]}")
            return {c: self.outcomes[c] for c in wanted}

    def serve_new_call(self, server: RelayTestServer) -> None:
        """A fresh inbound call is taken, answered, played to and hung up."""
        session = current_session(self.client, server)
        call_id = push_inbound(session)
        assert self.wait_outcomes([call_id]) == {call_id: "done"}


def answer_play_hang_up(call: Call) -> None:
    call.answer()
    call.play([{"type": "tts", "params": {"text": "hello"}}]).wait(timeout=STEP)
    call.hangup()
    call.wait_for_ended(timeout=STEP)


def run_in_thread(fn: Callable[[], Any], name: str = "test-worker") -> Future[Any]:
    """Run ``fn`` in a plain (non-daemon) thread; its outcome lands in the returned future."""
    outcome: Future[Any] = Future()

    def target() -> None:
        try:
            outcome.set_result(fn())
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.set_exception(error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return outcome


def woken_with_error(wait: Callable[[], Any]) -> RelayError:
    """Run a blocking ``wait``: it must end with a RelayError that is not a timeout,
    i.e. the fault woke it up instead of leaving it to run out its clock."""
    try:
        wait()
    except RelayTimeoutError as error:
        raise AssertionError(f"waited out its timeout instead of being woken: {error}") from None
    except RelayError as error:
        return error
    raise AssertionError("the wait succeeded; it should have failed")


def outcome_of(future: Future[Any], timeout: float = STEP) -> Any:
    """What ``future`` settled with: its result, or the exception it failed with."""
    error = future.exception(timeout)
    return error if error is not None else future.result()


# -- the checks every fault test ends with -------------------------------------------


def relay_thread_count() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("relay_sync"))


def thread_ceiling(client: RelayClient) -> int:
    """relay_sync threads one client may run: the handler pool, the I/O thread and the timer thread."""
    return client.max_active_calls + POOL_HEADROOM + 2


def assert_tables_settled(client: RelayClient, *, calls: int = 0) -> None:
    """No request, dial, message or call is held beyond what the test still has open."""
    stats = client.stats()
    assert {method: n for method, n in stats["in_flight_methods"].items() if method != "signalwire.ping"} == {}
    assert stats["backlog"] == 0
    assert stats["active_calls"] == calls
    assert stats["inbound_calls"] <= min(calls, client.max_active_calls)
    assert stats["dials_pending"] == 0
    assert stats["messages_pending"] == 0
    assert stats["early_message_ids"] <= EARLY_EVENT_MAX_IDS
    assert relay_thread_count() <= thread_ceiling(client)


def assert_serves(client: RelayClient, server: RelayTestServer, desk: CallDesk | None = None) -> None:
    """Connected again: a request completes, and (with a desk) a new inbound call is served."""
    marker = str(uuid.uuid4())
    assert client.execute("after.fault", {"marker": marker}, timeout=STEP)["code"] == "200"
    assert client.connected
    if desk is not None:
        desk.serve_new_call(server)
