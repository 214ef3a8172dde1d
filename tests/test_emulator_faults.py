"""The emulator's session side under faults: unacknowledged events resent
after a reconnect, events kept while a client is away, calls surviving a
dropped socket, server restarts, malformed frames, caps, server pings, and
REST and WebSocket sharing one port."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from typing import Any, Callable

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from relay_sync import RelayClient, RelayError, SessionLostError
from relay_sync.testing import RelayEmulator, RelayTestServer

from .emulator_support import CALLER, OFFICE, RING_TIMEOUT, Connect, handle_calls, tts
from .fast_clients import FAST

WAIT = 5.0


def event_frames(emulator: RelayEmulator, event_type: str) -> list[tuple[int, str]]:
    """(session, request id) of each ``event_type`` event the emulator sent."""
    return [
        (e.session, e.frame["id"])
        for e in emulator.journal
        if e.direction == "send"
        and isinstance(e.frame, dict)
        and e.frame.get("method") == "signalwire.event"
        and e.frame["params"]["event_type"] == event_type
    ]


def answered_on(emulator: RelayEmulator, session: int, request_id: str) -> Any:
    return emulator.wait_for_journal(
        lambda e: (
            e.session == session
            and e.direction == "recv"
            and isinstance(e.frame, dict)
            and e.frame.get("id") == request_id
        )
    )


def test_an_event_whose_ack_was_lost_is_sent_again_after_a_reconnect(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    received: queue.Queue[Any] = queue.Queue()
    client.on_message(received.put)
    first_session = emulator.wait_for_session(1)
    emulator.lose_acks(first_session)

    emulator.send_sms(OFFICE, CALLER, "ping", context="office")
    assert received.get(timeout=2).body == "ping"
    [(session, event_id)] = event_frames(emulator, "messaging.receive")
    answered_on(emulator, session, event_id)  # the client did ACK; the emulator "lost" it
    assert emulator.network.outbox.unacked(client.relay_protocol or "") == 1

    first_session.drop()
    second_session = emulator.wait_for_session(2)

    answered_on(emulator, second_session.number, event_id)
    assert event_frames(emulator, "messaging.receive") == [(0, event_id), (second_session.number, event_id)]
    assert emulator.network.outbox.unacked(client.relay_protocol or "") == 0
    assert client.relay_protocol == second_session.protocol


def test_events_made_while_a_client_is_away_arrive_when_it_resumes(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    received: queue.Queue[Any] = queue.Queue()
    client.on_message(received.put)
    emulator.pause_logins()
    emulator.session().drop()
    emulator.wait_for_request("signalwire.connect", count=2)  # the client is trying to resume

    emulator.send_sms(OFFICE, CALLER, "while you were out", context="office")
    emulator.wait_for_transcript("while you were out")
    emulator.resume_logins()

    assert received.get(timeout=2).body == "while you were out"
    assert [session for session, _ in event_frames(emulator, "messaging.receive")] == [1]


def test_an_answered_call_survives_a_dropped_socket(emulator: RelayEmulator, connect: Connect) -> None:
    answered, reconnected = threading.Event(), threading.Event()

    def patient(call: Any) -> None:
        call.answer()
        answered.set()
        assert reconnected.wait(timeout=2)
        call.play(tts("Sorry about that")).wait(timeout=2)
        call.hangup()

    outcomes = handle_calls(connect(), patient)
    handle = emulator.place_call(OFFICE, CALLER, context="office")
    assert answered.wait(timeout=2)  # the app has its answer (not only the emulator)

    emulator.drop_sessions()
    emulator.wait_for_session(2)
    reconnected.set()

    assert handle.wait_ended(timeout=2) == "hangup"
    outcomes.result()
    assert handle.said() == ["Sorry about that"]


def test_the_authorization_state_is_sent_back_on_reconnect(emulator: RelayEmulator, connect: Connect) -> None:
    connect()
    pushed = emulator.wait_for_event("signalwire.authorization.state")  # sent just after the login answer
    [(session, event_id)] = event_frames(emulator, "signalwire.authorization.state")
    answered_on(emulator, session, event_id)  # the client has taken it

    emulator.drop_sessions()
    emulator.wait_for_session(2)

    resent = emulator.requests("signalwire.connect")[1]["params"]
    assert resent["authorization_state"] == pushed["params"]["authorization_state"]


def answering_client(
    emulator: RelayEmulator,
    *,
    on_connected: Callable[[bool], None] | None = None,
    answered_calls: queue.Queue[Any] | None = None,
) -> tuple[RelayClient, threading.Event]:
    """A connected client on ``office`` that answers every call; the event is set at the first answer."""
    client = emulator.client(contexts=["office"], **FAST)
    answered = threading.Event()
    if on_connected is not None:
        client.on_connected(on_connected)

    @client.on_call
    def answer(call: Any) -> None:
        call.answer()
        if answered_calls is not None:
            answered_calls.put(call)
        answered.set()

    client.connect()
    return client, answered


def test_calls_of_a_client_that_does_not_come_back_are_hung_up() -> None:
    with RelayEmulator(time_factor=0.01, orphan_timeout=0.05) as emulator:
        client, answered = answering_client(emulator)
        try:
            handle = emulator.place_call(OFFICE, CALLER, context="office")
            assert answered.wait(timeout=2)
        finally:
            client.disconnect()

        assert handle.wait_ended(timeout=2) == "hangup"
        assert "network: the app's client went away; hanging up" in handle.lines()
        assert emulator.active_calls == 0


def test_a_restart_makes_clients_log_in_from_scratch(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    old_protocol = client.relay_protocol

    emulator.disconnect_sessions(restart=True)
    emulator.wait_for_session(2)

    assert "protocol" not in emulator.requests("signalwire.connect")[1]["params"]
    assert client.execute("signalwire.ping", {}) is not None
    assert client.relay_protocol not in (None, old_protocol)


def test_a_malformed_frame_does_not_break_the_session(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()

    emulator.session().send_malformed()

    assert "timestamp" in client.execute("signalwire.ping", {"timestamp": 1.5})
    assert len(emulator.live_sessions()) == 1


def test_sessions_beyond_max_sessions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "4")
    with RelayEmulator(max_sessions=1) as emulator, emulator.client(**FAST) as first:
        second = emulator.client(**FAST)
        with pytest.raises(RelayError):
            second.connect(timeout=2)
        second.disconnect()
        assert first.execute("signalwire.ping", {}) is not None


def test_a_frame_over_the_size_cap_closes_the_session() -> None:
    with RelayEmulator(max_frame_size=4096) as emulator:
        emulator.respond("test.small", result={"code": "200", "message": "OK"})
        client = RelayClient(**emulator.client_kwargs(**FAST))
        try:
            client.connect()
            with pytest.raises(RelayError):
                client.execute("test.big", {"blob": "x" * 8192})
            emulator.wait_for_session(2)  # the client came back
            assert client.execute("test.small", {})["code"] == "200"
        finally:
            client.disconnect()


def test_the_emulator_pings_its_clients() -> None:
    with RelayEmulator(ping_interval=0.05) as emulator, emulator.client(**FAST):
        ping = emulator.wait_for_journal(
            lambda e: e.direction == "send" and isinstance(e.frame, dict) and e.frame.get("method") == "signalwire.ping"
        )
        answer = answered_on(emulator, ping.session, ping.frame["id"])
    assert answer.frame["result"] == {}


def test_the_journal_is_bounded() -> None:
    with RelayEmulator(max_journal=40) as emulator, emulator.client(**FAST) as client:
        emulator.respond("test.noise", result={"code": "200", "message": "OK"})
        for n in range(60):
            client.execute("test.noise", {"n": n})
        assert len(emulator.journal) <= 40 + 40 // 8
        assert emulator.requests("test.noise")[-1]["params"] == {"n": 59}


def test_rest_and_websocket_share_the_port(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    base = f"http://{emulator.relay_host}"

    assert requests.head(f"{base}/api/relay/rest/tasks", timeout=2).status_code == 405
    assert requests.get(f"{base}/", timeout=2).status_code == 426  # websockets: not an upgrade
    assert client.execute("signalwire.ping", {}) is not None


def test_a_connection_that_sends_nothing_does_not_hold_up_stop() -> None:
    emulator = RelayEmulator().start()
    idle = socket.create_connection(("127.0.0.1", emulator.port))
    try:
        started = time.monotonic()
        emulator.stop()
        assert time.monotonic() - started < 2.0  # not the front door's 10 s request timeout
    finally:
        idle.close()


def test_the_plain_test_server_has_no_rest_endpoints() -> None:
    with RelayTestServer() as server:
        response = requests.post(f"http://{server.relay_host}/api/relay/rest/tasks", json={}, timeout=2)
    assert response.status_code == 404


def test_a_client_back_after_orphan_timeout_gets_a_new_session_and_loses_its_calls() -> None:
    with RelayEmulator(time_factor=0.01, orphan_timeout=0.05) as emulator:
        logins: queue.Queue[bool] = queue.Queue()
        calls: queue.Queue[Any] = queue.Queue()
        client, _ = answering_client(emulator, on_connected=logins.put, answered_calls=calls)
        try:
            assert logins.get(timeout=2) is False
            handle = emulator.place_call(OFFICE, CALLER, context="office")
            call = calls.get(timeout=2)
            emulator.pause_logins()
            emulator.drop_sessions()
            assert handle.wait_ended(timeout=2) == "hangup"  # away past orphan_timeout
            emulator.resume_logins()

            assert logins.get(timeout=2) is False  # not resumed: its ending/ended events are gone
            with pytest.raises(SessionLostError):
                call.ended.result(timeout=2)
        finally:
            client.disconnect()


def test_a_client_that_resumed_gets_the_full_orphan_timeout_when_it_leaves_again() -> None:
    with RelayEmulator(time_factor=0.01, orphan_timeout=0.5) as emulator:
        client, answered = answering_client(emulator)
        handle = emulator.place_call(OFFICE, CALLER, context="office")
        assert answered.wait(timeout=2)
        emulator.drop_sessions()  # the first departure starts an orphan timer...
        emulator.wait_for_session(2)  # ...which the resume must cancel
        emulator.wait_for_event("signalwire.authorization.state", count=2)  # the resume was taken in
        emulator.pause_logins()
        emulator.drop_sessions()
        left = time.monotonic()
        try:
            assert handle.wait_ended(timeout=5) == "hangup"
            assert time.monotonic() - left >= 0.5  # the second departure's own full grace
        finally:
            emulator.resume_logins()
            client.disconnect()


@pytest.mark.parametrize(
    "setting",
    [
        {"orphan_timeout": float("inf")},
        {"ring_timeout": float("nan")},
        {"time_factor": float("inf")},
        {"orphan_timeout": 0},
        {"ping_interval": -1.0},
    ],
)
def test_a_duration_setting_that_is_not_finite_and_positive_is_refused(setting: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(setting))):
        RelayEmulator(**setting)


def test_an_absurdly_long_silence_does_not_stop_the_emulator_clock(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    messages: queue.Queue[Any] = queue.Queue()
    client.on_message(messages.put)
    playing = threading.Event()

    def silent_forever(call: Any) -> None:
        call.answer()
        call.play_silence(1e12)  # scaled by the time factor: far past what a thread may wait
        # Once this one is over (after the ring timeout, cancelled but still queued), the long
        # silence is the only thing the network thread has left to wait for.
        call.play_silence(RING_TIMEOUT + 10).wait(timeout=3)
        playing.set()

    outcomes = handle_calls(client, silent_forever)
    emulator.place_call(OFFICE, CALLER, context="office")
    assert playing.wait(timeout=4)
    outcomes.result()

    emulator.send_sms(OFFICE, CALLER, "still ticking", context="office")  # delivered by the network thread
    assert messages.get(timeout=2).body == "still ticking"


def answer_to(websocket: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Send ``request`` on a raw socket; return the frame answering it (events in between skipped)."""
    websocket.send(json.dumps({"jsonrpc": "2.0", **request}))
    while True:
        frame = json.loads(websocket.recv(timeout=WAIT))
        if frame.get("id") == request["id"] and "method" not in frame:
            return dict(frame)


LOGIN = {"method": "signalwire.connect", "params": {"authentication": {"project": "test", "token": "test"}}}


def test_requests_before_login_are_refused_as_not_authenticated(emulator: RelayEmulator) -> None:
    with ws_connect(f"ws://{emulator.relay_host}/") as websocket:
        for index, (method, params) in enumerate(
            [
                ("messaging.send", {"to_number": OFFICE, "from_number": CALLER, "body": "x", "context": "office"}),
                ("calling.dial", {"tag": "t", "devices": [[{"type": "phone", "params": {"to_number": OFFICE}}]]}),
            ]
        ):
            answer = answer_to(websocket, {"id": str(index), "method": method, "params": params})
            assert answer["error"]["code"] == -32002
        assert "result" in answer_to(websocket, {"id": "login", **LOGIN})  # the socket is still there
    assert emulator.transcript == []  # nothing was sent or dialed


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"method": "calling.answer", "params": [1]}, -32602),
        ({"method": "signalwire.receive", "params": {"contexts": [["office"]]}}, -32602),
    ],
)
def test_a_bad_request_gets_an_error_answer_and_the_socket_stays(
    emulator: RelayEmulator, request_: dict[str, Any], code: int
) -> None:
    with ws_connect(f"ws://{emulator.relay_host}/") as websocket:
        assert "result" in answer_to(websocket, {"id": "login", **LOGIN})
        answer = answer_to(websocket, {"id": "bad", **request_})
        assert answer["error"]["code"] == code
        assert "timestamp" in answer_to(websocket, {"id": "ping", "method": "signalwire.ping", "params": {}})["result"]


def test_a_slow_method_keeps_its_emulated_answer_and_effects(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    emulator.respond("messaging.send", delay=0.2)  # a slow server, still a working one

    message = client.send_message(to_number=CALLER, from_number=OFFICE, body="slowly")

    assert message.wait(timeout=WAIT).params["message_state"] == "delivered"
    emulator.wait_for_transcript("slowly")


def test_disconnect_sessions_drops_a_client_that_does_not_answer(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    with ws_connect(f"ws://{emulator.relay_host}/") as frozen:
        assert "result" in answer_to(frozen, {"id": "login", **LOGIN})  # then it never answers anything
        emulator.wait_for_session(2)

        emulator.disconnect_sessions(timeout=0.5)  # no TimeoutError: the silent one is dropped as well

        with pytest.raises(ConnectionClosed):
            while True:
                frozen.recv(timeout=WAIT)  # the queued disconnect request, then the end of the socket
    emulator.wait_for_session(3)  # the SDK client answered and came back
    assert client.execute("signalwire.ping", {}) is not None
