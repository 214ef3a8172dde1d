"""The fault matrix, call rows: handlers that outlive their calls or take every
handler thread (calls beyond capacity are passed back, always), handlers that
raise (their call is hung up), a dial whose leg is answered after it timed
out or failed (the late leg is hung up), and a handler of one client
disconnecting another client (which still waits for its own handlers)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from relay_sync import Call, ClientClosedError, Message, RelayClient, RelayError, RelayTimeoutError
from relay_sync.testing import RelayEmulator, RelayTestServer, ServerSession

from ..calling_support import LogSignal, new_id, push_inbound, push_state, script_call_lifecycle
from ..emulator_support import CALLER, OFFICE, TIME_FACTOR, Connect
from .support import STEP, outcome_of, phone, run_in_thread

MakeClient = Callable[..., RelayClient]


@pytest.fixture
def emulator() -> Iterator[RelayEmulator]:
    # Calls ring for STEP real seconds before noAnswer: a loaded machine still answers in time.
    with RelayEmulator(time_factor=TIME_FACTOR, ring_timeout=STEP / TIME_FACTOR) as running:
        yield running


def passed_call_ids(server: RelayTestServer) -> list[str]:
    return [frame["params"]["call_id"] for frame in server.requests("calling.pass")]


class WarningSignal(logging.Handler):
    """Collects relay_sync WARNING records containing ``text``, from any thread."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.text = text
        self.records: queue.Queue[logging.LogRecord] = queue.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING and self.text in record.getMessage():
            self.records.put(record)

    def __enter__(self) -> WarningSignal:
        logging.getLogger("relay_sync").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("relay_sync").removeHandler(self)

    def next(self) -> str:
        return self.records.get(timeout=STEP).getMessage()


# -- capacity: a call reaches a handler only if a slot is free now -----------------------


def test_handlers_busy_after_their_calls_ended_still_count(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect(max_active_calls=2)
    post_call_work = threading.Event()
    in_post_call: queue.Queue[str] = queue.Queue()
    handled: list[str] = []

    @client.on_call
    def handle(call: Call) -> None:
        handled.append(call.call_id)
        call.answer()
        call.wait_for_ended(timeout=STEP)  # the caller hangs up...
        in_post_call.put(call.call_id)
        post_call_work.wait(STEP * 2)  # ...and the handler goes on with its notes, CRM update...

    first = emulator.place_call(OFFICE, CALLER, context="office")
    second = emulator.place_call(OFFICE, CALLER, context="office")
    for handle_ in (first, second):
        handle_.wait_answered(timeout=STEP)
        handle_.hangup()
    assert {in_post_call.get(timeout=STEP), in_post_call.get(timeout=STEP)} == {first.call_id, second.call_id}

    # No call is live, but both handler slots are busy: the next call goes back to routing.
    third = emulator.place_call(OFFICE, CALLER, context="office")
    emulator.wait_for_request("calling.pass", lambda params: params.get("call_id") == third.call_id)
    assert third.call_id not in handled  # it rings on for another client (there is none here)
    stats = client.stats()
    assert (stats["active_calls"], stats["handlers_busy"], stats["calls_passed"]) == (0, 2, 1)

    post_call_work.set()  # the handlers return: their slots are free again
    fourth = _place_until_taken(emulator, handled)
    fourth.wait_answered(timeout=STEP)
    fourth.hangup()
    assert passed_call_ids(emulator).count(fourth.call_id) == 0


def _place_until_taken(emulator: RelayEmulator, handled: list[str]) -> Any:
    """Place calls until one reaches the handler: the handlers' slots come free a
    moment after they returned, which the test cannot observe directly."""
    for _ in range(20):
        handle = emulator.place_call(OFFICE, CALLER, context="office")
        outcome = emulator.wait_for_journal(
            lambda e, call_id=handle.call_id: (
                e.direction == "recv"
                and isinstance(e.frame, dict)
                and e.frame.get("method") in ("calling.pass", "calling.answer")
                and e.frame["params"].get("call_id") == call_id
            ),
            timeout=STEP,
        )
        if outcome.frame["method"] == "calling.answer":
            assert handle.call_id in handled
            return handle
    raise AssertionError("no call was taken after the handlers returned")


def test_a_call_is_passed_when_other_work_holds_every_handler_thread(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect(max_active_calls=1)  # 1 call handler + 4 threads of headroom
    release = threading.Event()
    busy: queue.Queue[str] = queue.Queue()
    handled: list[str] = []

    @client.on_message
    def slow_message(message: Message) -> None:
        busy.put(message.message_id or "")
        release.wait(STEP * 2)

    @client.on_call
    def handle(call: Call) -> None:
        handled.append(call.call_id)
        call.answer()
        call.hangup()

    for n in range(5):  # as many slow message handlers as the pool has threads
        emulator.send_sms(OFFICE, CALLER, f"message {n}", context="office")
    for _ in range(5):
        busy.get(timeout=STEP)

    with WarningSignal("every handler thread is busy") as warnings:
        waiting = emulator.place_call(OFFICE, CALLER, context="office")
        emulator.wait_for_request("calling.pass", lambda params: params.get("call_id") == waiting.call_id)
        assert waiting.call_id in warnings.next()
    assert handled == []  # it never sat in the queue behind the messages
    stats = client.stats()
    assert (stats["handlers_busy"], stats["handler_threads"], stats["calls_passed"]) == (5, 5, 1)

    release.set()
    taken = _place_until_taken(emulator, handled)
    assert taken.wait_ended(timeout=STEP) == "hangup"


# -- a handler that raises hangs its call up ---------------------------------------------


def test_a_raising_handler_has_its_call_hung_up(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()

    @client.on_call
    def handle(call: Call) -> None:
        call.answer()
        raise RuntimeError("the CRM lookup failed")

    with LogSignal("raised for call") as errors:
        handle_ = emulator.place_call(OFFICE, CALLER, context="office")
        assert handle_.wait_ended(timeout=STEP) == "hangup"
        assert errors.seen.wait(STEP)
    record = errors.records[0]
    assert handle_.call_id in record.getMessage()
    assert "hanging the call up" in record.getMessage()
    assert record.exc_info is not None and "the CRM lookup failed" in str(record.exc_info[1])
    assert "app: hung up (hangup)" in handle_.lines()  # the SDK hung up, not the caller
    assert emulator.active_calls == 0


def test_a_raising_handler_whose_call_is_already_gone_hangs_nothing_up(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    script_call_lifecycle(server)
    client = make_client(contexts=["office"])
    session = server.session()

    @client.on_call
    def handle(call: Call) -> None:
        call.answer()
        call.wait_for_ended(timeout=STEP)
        raise RuntimeError("post-call work failed")

    with LogSignal("raised for call") as errors:
        call_id = push_inbound(session)
        server.wait_for_request("calling.answer")
        push_state(session, call_id, "ended", end_reason="hangup")
        assert errors.seen.wait(STEP)
    assert "hanging" not in errors.records[0].getMessage()
    everything_sent_has_arrived(client)
    assert server.requests("calling.end") == []


# -- late legs of dials that already failed or timed out ----------------------------------


def _dial_answered_late(server: RelayTestServer) -> queue.Queue[tuple[ServerSession, str]]:
    """``calling.dial`` is accepted, and then nothing: the test plays the network's part."""
    dials: queue.Queue[tuple[ServerSession, str]] = queue.Queue()

    def dial(session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        dials.put((session, params["tag"]))
        return {"code": "200", "message": "Dialing"}

    server.respond("calling.dial", handler=dial)
    return dials


def everything_sent_has_arrived(client: RelayClient) -> None:
    """Once a first round trip is back, the client has handled every event pushed
    before it; the server reads what that made the client send before the second."""
    client.execute("probe.handled", {}, timeout=STEP)
    client.execute("probe.arrived", {}, timeout=STEP)


def _hang_ups(server: RelayTestServer, call_id: str) -> list[dict[str, Any]]:
    return [f for f in server.requests("calling.end") if f["params"].get("call_id") == call_id]


def test_a_leg_answered_after_its_dial_timed_out_is_hung_up(server: RelayTestServer, make_client: MakeClient) -> None:
    dials = _dial_answered_late(server)
    client = make_client()
    with pytest.raises(RelayTimeoutError):
        client.dial([[phone("+15553330000")]], dial_timeout=0.2)
    session, tag = dials.get(timeout=STEP)

    late = new_id()
    with WarningSignal("showed up for dial") as warnings:
        # The network creates and answers the leg after the client gave up on it.
        push_state(session, late, "created", tag=tag, direction="outbound")
        push_state(session, late, "answered", tag=tag, direction="outbound")
        leg = {"call_id": late, "node_id": f"node-{late[:8]}", "tag": tag}
        session.push_event("calling.call.dial", {"tag": tag, "dial_state": "answered", "call": leg})
        hang_up = server.wait_for_request("calling.end", lambda params: params.get("call_id") == late)
        message = warnings.next()
    assert hang_up["params"] == {"node_id": f"node-{late[:8]}", "call_id": late, "reason": "cancel"}
    assert late in message and tag in message and "timed out" in message
    everything_sent_has_arrived(client)
    assert len(_hang_ups(server, late)) == 1  # once, although three events named it


def test_a_leg_that_shows_up_after_its_dial_failed_is_hung_up(server: RelayTestServer, make_client: MakeClient) -> None:
    dials = _dial_answered_late(server)
    client = make_client()
    dialing = run_in_thread(lambda: client.dial([[phone("+15553330000")]], dial_timeout=STEP))
    session, tag = dials.get(timeout=STEP)
    session.push_event("calling.call.dial", {"tag": tag, "dial_state": "failed"})
    assert isinstance(outcome_of(dialing), RelayError)

    late = new_id()
    with WarningSignal("showed up for dial") as warnings:
        push_state(session, late, "answered", tag=tag, direction="outbound")
        server.wait_for_request("calling.end", lambda params: params.get("call_id") == late)
        assert "failed" in warnings.next()
    # A leg of someone else's dial, or one that already ended, is left alone.
    stranger, ended = new_id(), new_id()
    push_state(session, stranger, "answered", tag="not-ours", direction="outbound")
    push_state(session, ended, "ended", tag=tag, direction="outbound")
    everything_sent_has_arrived(client)
    assert _hang_ups(server, stranger) == [] and _hang_ups(server, ended) == []


def test_finished_dial_tags_are_kept_bounded(
    server: RelayTestServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("relay_sync.dialing.FINISHED_DIALS_KEPT", 3)
    monkeypatch.setattr("relay_sync.dialing.LATE_LEGS_PER_DIAL", 2)
    dials = _dial_answered_late(server)
    client = make_client()
    tags = []
    for _ in range(5):
        with pytest.raises(RelayTimeoutError):
            client.dial([[phone("+15553330000")]], dial_timeout=0.05)
        session, tag = dials.get(timeout=STEP)
        tags.append(tag)

    forgotten, remembered = new_id(), new_id()
    push_state(session, forgotten, "answered", tag=tags[0], direction="outbound")  # the oldest: forgotten
    push_state(session, remembered, "answered", tag=tags[-1], direction="outbound")
    server.wait_for_request("calling.end", lambda params: params.get("call_id") == remembered)
    assert _hang_ups(server, forgotten) == []  # its event was handled first, and left alone

    # A server inventing call ids under one tag gets at most LATE_LEGS_PER_DIAL hang-ups.
    invented = [new_id() for _ in range(3)]
    for call_id in invented:
        push_state(session, call_id, "answered", tag=tags[-1], direction="outbound")
    server.wait_for_request("calling.end", lambda params: params.get("call_id") == invented[0])
    everything_sent_has_arrived(client)
    assert [len(_hang_ups(server, call_id)) for call_id in invented] == [1, 0, 0]  # 2 in all with `remembered`


# -- one client's handler disconnecting another client ---------------------------------------


def test_a_handler_of_one_client_disconnecting_another_waits_for_its_handlers(
    emulator: RelayEmulator, connect: Connect
) -> None:
    front = connect(contexts=("front",))
    back = connect(contexts=("back",))
    back_answered = threading.Event()
    back_woken: queue.Queue[BaseException] = queue.Queue()
    back_may_finish = threading.Event()
    back_finished = threading.Event()
    seen_by_front: queue.Queue[bool] = queue.Queue()

    @back.on_call
    def back_handler(call: Call) -> None:
        call.answer()
        back_answered.set()
        try:
            call.wait_for_ended()  # no timeout: only disconnect() ends it
        except ClientClosedError as error:
            back_woken.put(error)
        back_may_finish.wait(STEP * 2)  # its clean-up takes a while
        back_finished.set()

    @front.on_call
    def front_handler(call: Call) -> None:
        back.disconnect()  # from a handler thread of *another* client
        seen_by_front.put(back_finished.is_set())

    emulator.place_call(OFFICE, CALLER, context="back")
    assert back_answered.wait(STEP)
    emulator.place_call(OFFICE, CALLER, context="front")
    assert isinstance(back_woken.get(timeout=STEP), ClientClosedError)
    back_may_finish.set()
    # back.disconnect() returned only once back's handler had finished.
    assert seen_by_front.get(timeout=STEP) is True
