"""Inbound calls through the real transport: handlers on the pool, the Call's
fields and commands, state, capacity, and the call table."""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import wait as wait_futures
from typing import Any, Callable

import pytest

from relay_sync import Call, CallPassedError, RelayClient, RelayError, RelayTimeoutError, SessionLostError
from relay_sync.events import CallStateEvent, RelayEvent
from relay_sync.testing import RelayTestServer

from .calling_support import (
    WAIT,
    LogSignal,
    assert_control_id_free,
    inbound_call,
    new_id,
    params_of,
    push_inbound,
    push_state,
    script_call_lifecycle,
)
from .polling import wait_until

MakeClient = Callable[..., RelayClient]


def test_handler_gets_a_call_with_the_event_fields(client: RelayClient, server: RelayTestServer) -> None:
    seen: queue.Queue[tuple[Call, str]] = queue.Queue()

    @client.on_call
    def handle(call: Call) -> None:
        seen.put((call, threading.current_thread().name))

    call_id = push_inbound(server.session())
    call, thread_name = seen.get(timeout=WAIT)

    assert call.call_id == call_id
    assert call.node_id == f"node-{call_id[:8]}"
    assert call.project_id == "project-1"
    assert call.context == "office"
    assert call.context != client.relay_protocol
    assert call.tag == f"tag-{call_id[:8]}"
    assert call.segment_id == f"segment-{call_id[:8]}"
    assert call.direction == "inbound"
    assert call.state == "ringing"
    assert call.device["params"]["from_number"] == "+15551110000"
    assert thread_name.startswith("relay_sync-handler")
    assert client.stats()["active_calls"] == 1


def test_answer_hangup_and_pass_send_their_frames(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)
    ids = {"node_id": call.node_id, "call_id": call.call_id}

    assert call.answer() == {"code": "200", "message": "OK"}
    assert params_of(server.requests("calling.answer")[-1]) == ids
    call.answer(sip_headers=[{"name": "X-Test", "value": "1"}])
    assert params_of(server.requests("calling.answer")[-1]) == {
        **ids,
        "sip_headers": [{"name": "X-Test", "value": "1"}],
    }

    call.hangup()
    assert params_of(server.requests("calling.end")[-1]) == {**ids, "reason": "hangup"}
    call.hangup("busy")
    assert params_of(server.requests("calling.end")[-1])["reason"] == "busy"

    other = inbound_call(client, server)
    other.pass_()
    assert params_of(server.requests("calling.pass")[-1]) == {"node_id": other.node_id, "call_id": other.call_id}
    # A passed call has left this client: it is out of the table and its waits end.
    with pytest.raises(CallPassedError) as excinfo:
        other.wait_for_ended(timeout=WAIT)
    assert excinfo.value.code == "passed"
    assert client.stats()["active_calls"] == 1  # only the first call is held


def test_state_events_move_the_call_and_end_it(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)
    states: queue.Queue[tuple[str | None, str]] = queue.Queue()
    call.on("calling.call.state", lambda event: states.put((event.state, threading.current_thread().name)))
    session = server.session()

    push_state(session, call.call_id, "answered")
    first_state, first_thread = states.get(timeout=WAIT)
    assert first_state == "answered" and call.state == "answered"

    push_state(session, call.call_id, "ending")
    push_state(session, call.call_id, "ended", end_reason="hangup")
    ended = call.wait_for_ended(timeout=WAIT)

    assert isinstance(ended, CallStateEvent)
    assert ended.end_reason == "hangup"
    assert call.state == "ended"
    assert call.ended.result(0) is ended
    assert client.stats()["active_calls"] == 0
    received = [(first_state, first_thread)] + [states.get(timeout=WAIT) for _ in range(2)]
    assert [state for state, _ in received] == ["answered", "ending", "ended"]  # in order, on the pool
    assert all(name.startswith("relay_sync-handler") for _, name in received)


def test_many_calls_in_parallel_keep_their_own_state(client: RelayClient, server: RelayTestServer) -> None:
    script_call_lifecycle(server)
    results: queue.Queue[tuple[str, str | None, str | None, dict[str, Any]]] = queue.Queue()

    @client.on_call
    def handle(call: Call) -> None:
        call.answer()
        answered_state = call.state
        call.hangup()
        results.put((call.call_id, answered_state, call.wait_for_ended(timeout=WAIT).call_id, call.device))

    count = 50
    session = server.session()
    call_ids = [push_inbound(session, to_number=f"+1555000{n:04d}") for n in range(count)]
    outcomes = {
        call_id: (state, ended_id) for call_id, state, ended_id, _ in (results.get(timeout=WAIT) for _ in call_ids)
    }

    assert set(outcomes) == set(call_ids)
    for call_id, (state, ended_id) in outcomes.items():
        assert state == "answered"
        assert ended_id == call_id
    ended_frames = {params_of(f)["call_id"] for f in server.requests("calling.end")}
    assert ended_frames == set(call_ids)
    assert client.stats()["active_calls"] == 0


def test_a_raising_handler_is_logged_and_the_rest_go_on(client: RelayClient, server: RelayTestServer) -> None:
    handled: queue.Queue[str] = queue.Queue()

    @client.on_call
    def handle(call: Call) -> None:
        if call.context == "broken":
            raise RuntimeError("handler bug")
        handled.put(call.call_id)

    session = server.session()
    with LogSignal("raised for call") as signal:
        broken = push_inbound(session, context="broken")
        fine = push_inbound(session)
        assert handled.get(timeout=WAIT) == fine
        assert signal.seen.wait(WAIT)
    client.execute("signalwire.ping", {})  # the client still serves requests

    assert broken in signal.records[0].getMessage() and signal.records[0].exc_info is not None


def test_no_handler_leaves_the_call_alone(
    client: RelayClient, server: RelayTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    session = server.session()
    with caplog.at_level(logging.WARNING, logger="relay_sync"):
        ignored = push_inbound(session)
        # Frames are handled in order: once the ping's response is back, the
        # event pushed before it has been handled (and the call left alone).
        client.execute("signalwire.ping", {})
        later = inbound_call(client, server)

    assert any(ignored in r.getMessage() and "no on_call handler" in r.getMessage() for r in caplog.records)
    assert client.stats()["active_calls"] == 1  # only the later call is held: its end empties the table
    push_state(server.session(), later.call_id, "ended")
    later.wait_for_ended(timeout=WAIT)
    assert client.stats()["active_calls"] == 0
    assert server.requests("calling.pass") == [] and server.requests("calling.answer") == []


class HandlerReturned(logging.Handler):
    """Set once the SDK logs that the on_call handler of ``call_id`` returned (it logs
    that after releasing the handler's slot): the test waits on the return itself."""

    def __init__(self, call_id: str) -> None:
        super().__init__(logging.DEBUG)
        self.expected = f"on_call handler for call {call_id!r} returned"
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.expected:
            self.seen.set()


def test_calls_over_capacity_are_passed_back(
    make_client: MakeClient, server: RelayTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(contexts=["office"], max_active_calls=2)
    started: queue.Queue[Call] = queue.Queue()

    @client.on_call
    def handle(call: Call) -> None:
        started.put(call)
        call.wait_for_ended(timeout=WAIT)

    session = server.session()
    first, second = push_inbound(session), push_inbound(session)
    calls = {call.call_id: call for call in (started.get(timeout=WAIT), started.get(timeout=WAIT))}
    assert set(calls) == {first, second}

    with caplog.at_level(logging.WARNING, logger="relay_sync"):
        third = push_inbound(session)
        passed = server.wait_for_request("calling.pass", timeout=WAIT)
    assert params_of(passed) == {"node_id": f"node-{third[:8]}", "call_id": third}
    assert any(third in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert client.stats()["active_calls"] == 2  # the passed call never entered the table
    assert client.stats()["calls_passed"] == 1

    # One call ends and its handler returns: a slot frees up and the next call is handled again.
    returned = HandlerReturned(first)
    calls_logger = logging.getLogger("relay_sync.calls")
    with caplog.at_level(logging.DEBUG, logger="relay_sync.calls"):
        calls_logger.addHandler(returned)
        try:
            push_state(session, first, "ended")
            calls[first].wait_for_ended(timeout=WAIT)
            assert returned.seen.wait(timeout=WAIT)
        finally:
            calls_logger.removeHandler(returned)
    fourth = push_inbound(session)
    assert started.get(timeout=WAIT).call_id == fourth
    assert len(server.requests("calling.pass")) == 1
    push_state(session, second, "ended")
    push_state(session, fourth, "ended")


def test_ended_call_leaves_the_table_and_releases_its_actions(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)
    play = call.play([{"type": "tts", "params": {"text": "hold on"}}])
    record = call.record({"format": "mp3"})

    push_state(server.session(), call.call_id, "ended", end_reason="hangup")

    for action in (play, record):
        event = action.wait(timeout=WAIT)
        assert event.state == "ended" and isinstance(event, CallStateEvent)
        assert action.is_done and not action.completed
    assert client.stats()["active_calls"] == 0
    assert_control_id_free(call, play.control_id)
    assert_control_id_free(call, record.control_id)
    with pytest.raises(RelayError) as excinfo:
        call.wait_for("calling.call.play", timeout=WAIT)
    assert excinfo.value.code == "call_ended"


def test_wait_for_matches_a_predicate_and_times_out(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)
    waited: queue.Queue[RelayEvent] = queue.Queue()
    worker = threading.Thread(
        target=lambda: waited.put(call.wait_for("calling.call.state", lambda e: e.state == "answered", timeout=WAIT))
    )
    worker.start()
    wait_until(lambda: call.waiting == 1, WAIT, "the wait_for in place")  # so the events surely come after it
    session = server.session()
    push_state(session, call.call_id, "ringing")  # the predicate says no
    push_state(session, call.call_id, "answered")
    worker.join(WAIT)

    assert waited.get(timeout=WAIT).state == "answered"
    assert call.waiting == 0
    with pytest.raises(TimeoutError):
        call.wait_for("calling.call.play", timeout=0.05)
    assert call.waiting == 0


def test_a_handler_blocking_on_commands_while_100_calls_run_does_not_deadlock(
    client: RelayClient, server: RelayTestServer
) -> None:
    script_call_lifecycle(server)
    waiting: queue.Queue[Call] = queue.Queue()
    done: queue.Queue[str] = queue.Queue()

    @client.on_call
    def handle(call: Call) -> None:
        if call.context == "busy":  # 100 calls that stay up, each holding a pool worker
            waiting.put(call)
            call.wait_for_ended(timeout=10)
            return
        call.answer()
        call.play([{"type": "tts", "params": {"text": "hello"}}]).wait(timeout=WAIT)
        call.hangup()
        done.put(call.call_id)

    session = server.session()
    busy = [push_inbound(session, context="busy") for _ in range(100)]
    busy_calls = [waiting.get(timeout=WAIT) for _ in busy]
    assert {call.call_id for call in busy_calls} == set(busy)

    active = push_inbound(session)
    assert done.get(timeout=WAIT) == active
    assert client.stats()["active_calls"] == len(busy)  # the hung-up call left the table

    for call_id in busy:
        push_state(session, call_id, "ended")
    done_waiting, _ = wait_futures([call.ended for call in busy_calls], timeout=WAIT)
    assert len(done_waiting) == len(busy_calls)
    assert client.stats()["active_calls"] == 0


def test_a_200_call_burst_ends_every_call_and_empties_the_table(client: RelayClient, server: RelayTestServer) -> None:
    script_call_lifecycle(server)
    ended: queue.Queue[RelayEvent] = queue.Queue()

    @client.on_call
    def handle(call: Call) -> None:
        call.answer()
        call.play([{"type": "silence", "params": {"duration": 0.1}}]).wait(timeout=5)
        call.hangup()
        ended.put(call.wait_for_ended(timeout=5))

    session = server.session()
    call_ids = [push_inbound(session) for _ in range(200)]
    ended_ids = {ended.get(timeout=10).call_id for _ in call_ids}

    assert ended_ids == set(call_ids)
    assert client.stats()["active_calls"] == 0  # the inbound calls among them too
    assert len(server.requests("calling.end")) == 200


def test_commands_on_a_gone_call_return_an_empty_result(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)
    server.respond("calling.answer", code="404", message="call not found")
    server.respond("calling.end", code="410", message="call gone")
    server.respond("calling.hold", code="500", message="boom")

    assert call.answer() == {}
    assert call.hangup() == {}
    with pytest.raises(RelayError) as excinfo:
        call.hold()
    assert excinfo.value.code == "500"


def test_disconnect_fails_what_still_waits(make_client: MakeClient, server: RelayTestServer) -> None:
    client = make_client(contexts=["office"])
    call = inbound_call(client, server)
    play = call.play([{"type": "tts", "params": {"text": "long"}}])

    client.disconnect()

    with pytest.raises(RelayError):
        play.wait(timeout=WAIT)
    with pytest.raises(RelayError):
        call.wait_for_ended(timeout=WAIT)
    assert not isinstance(play.future.exception(), RelayTimeoutError)
    assert client.stats()["active_calls"] == 0


# Every plain command: (call method and arguments, wire method, wire fields besides node_id/call_id).
PLAIN_COMMANDS: list[tuple[str, tuple[Any, ...], dict[str, Any], str, dict[str, Any]]] = [
    ("connect", ([[{"type": "phone", "params": {"to_number": "+1", "from_number": "+2"}}]],), {"ringback": [{"type": "ringtone", "params": {"name": "us"}}], "max_duration": 5},
     "calling.connect", {"devices": [[{"type": "phone", "params": {"to_number": "+1", "from_number": "+2"}}]], "ringback": [{"type": "ringtone", "params": {"name": "us"}}], "max_duration": 5}),
    ("disconnect", (), {}, "calling.disconnect", {}),
    ("send_digits", ("12#",), {"control_id": "c-1"}, "calling.send_digits", {"digits": "12#", "control_id": "c-1"}),
    ("refer", ({"type": "sip", "params": {"to": "sip:a@b"}},), {"status_url": "https://x"}, "calling.refer", {"device": {"type": "sip", "params": {"to": "sip:a@b"}}, "status_url": "https://x"}),
    ("transfer", ("swml:abc",), {}, "calling.transfer", {"dest": "swml:abc"}),
    ("join_conference", ("sales",), {"muted": True, "beep": "onEnter"}, "calling.join_conference", {"name": "sales", "muted": True, "beep": "onEnter"}),
    ("leave_conference", ("conf-1",), {}, "calling.leave_conference", {"conference_id": "conf-1"}),
    ("hold", (), {}, "calling.hold", {}),
    ("unhold", (), {}, "calling.unhold", {}),
    ("denoise", (), {}, "calling.denoise", {}),
    ("denoise_stop", (), {}, "calling.denoise.stop", {}),
    ("live_transcribe", ({"start": {"lang": "en"}},), {}, "calling.live_transcribe", {"action": {"start": {"lang": "en"}}}),
    ("live_translate", ({"start": {"from_lang": "en"}},), {"status_url": "https://s"}, "calling.live_translate", {"action": {"start": {"from_lang": "en"}}, "status_url": "https://s"}),
    ("echo", (), {"timeout": 5}, "calling.echo", {"timeout": 5}),
    ("amazon_bedrock", (), {"prompt": {"text": "hi"}}, "calling.amazon_bedrock", {"prompt": {"text": "hi"}}),
    ("ai_message", (), {"message_text": "hello", "role": "user"}, "calling.ai_message", {"message_text": "hello", "role": "user"}),
    ("ai_hold", (), {"timeout": 30}, "calling.ai_hold", {"timeout": 30}),
    ("ai_unhold", (), {}, "calling.ai_unhold", {}),
    ("join_room", ("room-1",), {}, "calling.join_room", {"name": "room-1"}),
    ("leave_room", (), {}, "calling.leave_room", {}),
    ("queue_enter", ("support",), {"control_id": "q-1", "status_url": "https://q"}, "calling.queue.enter", {"queue_name": "support", "control_id": "q-1", "status_url": "https://q"}),
    ("queue_leave", ("support",), {"control_id": "q-2", "queue_id": "qid"}, "calling.queue.leave", {"queue_name": "support", "queue_id": "qid", "control_id": "q-2"}),
    ("bind_digit", ("*1", "calling.play"), {"bind_params": {"play": []}, "realm": "menu", "max_triggers": 2}, "calling.bind_digit", {"digits": "*1", "bind_method": "calling.play", "params": {"play": []}, "realm": "menu", "max_triggers": 2}),
    ("clear_digit_bindings", (), {"realm": "menu"}, "calling.clear_digit_bindings", {"realm": "menu"}),
    ("user_event", (), {"event": {"kind": "note"}, "extra": 1}, "calling.user_event", {"event": {"kind": "note"}, "extra": 1}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "method", "fields"), PLAIN_COMMANDS, ids=[c[0] for c in PLAIN_COMMANDS]
)
def test_every_plain_command_sends_its_method_and_fields(
    client: RelayClient,
    server: RelayTestServer,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    method: str,
    fields: dict[str, Any],
) -> None:
    call = inbound_call(client, server)
    result = getattr(call, name)(*args, **kwargs)

    assert result == {"code": "200", "message": "OK"}
    sent = params_of(server.requests(method)[-1])
    assert sent == {"node_id": call.node_id, "call_id": call.call_id, **fields}


def test_control_commands_get_a_control_id_when_none_is_given(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)
    call.send_digits("1")
    assert params_of(server.requests("calling.send_digits")[-1])["control_id"]


def test_required_fields_are_checked_before_sending(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)
    with pytest.raises(ValueError, match="dest"):
        call.transfer(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="list of lists"):
        call.connect([{"type": "phone", "params": {}}])  # type: ignore[list-item]
    assert server.requests("calling.transfer") == [] and server.requests("calling.connect") == []


def test_call_ids_are_not_mixed_up_when_events_interleave(client: RelayClient, server: RelayTestServer) -> None:
    calls: queue.Queue[Call] = queue.Queue()
    client.on_call(calls.put)
    session = server.session()
    first_id, second_id = new_id(), new_id()
    push_inbound(session, first_id)
    push_inbound(session, second_id)
    received = {c.call_id: c for c in (calls.get(timeout=WAIT), calls.get(timeout=WAIT))}

    push_state(session, second_id, "answered")
    push_state(session, first_id, "ended")
    received[first_id].wait_for_ended(timeout=WAIT)

    assert received[first_id].state == "ended"
    assert received[second_id].state == "answered"
    assert not received[second_id].ended.done()
    push_state(session, second_id, "ended")


def test_a_raising_listener_is_logged_and_later_events_still_arrive(
    client: RelayClient, server: RelayTestServer
) -> None:
    call = inbound_call(client, server)
    seen: queue.Queue[str | None] = queue.Queue()

    def listener(event: RelayEvent) -> None:
        seen.put(event.state)
        if event.state == "ringing":
            raise RuntimeError("listener bug")

    call.on("calling.call.state", listener)
    with LogSignal("listener") as signal:
        push_state(server.session(), call.call_id, "ringing")
        push_state(server.session(), call.call_id, "answered")
        assert [seen.get(timeout=WAIT), seen.get(timeout=WAIT)] == ["ringing", "answered"]
        assert signal.seen.wait(WAIT)
    assert signal.records[0].exc_info is not None


def test_a_session_that_is_not_resumed_drops_its_calls(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)
    play = call.play([{"type": "tts", "params": {"text": "hi"}}])

    server.session().send_disconnect(restart=True)  # the server forgets the session: no resume

    with pytest.raises(SessionLostError) as excinfo:
        play.wait(timeout=WAIT)
    assert excinfo.value.code == "session_lost"
    with pytest.raises(RelayError):
        call.wait_for_ended(timeout=WAIT)
    assert client.stats()["active_calls"] == 0
