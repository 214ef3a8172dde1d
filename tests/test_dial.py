"""Outbound dials through the real transport: the calling.dial frame, legs
routed by tag, the winner, failures, the dial timeout, and what is left behind."""

from __future__ import annotations

import queue
import threading
import uuid
from concurrent.futures import Future
from typing import Any, Callable

import pytest

from relay_sync import Call, DialFailedError, RelayClient, RelayError, RelayTimeoutError
from relay_sync.testing import RelayTestServer, ServerSession

from .calling_support import WAIT, new_id, params_of, push_control, push_state

MakeClient = Callable[..., RelayClient]
JSONDict = dict[str, Any]

ALICE = {"type": "phone", "params": {"to_number": "+15550000001", "from_number": "+15559999999"}}
BOB = {"type": "phone", "params": {"to_number": "+15550000002", "from_number": "+15559999999"}}
DESK = {"type": "sip", "params": {"to": "sip:desk@example.com", "from": "sip:bot@example.com"}}


def push_leg(session: ServerSession, tag: str, call_id: str, call_state: str) -> None:
    push_state(session, call_id, call_state, tag=tag, direction="outbound", device=ALICE)


def push_dial(session: ServerSession, tag: str, dial_state: str, winner: str | None = None) -> None:
    params: JSONDict = {"tag": tag, "dial_state": dial_state}
    if winner is not None:
        params["call"] = {"call_id": winner, "node_id": f"node-{winner[:8]}", "tag": tag, "device": ALICE,
                          "dial_winner": True}  # fmt: skip
    session.push_event("calling.call.dial", params)


def dial_request(server: RelayTestServer) -> JSONDict:
    return params_of(server.wait_for_request("calling.dial", timeout=WAIT))


def ping(client: RelayClient) -> None:
    """A round trip: every event pushed before it has been handled when it returns."""
    client.execute("signalwire.ping", {})


def test_dial_resolves_with_the_answering_leg_and_drops_the_loser(client: RelayClient, server: RelayTestServer) -> None:
    future = client.dial_future([[ALICE, BOB]])
    tag = dial_request(server)["tag"]
    assert uuid.UUID(tag)
    session = server.session()
    winner_id, loser_id = new_id(), new_id()

    push_leg(session, tag, winner_id, "ringing")
    push_leg(session, tag, loser_id, "ringing")
    ping(client)
    assert not future.done()
    stats = client.stats()
    assert (
        stats["active_calls"] == 2 and stats["dials_pending"] == 1
    )  # legs are held (their events route) before the dial resolves

    push_leg(session, tag, winner_id, "answered")
    push_dial(session, tag, "answered", winner_id)
    push_leg(session, tag, loser_id, "ended")
    call = future.result(timeout=WAIT)

    assert isinstance(call, Call)
    assert call.call_id == winner_id and call.node_id == f"node-{winner_id[:8]}"
    assert call.tag == tag and call.direction == "outbound" and call.state == "answered"
    ping(client)
    # Only the winner is left: the loser left the table when it ended, and the dial is over.
    assert client.stats()["active_calls"] == 1 and client.stats()["dials_pending"] == 0


def test_dial_sends_serial_and_parallel_device_lists(client: RelayClient, server: RelayTestServer) -> None:
    devices = [[ALICE], [BOB, DESK]]  # Alice first; then Bob and the desk phone ring together
    future = client.dial_future(devices, tag="my-tag", max_duration=15)

    assert dial_request(server) == {"tag": "my-tag", "devices": devices, "max_duration": 15}
    push_dial(server.session(), "my-tag", "failed")
    with pytest.raises(RelayError):
        future.result(timeout=WAIT)

    other = client.dial_future([[DESK]])
    sent = params_of(server.wait_for_request("calling.dial", count=2, timeout=WAIT))
    assert sent["devices"] == [[DESK]] and "max_duration" not in sent
    push_dial(server.session(), sent["tag"], "failed")
    with pytest.raises(RelayError):
        other.result(timeout=WAIT)


def test_blocking_dial_returns_the_call_and_the_call_can_play(client: RelayClient, server: RelayTestServer) -> None:
    winner_id = new_id()

    def dial(session: ServerSession, params: JSONDict) -> JSONDict:
        push_leg(session, params["tag"], winner_id, "created")
        push_leg(session, params["tag"], winner_id, "answered")
        push_dial(session, params["tag"], "answered", winner_id)
        return {"code": "200", "message": "Dialing"}

    server.respond("calling.dial", handler=dial)
    call = client.dial([[ALICE]], dial_timeout=WAIT)
    assert call.call_id == winner_id

    play = call.play([{"type": "tts", "params": {"text": "Your order shipped"}}])
    sent = params_of(server.wait_for_request("calling.play", timeout=WAIT))
    assert sent["node_id"] == call.node_id and sent["call_id"] == winner_id
    push_control(server.session(), "calling.call.play", winner_id, play.control_id, state="finished")
    assert play.wait(timeout=WAIT).state == "finished"

    call.hangup()
    assert params_of(server.requests("calling.end")[-1])["call_id"] == winner_id


def test_an_answer_naming_an_unseen_leg_still_gives_a_call(client: RelayClient, server: RelayTestServer) -> None:
    future = client.dial_future([[ALICE]])
    tag = dial_request(server)["tag"]
    winner_id = new_id()
    push_dial(server.session(), tag, "answered", winner_id)

    call = future.result(timeout=WAIT)
    assert call.call_id == winner_id and call.state == "answered" and call.device == ALICE
    push_state(server.session(), winner_id, "ended")
    call.wait_for_ended(timeout=WAIT)
    assert client.stats()["active_calls"] == 0


def test_a_failed_dial_raises_and_leaves_nothing_behind(client: RelayClient, server: RelayTestServer) -> None:
    future = client.dial_future([[ALICE]])
    tag = dial_request(server)["tag"]
    session = server.session()
    leg = new_id()
    push_leg(session, tag, leg, "ringing")
    push_dial(session, tag, "failed")

    with pytest.raises(DialFailedError) as excinfo:
        future.result(timeout=WAIT)
    assert excinfo.value.code == "dial_failed"
    assert client.stats()["active_calls"] == 0 and client.stats()["dials_pending"] == 0
    push_leg(session, tag, leg, "ended")  # a late event for the dropped leg is ignored
    ping(client)
    assert client.stats()["active_calls"] == 0


def test_a_refused_dial_request_raises(client: RelayClient, server: RelayTestServer) -> None:
    server.respond("calling.dial", code="403", message="not allowed to dial")
    with pytest.raises(RelayError) as excinfo:
        client.dial([[ALICE]])
    assert excinfo.value.code == "403"
    assert client.stats()["dials_pending"] == 0


def test_a_dial_timeout_cancels_the_dial_and_leaves_nothing_behind(
    client: RelayClient, server: RelayTestServer
) -> None:
    leg = new_id()

    def ring(session: ServerSession, params: JSONDict) -> JSONDict:
        push_leg(session, params["tag"], leg, "ringing")
        return {"code": "200", "message": "Dialing"}

    server.respond("calling.dial", handler=ring)
    with pytest.raises(TimeoutError) as excinfo:
        client.dial([[ALICE]], dial_timeout=0.2)

    assert isinstance(excinfo.value, RelayTimeoutError)
    hangup = params_of(server.wait_for_request("calling.end", timeout=WAIT))
    assert hangup == {"node_id": f"node-{leg[:8]}", "call_id": leg, "reason": "cancel"}
    assert client.stats()["active_calls"] == 0 and client.stats()["dials_pending"] == 0


def test_dial_future_callbacks_run_on_the_handler_pool(client: RelayClient, server: RelayTestServer) -> None:
    future: Future[Call] = client.dial_future([[ALICE]])
    tag = dial_request(server)["tag"]
    threads: queue.Queue[str] = queue.Queue()
    future.add_done_callback(lambda f: threads.put(threading.current_thread().name))

    push_dial(server.session(), tag, "answered", new_id())
    assert threads.get(timeout=WAIT).startswith("relay_sync-handler")


def test_disconnect_fails_a_pending_dial(make_client: MakeClient, server: RelayTestServer) -> None:
    client = make_client()
    future = client.dial_future([[ALICE]])
    dial_request(server)

    client.disconnect()

    with pytest.raises(RelayError):
        future.result(timeout=WAIT)
    assert client.stats()["dials_pending"] == 0


def test_dial_arguments_are_checked(make_client: MakeClient, client: RelayClient) -> None:
    with pytest.raises(RelayError):
        make_client(connect=False).dial([[ALICE]])
    with pytest.raises(ValueError, match="list of lists"):
        client.dial([ALICE])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="dial_timeout"):
        client.dial([[ALICE]], dial_timeout=0)
    client.dial_future([[ALICE]], tag="twice")
    with pytest.raises(ValueError, match="twice"):
        client.dial_future([[ALICE]], tag="twice")


def test_a_dial_survives_a_link_drop_before_its_response(client: RelayClient, server: RelayTestServer) -> None:
    server.respond("calling.dial", silent=True)  # the link drops before the server answers
    future = client.dial_future([[ALICE]])
    tag = dial_request(server)["tag"]

    server.session().drop()
    session = server.wait_for_session(2)  # the client logs in again and resumes the session
    winner_id = new_id()
    push_dial(session, tag, "answered", winner_id)

    assert future.result(timeout=WAIT).call_id == winner_id
