"""The fault matrix, user-code rows: handlers that block for a long time,
raise, or call ``client.disconnect()`` themselves; ``stop()`` from a handler;
``disconnect()`` racing ``run()``; ``disconnect()`` twice."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

import pytest

from relay_sync import Call, ClientClosedError, Message, RelayClient, RelayError
from relay_sync.testing import RelayTestServer

from ..calling_support import LogSignal, push_inbound, script_call_lifecycle
from ..fast_clients import relay_threads
from .support import (
    STEP,
    CallDesk,
    answer_play_hang_up,
    assert_serves,
    assert_tables_settled,
    outcome_of,
    run_in_thread,
    script_messaging,
    woken_with_error,
)

MakeClient = Callable[..., RelayClient]
PROMPT = [{"type": "tts", "params": {"text": "one moment"}}]


# -- handlers that block, raise, or disconnect ---------------------------------------


def test_a_handler_blocking_for_a_long_time_stalls_nothing_else(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    script_call_lifecycle(server)
    script_messaging(server)
    client = make_client(contexts=["office"], max_active_calls=2, ping_interval=0.1, request_timeout=0.25)
    release = threading.Event()

    def work(call: Call) -> None:
        if call.tag == "slow":
            release.wait(STEP * 2)  # far longer than the ping window and request_timeout
        answer_play_hang_up(call)

    desk = CallDesk(client, work=work)
    inbound: queue.Queue[Message] = queue.Queue()
    client.on_message(inbound.put)
    session = server.session()
    slow = push_inbound(session, tag="slow")
    desk.wait_arrived(1)

    # Keepalive rounds go by while the handler sits there: pings answered both ways...
    pings_before = len(server.requests("signalwire.ping"))
    server.wait_for_request("signalwire.ping", count=pings_before + 4)
    assert session.wait_answer(session.ping())["result"] == {}
    # ...other calls, messages and requests are served...
    quick = push_inbound(session, tag="quick")
    assert desk.wait_outcomes([quick]) == {quick: "done"}
    session.push_event("messaging.receive", {"message_id": "m-1", "body": "hi", "message_state": "received"})
    assert inbound.get(timeout=STEP).body == "hi"
    sent = client.send_message(to_number="+15551110000", from_number="+15552220000", body="meanwhile")
    assert sent.wait(timeout=STEP).state == "delivered"
    # ...and the link was never dropped for it.
    assert len(server.sessions) == 1

    release.set()
    assert desk.wait_outcomes([slow]) == {slow: "done"}
    assert_tables_settled(client)
    assert_serves(client, server, desk)


def test_raising_handlers_are_logged_and_the_client_goes_on(server: RelayTestServer, make_client: MakeClient) -> None:
    script_call_lifecycle(server)
    script_messaging(server)
    client = make_client(contexts=["office"])
    crashed: queue.Queue[Call] = queue.Queue()

    def work(call: Call) -> None:
        if call.tag != "raise":
            answer_play_hang_up(call)
            return
        call.on("calling.call.state", lambda event: 1 / 0)  # a listener that raises too
        crashed.put(call)
        call.answer()
        raise RuntimeError("handler bug")

    desk = CallDesk(client, work=work)
    client.on_message(lambda message: int("not a number"))
    session = server.session()
    with LogSignal("raised") as errors:
        broken = push_inbound(session, tag="raise")
        server.wait_for_request("calling.answer")
        session.push_event("messaging.receive", {"message_id": "m-1", "body": "x", "message_state": "received"})
        client.send_message(
            to_number="+15551110000", from_number="+15552220000", body="y", on_completed=lambda m: int("not a number")
        )
        # Nobody drives the call whose handler crashed: the client hangs it up.
        server.wait_for_request("calling.end", lambda params: params.get("call_id") == broken)
        # one record each: on_call handler, on_message handler, on_completed callback, call listener
        # (the listener logs once per state event, so the count of records alone does not tell)
        errors_seen = _wait_kinds(errors, 4)
    assert errors_seen == {"on_call", "on_message", "on_completed", "listener"}
    assert any(broken in r.getMessage() for r in errors.records)  # the call id is in the log line
    assert all(r.exc_info for r in errors.records)  # with the traceback
    assert desk.outcomes == {}  # the raising handler was caught by the SDK, not the desk
    assert crashed.get(timeout=STEP).wait_for_ended(timeout=STEP).state == "ended"
    client.execute("probe.after", {}, timeout=STEP)  # answered after calling.end: that is settled too
    assert_tables_settled(client)
    assert_serves(client, server, desk)


def _wait_kinds(signal: LogSignal, count: int) -> set[str]:
    """What raised (each record's first word), once ``count`` different kinds have logged."""

    def kinds() -> set[str]:
        return {r.getMessage().split(" ")[0] for r in list(signal.records)}

    deadline = time.monotonic() + STEP
    while len(kinds()) < count:
        signal.seen.clear()
        if len(kinds()) >= count or not signal.seen.wait(max(0.0, deadline - time.monotonic())):
            break
    return kinds()


def test_a_handler_that_disconnects_the_client(server: RelayTestServer, make_client: MakeClient) -> None:
    script_call_lifecycle(server, play_finishes=False)
    client = make_client(contexts=["office"])
    waits: queue.Queue[Any] = queue.Queue()
    disconnected = threading.Event()

    def work(call: Call) -> None:
        if call.tag == "quit":
            client.disconnect()  # from inside a handler: must not deadlock on its own thread
            disconnected.set()
            return
        call.answer()
        try:
            call.play(PROMPT).wait(timeout=STEP * 2)  # never finishes by itself
        except RelayError as error:
            waits.put(error)

    desk = CallDesk(client, work=work)
    session = server.session()
    push_inbound(session, tag="busy")
    server.wait_for_request("calling.play")
    push_inbound(session, tag="quit")

    assert disconnected.wait(STEP)
    assert isinstance(waits.get(timeout=STEP), ClientClosedError)  # the other handler was woken
    client.disconnect()  # from outside, after the handler's: returns once every handler has exited
    assert relay_threads() == []
    assert woken_with_error(lambda: client.execute("after", {})).code == "closed"
    with pytest.raises(ClientClosedError):
        client.connect()
    assert desk.outcomes  # both handlers ran to their end


# -- stop(), run() and disconnect() racing ----------------------------------------------


def test_stop_from_a_handler_ends_run(server: RelayTestServer, make_client: MakeClient) -> None:
    script_call_lifecycle(server)
    client = make_client(connect=False, contexts=["office"])

    def work(call: Call) -> None:
        answer_play_hang_up(call)
        client.stop()

    CallDesk(client, work=work)
    running = run_in_thread(client.run, name="test-run")
    push_inbound(server.wait_for_session(1))
    assert outcome_of(running) is None  # run() returned normally...
    assert relay_threads() == []  # ...with every thread joined, the stopping handler's included
    assert client.stats()["active_calls"] == 0


def test_disconnect_before_run_starts(make_client: MakeClient) -> None:
    client = make_client(connect=False)
    client.disconnect()
    with pytest.raises(ClientClosedError):
        client.run()
    assert relay_threads() == []


def test_disconnect_while_run_is_logging_in(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False, request_timeout=STEP * 2)  # the login would wait this long
    server.pause_logins()
    running = run_in_thread(client.run, name="test-run")
    server.wait_for_request("signalwire.connect")

    started = time.monotonic()
    client.disconnect()
    assert time.monotonic() - started < STEP  # the pending login did not hold it up
    assert isinstance(outcome_of(running), ClientClosedError)  # run() ends at once too
    assert relay_threads() == []


def test_disconnect_while_run_serves_calls(server: RelayTestServer, make_client: MakeClient) -> None:
    script_call_lifecycle(server, play_finishes=False)
    client = make_client(connect=False, contexts=["office"])
    waits: queue.Queue[Any] = queue.Queue()

    @client.on_call
    def handle(call: Call) -> None:
        call.answer()
        try:
            call.play(PROMPT).wait(timeout=STEP * 2)
        except RelayError as error:
            waits.put(error)

    running = run_in_thread(client.run, name="test-run")
    push_inbound(server.wait_for_session(1))
    server.wait_for_request("calling.play")
    client.disconnect()
    assert relay_threads() == []
    assert outcome_of(running) is None
    assert isinstance(waits.get(timeout=STEP), ClientClosedError)


def test_disconnect_racing_run_at_random_moments(server: RelayTestServer, make_client: MakeClient) -> None:
    for attempt in range(20):
        client = make_client(connect=False)
        start = threading.Barrier(2)

        def run(client: RelayClient = client, start: threading.Barrier = start) -> None:
            start.wait(STEP)
            client.run()

        running = run_in_thread(run, name="test-run")
        start.wait(STEP)
        for _ in range(attempt * 50):  # a little later each time, without sleeping
            pass
        client.disconnect()
        error = outcome_of(running)
        assert error is None or isinstance(error, RelayError), error
        assert relay_threads() == [], f"attempt {attempt}"


def test_disconnect_twice_in_a_row(make_client: MakeClient) -> None:
    client = make_client()
    client.disconnect()
    client.disconnect()
    assert relay_threads() == []


def test_disconnect_from_two_threads_at_once(server: RelayTestServer, make_client: MakeClient) -> None:
    script_call_lifecycle(server)
    client = make_client(contexts=["office"])
    desk = CallDesk(client)
    desk.gate.clear()  # a handler still running: the first disconnect() must wait for it
    push_inbound(server.session())
    desk.wait_arrived(1)

    start = threading.Barrier(2)

    def disconnect() -> list[str]:
        start.wait(STEP)
        client.disconnect()
        return relay_threads()  # whoever returns first, nothing of ours may be left

    first, second = run_in_thread(disconnect), run_in_thread(disconnect)
    server.session().closed.wait(STEP)  # one of them is closing the client
    desk.gate.set()
    assert outcome_of(first) == []
    assert outcome_of(second) == []
