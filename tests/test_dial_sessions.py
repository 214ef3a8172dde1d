"""Dials across session starts: a reconnect that does not resume the session
fails only the dials sent on the lost one (and hangs up their late legs); a
dial still queued, or made while the first session logs in, goes out on the
new session and settles as usual."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

from relay_sync import RelayClient, RelayError, SessionLostError
from relay_sync.testing import RelayTestServer, ServerSession

from .calling_support import WAIT, new_id, params_of, push_state

MakeClient = Callable[..., RelayClient]
JSONDict = dict[str, Any]

ALICE = {"type": "phone", "params": {"to_number": "+15550000001", "from_number": "+15559999999"}}


def answer_dial(session: ServerSession, tag: str, leg_id: str) -> None:
    """The network rings a leg of dial ``tag`` and it answers."""
    push_state(session, leg_id, "created", tag=tag, direction="outbound", device=ALICE)
    push_state(session, leg_id, "answered", tag=tag, direction="outbound", device=ALICE)
    leg = {"call_id": leg_id, "node_id": f"node-{leg_id[:8]}", "tag": tag, "call_state": "answered"}
    session.push_event("calling.call.dial", {"tag": tag, "dial_state": "answered", "call": leg})


def round_trips(client: RelayClient) -> None:
    """Two round trips: the events pushed before them are handled, and whatever the
    client sent while handling them has reached the server."""
    client.execute("signalwire.ping", {})
    client.execute("signalwire.ping", {})


def hang_ups(server: RelayTestServer) -> list[str]:
    return [params_of(frame)["call_id"] for frame in server.requests("calling.end")]


def test_a_dial_queued_during_a_new_session_login_goes_out_on_it_and_settles(
    make_client: MakeClient, server: RelayTestServer
) -> None:
    client = make_client()
    server.pause_logins()
    server.session().send_disconnect(restart=True)  # the server forgets the session: no resume
    server.wait_for_request("signalwire.connect", count=2)  # the client is logging in again, held

    future = client.dial_future([[ALICE]], tag="queued")  # waits in the backlog
    assert client.stats()["backlog"] == 1
    server.resume_logins()
    session = server.wait_for_session(2)
    assert params_of(server.wait_for_request("calling.dial", timeout=WAIT))["tag"] == "queued"

    leg_id = new_id()
    answer_dial(session, "queued", leg_id)
    call = future.result(timeout=WAIT)  # it went out on the new session: not lost with the old one

    assert call.call_id == leg_id and call.state == "answered"
    round_trips(client)
    assert hang_ups(server) == []
    assert client.stats()["active_calls"] == 1 and client.stats()["dials_pending"] == 0


def test_a_dial_sent_on_a_lost_session_fails_and_its_late_leg_is_hung_up(
    client: RelayClient, server: RelayTestServer
) -> None:
    future = client.dial_future([[ALICE]], tag="lost")
    server.wait_for_request("calling.dial", timeout=WAIT)

    server.session().send_disconnect(restart=True)  # no resume: the dial's events go nowhere now
    with pytest.raises(SessionLostError):
        future.result(timeout=WAIT)
    session = server.wait_for_session(2)

    leg_id = new_id()  # the network placed the call anyway and it shows up on the new session
    push_state(session, leg_id, "ringing", tag="lost", direction="outbound", device=ALICE)
    end = server.wait_for_request("calling.end", timeout=WAIT)

    assert params_of(end)["call_id"] == leg_id
    assert client.stats()["active_calls"] == 0 and client.stats()["dials_pending"] == 0


def test_a_dial_made_while_the_first_login_is_held_goes_out_and_settles(
    make_client: MakeClient, server: RelayTestServer
) -> None:
    client = make_client(connect=False)
    server.pause_logins()
    failures: list[BaseException] = []

    def connect() -> None:
        try:
            client.connect()
        except BaseException as error:  # noqa: BLE001 - reported to the test
            failures.append(error)

    connecting = threading.Thread(target=connect)
    connecting.start()
    server.wait_for_request("signalwire.connect")  # connect() is logging in, held by the server
    try:
        future = client.dial_future([[ALICE]], tag="early")
    finally:
        server.resume_logins()
        connecting.join(WAIT)
    assert not connecting.is_alive() and failures == []

    assert params_of(server.wait_for_request("calling.dial", timeout=WAIT))["tag"] == "early"
    leg_id = new_id()
    answer_dial(server.session(), "early", leg_id)

    assert future.result(timeout=WAIT).call_id == leg_id
    round_trips(client)
    assert hang_ups(server) == []


def test_a_refused_dial_request_on_the_new_session_still_fails(
    make_client: MakeClient, server: RelayTestServer
) -> None:
    """The queued dial is kept by the session start, so its own answer decides it."""
    client = make_client()
    server.respond("calling.dial", code="500", message="no capacity")
    server.pause_logins()
    server.session().send_disconnect(restart=True)
    server.wait_for_request("signalwire.connect", count=2)
    future = client.dial_future([[ALICE]], tag="refused")
    server.resume_logins()

    with pytest.raises(RelayError) as excinfo:
        future.result(timeout=WAIT)
    assert not isinstance(excinfo.value, SessionLostError)
    assert client.stats()["dials_pending"] == 0
