"""Losing the link and getting it back: drops, server disconnects, silence,
rejected credentials, and what happens to requests caught in between."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from relay_sync import AuthenticationError, BacklogFullError, ConnectionLostError, RelayClient
from relay_sync.testing import RelayEmulator, RelayTestServer
from relay_sync.transport import BACKLOG_LIMIT

from .fast_clients import relay_threads

ALICE = {"type": "phone", "params": {"to_number": "+15550000001", "from_number": "+15559999999"}}

MakeClient = Callable[..., RelayClient]


@pytest.fixture
def server() -> Iterator[RelayTestServer]:
    """The socket tests in this module run against the full emulator, which answers the
    made-up methods they send as markers (any other unknown method gets -32601)."""
    with RelayEmulator() as emulator:
        for method in (
            "after.reconnect",
            "queued.method",
            "after.drop",
            "marker",
            "after.disconnect",
            "after.silence",
            "after.probe",
        ):
            emulator.respond(method, result={"code": "200", "message": "OK"})
        yield emulator


def connect_params(server: RelayTestServer, index: int) -> dict[str, Any]:
    return server.requests("signalwire.connect")[index]["params"]


def test_reconnect_resends_protocol_and_authorization_state_and_contexts(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    server.authorization_state_after_connect = "opaque-state-1"
    client = make_client(contexts=["office"])
    first = server.wait_for_session(1)
    client.receive(["sales"])
    first.wait_answer(first.push_authorization_state("opaque-state-2"))
    protocol = client.relay_protocol

    first.drop()
    second = server.wait_for_session(2)

    params = connect_params(server, 1)
    assert params["protocol"] == protocol
    assert params["authorization_state"] == "opaque-state-2"
    assert params["contexts"] == ["office", "sales"]
    assert second.protocol == protocol
    assert client.execute("after.reconnect", {})["code"] == "200"
    assert client.relay_protocol == protocol


def test_request_made_while_disconnected_completes_after_reconnect(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    client = make_client()
    server.pause_logins()
    server.session().drop()
    server.wait_for_request("signalwire.connect", count=2)  # the client is trying to log in again
    assert not client.connected
    client.dial_future([[ALICE]])  # a request that does not block its caller
    assert client.stats()["backlog"] == 1
    assert server.requests("calling.dial") == []
    server.resume_logins()
    server.wait_for_request("calling.dial", timeout=5)
    assert client.stats()["backlog"] == 0
    # it went out on the new session, after the login
    assert server.journal.index(
        next(e for e in server.journal if isinstance(e.frame, dict) and e.frame.get("method") == "calling.dial")
    ) > server.journal.index(
        [e for e in server.journal if isinstance(e.frame, dict) and e.frame.get("method") == "signalwire.connect"][1]
    )


def test_in_flight_request_fails_fast_when_the_link_drops(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.answer", silent=True)
    client = make_client(request_timeout=30)
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(client.execute, "calling.answer", {})
        server.wait_for_request("calling.answer")
        server.session().drop()
        with pytest.raises(ConnectionLostError):
            in_flight.result(timeout=3)
    server.wait_for_session(2)
    assert client.execute("after.drop", {})["code"] == "200"


def test_backlog_is_capped(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(request_timeout=10)
    server.pause_logins()
    server.session().drop()
    server.wait_for_request("signalwire.connect", count=2)
    queued = [client.execute_future("queued.method", {"n": n}, timeout=60) for n in range(BACKLOG_LIMIT)]
    with pytest.raises(BacklogFullError) as caught:
        client.execute("one.too.many", {})
    assert caught.value.code == "backlog_full"
    with pytest.raises(BacklogFullError):
        client.execute_future("one.too.many", {})
    server.resume_logins()
    for future in queued:
        assert future.result(timeout=10)["code"] == "200"
    assert len(server.requests("queued.method")) == BACKLOG_LIMIT
    assert [f["params"]["n"] for f in server.requests("queued.method")] == list(range(BACKLOG_LIMIT))


def test_queued_request_that_times_out_is_never_sent(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(request_timeout=0.2)
    server.pause_logins()
    server.session().drop()
    server.wait_for_request("signalwire.connect", count=2)
    with pytest.raises(TimeoutError):
        client.execute("too.late", {})
    server.resume_logins()
    server.wait_for_session(2)
    client.execute("marker", {})
    assert server.requests("too.late") == []


@pytest.mark.parametrize("restart", [False, True])
def test_server_disconnect(server: RelayTestServer, make_client: MakeClient, restart: bool) -> None:
    server.authorization_state_after_connect = "state-blob"
    client = make_client(contexts=["office"])
    first = server.wait_for_session(1)
    protocol = client.relay_protocol
    first.send_disconnect(restart=restart)
    server.wait_for_session(2)
    params = connect_params(server, 1)
    if restart:
        assert "protocol" not in params and "authorization_state" not in params
        assert client.relay_protocol != protocol
    else:
        assert params["protocol"] == protocol and params["authorization_state"] == "state-blob"
        assert client.relay_protocol == protocol
    assert params["contexts"] == ["office"]
    assert client.execute("after.disconnect", {})["code"] == "200"


def test_half_open_link_is_detected_by_pings(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(ping_interval=0.2, request_timeout=0.2)
    server.session().go_silent()
    server.wait_for_session(2, timeout=5)
    silent_pings = [
        e
        for e in server.journal
        if e.session == 0
        and e.direction == "recv"
        and isinstance(e.frame, dict)
        and e.frame.get("method") == "signalwire.ping"
    ]
    assert len(silent_pings) == 3  # three unanswered pings, then the reconnect
    assert client.execute("after.silence", {})["code"] == "200"


def test_quiet_but_healthy_link_is_pinged_and_kept(server: RelayTestServer, make_client: MakeClient) -> None:
    make_client(ping_interval=0.1, request_timeout=0.5)
    server.wait_for_request("signalwire.ping", count=3, timeout=5)
    assert len(server.sessions) == 1


def test_request_timeout_makes_the_link_suspect(server: RelayTestServer, make_client: MakeClient) -> None:
    # a long ping interval: only the suspect probe can notice the silence this fast
    client = make_client(ping_interval=60, request_timeout=0.3)
    server.session().go_silent()
    with pytest.raises(TimeoutError):
        client.execute("calling.answer", {})
    server.wait_for_session(2, timeout=3)
    assert client.execute("after.probe", {})["code"] == "200"


def test_rejected_credentials_on_reconnect_end_run_with_an_error(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    client = make_client(connect=False)
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            client.run()
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion below
            outcome["error"] = error

    runner = threading.Thread(target=run)
    runner.start()
    server.wait_for_session(1)
    server.reject_logins = True
    server.session().drop()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert isinstance(outcome.get("error"), AuthenticationError)
    assert len(server.requests("signalwire.connect")) == 1 + 3  # bounded retries
    assert relay_threads() == []


def test_disconnect_during_backoff_returns_promptly(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(reconnect_backoff=(30.0, 60.0))
    server.session().drop()
    client.disconnect()  # must not wait out a 30 s backoff
    assert relay_threads() == []


def test_first_retry_is_jittered_under_the_minimum(server: RelayTestServer, make_client: MakeClient) -> None:
    make_client(reconnect_backoff=(0.3, 5.0))
    server.session().drop()
    # the first retry comes within 0.3 s (plus the login), never after a fixed 1 s
    server.wait_for_session(2, timeout=0.9)
