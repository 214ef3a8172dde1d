"""The connection engine through the real transport: login, requests, server
requests, malformed frames, lifecycle."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from relay_sync import (
    AuthenticationError,
    ClientClosedError,
    RelayClient,
    RelayError,
    RelayTimeoutError,
    __version__,
)
from relay_sync.rest import create_jwt
from relay_sync.testing import RelayEmulator, RelayTestServer

from .fast_clients import relay_threads

MakeClient = Callable[..., RelayClient]


@pytest.fixture
def server() -> Iterator[RelayTestServer]:
    """The socket tests in this module run against the full emulator, which answers the
    made-up methods they send as markers (any other unknown method gets -32601)."""
    with RelayEmulator() as emulator:
        for method in ("after.garbage", "x.y"):
            emulator.respond(method, result={"code": "200", "message": "OK"})
        yield emulator


def test_connect_frame_carries_version_agent_acks_auth_and_contexts(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    client = make_client(contexts=["office", "sales"])
    params = server.requests("signalwire.connect")[0]["params"]
    assert params["version"] == {"major": 2, "minor": 0, "revision": 0}
    assert params["agent"] == f"relay_sync/{__version__}"
    assert params["event_acks"] is True
    assert params["authentication"] == {"project": "test", "token": "test"}
    assert params["contexts"] == ["office", "sales"]
    assert "protocol" not in params and "authorization_state" not in params
    assert client.connected
    assert client.relay_protocol == server.session().protocol
    assert client.identity == "test@relay-test"
    assert client.authorization is not None and client.authorization["project_id"] == "test"


def test_no_contexts_key_when_there_are_none(server: RelayTestServer, make_client: MakeClient) -> None:
    make_client()
    assert "contexts" not in server.requests("signalwire.connect")[0]["params"]


def test_jwt_login(server: RelayTestServer) -> None:
    pair = create_jwt(project=server.project, token=server.token, host=server.relay_host, scheme="http")
    with RelayClient(jwt_token=pair.jwt_token, host=server.relay_host, scheme="ws") as client:
        assert client.connected
    assert server.requests("signalwire.connect")[0]["params"]["authentication"] == {"jwt_token": pair.jwt_token}


def test_forged_jwt_is_refused(server: RelayTestServer) -> None:
    with pytest.raises(AuthenticationError):
        RelayClient(jwt_token="not-a-jwt-the-space-issued", host=server.relay_host, scheme="ws").connect()


def test_rejected_credentials_raise_promptly_and_leave_nothing(server: RelayTestServer) -> None:
    client = RelayClient("test", "wrong", host=server.relay_host, scheme="ws", request_timeout=5)
    with pytest.raises(AuthenticationError) as caught:
        client.connect()
    assert caught.value.code == -32002
    assert len(server.requests("signalwire.connect")) == 1  # no retry loop inside connect()
    assert relay_threads() == []
    assert not client.connected


def test_unreachable_host_raises_relay_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RelayClient("p", "t", host=f"127.0.0.1:{port}", scheme="ws")
    with pytest.raises(RelayError, match="could not connect"):
        client.connect(timeout=2)
    assert relay_threads() == []


def test_twenty_threads_each_get_their_own_results(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("test.echo", handler=lambda session, params: {"code": "200", "echo": params["n"]})
    client = make_client()

    def worker(thread_no: int) -> None:
        for i in range(100):
            n = thread_no * 1000 + i
            assert client.execute("test.echo", {"n": n})["echo"] == n

    with ThreadPoolExecutor(max_workers=20) as pool:
        for future in [pool.submit(worker, t) for t in range(20)]:
            future.result(timeout=30)
    assert len(server.requests("test.echo")) == 2000


def test_non_2xx_code_raises_with_code_and_message(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.end", code="500", message="boom")
    client = make_client()
    with pytest.raises(RelayError) as caught:
        client.execute("calling.end", {"call_id": "c"})
    assert (caught.value.code, caught.value.message) == ("500", "boom")


def test_json_rpc_error_object_raises(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.play", error={"code": -32601, "message": "no such method"})
    client = make_client()
    with pytest.raises(RelayError) as caught:
        client.execute("calling.play", {})
    assert caught.value.code == -32601


def test_result_without_code_is_success(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("custom.thing", result={"value": 42})
    assert make_client().execute("custom.thing", {}) == {"value": 42}


def test_request_timeout_raises_timeout_error(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.answer", silent=True)
    client = make_client(request_timeout=0.3)
    with pytest.raises(RelayTimeoutError) as caught:
        client.execute("calling.answer", {})
    assert isinstance(caught.value, TimeoutError)
    # the link is probed with a ping right away, and the abandoned request left the table:
    # once a later ping is answered (answers come in order, the server never answers
    # calling.answer), nothing is in flight any more
    server.wait_for_request("signalwire.ping")
    client.execute("signalwire.ping")
    assert client.stats()["in_flight"] == 0


def test_late_response_is_ignored(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("slow.method", delay=0.6)
    client = make_client()
    with pytest.raises(RelayTimeoutError):
        client.execute("slow.method", {}, timeout=0.2)
    server.wait_for_request("slow.method")
    # the late answer arrives and is dropped; the client goes on working
    assert client.execute("signalwire.ping", {}) is not None
    assert client.connected


def test_events_are_acknowledged(server: RelayTestServer, make_client: MakeClient) -> None:
    make_client()
    session = server.session()
    event_id = session.push_event("calling.call.state", {"call_id": "c1", "call_state": "ringing"})
    answer = session.wait_answer(event_id, timeout=2)
    assert answer["result"] == {}
    assert session.acked(event_id)


def test_unknown_event_types_are_acked_and_dropped(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client()
    session = server.session()
    event_id = session.push_event("video.room.started", {"room": "r"})
    assert session.wait_answer(event_id, timeout=2)["result"] == {}
    assert client.execute("signalwire.ping", {}) is not None


def test_server_ping_is_answered(server: RelayTestServer, make_client: MakeClient) -> None:
    make_client()
    session = server.session()
    assert session.wait_answer(session.ping(), timeout=2)["result"] == {}


def test_unknown_server_request_gets_an_error_answer(server: RelayTestServer, make_client: MakeClient) -> None:
    make_client()
    session = server.session()
    answer = session.wait_answer(session.request("signalwire.mystery", {}), timeout=2)
    assert answer["error"]["code"] == -32601


@pytest.mark.parametrize(
    "raw",
    [
        "this is not json",
        "[1, 2, 3]",
        "42",
        '"a string"',
        "null",
        b"\xff\xfe\x00binary",
        '{"method": 5, "id": "x"}',
        '{"id": "no-such-request", "result": {"code": "200"}}',
        '{"id": 12, "result": "not an object"}',
        '{"jsonrpc": "2.0", "method": "signalwire.event", "id": "e1", "params": "not an object"}',
        '{"jsonrpc": "2.0", "method": "signalwire.event", "id": "e2", "params": {"event_type": 7}}',
        '{"jsonrpc": "2.0", "method": "signalwire.event", "params": {"event_type": "calling.call.state"}}',
        "[" * 5000 + "]" * 5000,
    ],
)
def test_malformed_frames_are_dropped_and_the_client_keeps_working(
    server: RelayTestServer, make_client: MakeClient, raw: Any
) -> None:
    client = make_client()
    server.session().send(raw)
    assert client.execute("after.garbage", {}) == {"code": "200", "message": "OK"}
    assert client.connected


def test_malformed_frame_is_logged(
    server: RelayTestServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    with caplog.at_level(logging.WARNING, logger="relay_sync"):
        server.session().send("{broken")
        client.execute("after.garbage", {})
    assert any("not valid JSON" in r.getMessage() for r in caplog.records)


def test_receive_and_unreceive(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(contexts=["office"])
    client.receive(["sales"])
    assert server.requests("signalwire.receive")[0]["params"] == {"contexts": ["sales"]}
    assert client.contexts == ["office", "sales"]
    assert server.session().contexts == {"office", "sales"}
    client.unreceive(["office"])
    assert server.requests("signalwire.unreceive")[0]["params"] == {"contexts": ["office"]}
    assert client.contexts == ["sales"]


def test_execute_before_connect_is_a_clear_error(make_client: MakeClient) -> None:
    client = make_client(connect=False)
    with pytest.raises(RelayError, match="connect"):
        client.execute("signalwire.ping", {})


def test_disconnect_fails_waiting_requests_and_is_final(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.answer", silent=True)
    client = make_client(request_timeout=30)
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(client.execute, "calling.answer", {})
        server.wait_for_request("calling.answer")
        client.disconnect()
        with pytest.raises(ClientClosedError):
            waiting.result(timeout=2)
    assert relay_threads() == []
    client.disconnect()  # idempotent
    client.close()
    with pytest.raises(RelayError, match="final"):
        client.connect()
    with pytest.raises(RelayError):
        client.execute("signalwire.ping", {})


def test_context_manager_connects_and_disconnects(server: RelayTestServer) -> None:
    with RelayClient(**server.client_kwargs()) as client:
        assert client.connected
        assert relay_threads() != []
    assert not client.connected
    assert relay_threads() == []


def test_run_serves_until_stop_from_another_thread(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            client.run()
            outcome["returned"] = True
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion below
            outcome["error"] = error

    runner = threading.Thread(target=run)
    runner.start()
    server.wait_for_session(1)
    client.stop()
    runner.join(timeout=5)
    assert not runner.is_alive()
    assert outcome == {"returned": True}
    assert relay_threads() == []


def test_max_connections_per_process(server: RelayTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "1")
    first = RelayClient(**server.client_kwargs())
    second = RelayClient(**server.client_kwargs())
    first.connect()
    try:
        with pytest.raises(RelayError, match="RELAY_MAX_CONNECTIONS"):
            second.connect()
    finally:
        first.disconnect()
    second.connect()  # the slot was released
    second.disconnect()


def test_debug_logs_never_show_secrets(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "4")
    secrets = {"project": "proj-5ecret", "token": "tok-5ecret", "state": "auth-5tate-blob"}
    with RelayTestServer(project=secrets["project"], token=secrets["token"]) as srv:
        srv.authorization_state_after_connect = secrets["state"]
        with caplog.at_level(logging.DEBUG, logger="relay_sync"), RelayClient(**srv.client_kwargs()) as client:
            session = srv.wait_for_session(1)
            session.push_event("calling.call.state", {"call_id": "c", "project_id": secrets["project"]})
            client.execute("signalwire.ping", {})
            session.drop()
            srv.wait_for_session(2)
    ours = [r for r in caplog.records if r.name.startswith("relay_sync")]
    assert any("send" in r.getMessage() for r in ours)  # frames were logged, masked
    for record in ours:
        text = record.getMessage()
        for secret in secrets.values():
            assert secret not in text


def test_frames_are_compact_json(server: RelayTestServer, make_client: MakeClient) -> None:
    make_client().execute("x.y", {"a": 1})
    frame = server.requests("x.y")[0]
    assert frame["jsonrpc"] == "2.0" and isinstance(frame["id"], str) and frame["params"] == {"a": 1}
    json.dumps(frame)
