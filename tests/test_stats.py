"""client.stats(), client.state and client.healthy(): what an operator reads
about a live client, checked against what the server saw."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

import relay_sync
from relay_sync import ConnectionState, RelayClient, RelayError, RelayTimeoutError
from relay_sync.testing import RelayEmulator, RelayTestServer

from .polling import read_until

MakeClient = Callable[..., RelayClient]

API_KEYS = {
    "state",
    "connects",
    "reconnects",
    "requests_sent",
    "requests_failed",
    "requests_timed_out",
    "in_flight",
    "backlog",
    "active_calls",
    "calls_passed",
    "handlers_busy",
    "handler_threads",
    "last_rtt_ms",
}
COUNTERS = ("connects", "reconnects", "requests_sent", "requests_failed", "requests_timed_out", "calls_passed")


@pytest.fixture
def server() -> Iterator[RelayEmulator]:
    with RelayEmulator() as emulator:
        for method in ("ok.method", "queued.method", "after.reconnect"):
            emulator.respond(method, code="200")
        yield emulator


def sent_by_client(server: RelayTestServer) -> int:
    """Requests the server received from clients, logins aside."""
    return len([f for f in server.requests() if f["method"] != "signalwire.connect"])


def test_connection_state_is_a_str_enum_exported_from_the_top_level() -> None:
    assert relay_sync.ConnectionState is ConnectionState
    assert [state.value for state in ConnectionState] == [
        "disconnected",
        "connecting",
        "connected",
        "reconnecting",
        "closed",
    ]
    assert ConnectionState.CONNECTED == "connected"
    assert str(ConnectionState.CLOSED) == "closed"
    assert json.dumps({"state": ConnectionState.RECONNECTING}) == '{"state": "reconnecting"}'


def test_stats_before_connect_during_and_after_close(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False)
    before = client.stats()
    assert API_KEYS <= set(before)
    assert before["state"] == "disconnected" and client.state is ConnectionState.DISCONNECTED
    assert {key: before[key] for key in COUNTERS} == dict.fromkeys(COUNTERS, 0)
    assert before["last_rtt_ms"] is None
    assert not client.healthy()

    client.connect()
    client.execute("signalwire.receive", {"contexts": ["office"]})
    live = client.stats()
    assert live["state"] == "connected" and client.state is ConnectionState.CONNECTED
    assert live["connects"] == 1 and live["reconnects"] == 0
    assert live["requests_sent"] == sent_by_client(server) == 1
    assert live["requests_failed"] == live["requests_timed_out"] == live["in_flight"] == live["backlog"] == 0
    assert live["last_rtt_ms"] > 0
    assert live["request_latency"]["count"] == 1
    assert client.healthy()
    json.dumps(live)  # a /stats endpoint can serve it as it is

    client.disconnect()
    after = client.stats()
    assert after["state"] == "closed" and client.state is ConnectionState.CLOSED
    assert after["requests_sent"] == 1
    assert not client.healthy()


def test_state_is_connecting_while_the_login_is_held(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False, connect_timeout=30)
    server.pause_logins()
    with ThreadPoolExecutor(max_workers=1) as pool:
        connecting = pool.submit(client.connect)
        server.wait_for_request("signalwire.connect")
        assert client.state == "connecting"
        assert not client.healthy()
        server.resume_logins()
        connecting.result(timeout=10)
    assert client.state == "connected"


def test_state_is_reconnecting_while_the_link_is_down(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client()
    server.pause_logins()
    server.session().drop()
    server.wait_for_request("signalwire.connect", count=2)  # the client is logging in again
    assert client.state == "reconnecting"
    assert not client.healthy()
    server.resume_logins()
    server.wait_for_session(2)
    client.execute("after.reconnect", {})
    stats = client.stats()
    assert (stats["state"], stats["connects"], stats["reconnects"]) == ("connected", 2, 1)


def test_requests_queued_while_reconnecting_are_the_backlog(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(request_timeout=30)
    server.pause_logins()
    server.session().drop()
    server.wait_for_request("signalwire.connect", count=2)
    with ThreadPoolExecutor(max_workers=3) as pool:
        queued = [pool.submit(client.execute, "queued.method", {"n": n}) for n in range(3)]
        stats = wait_for_stats(client, lambda s: s["backlog"] == 3)
        assert stats["in_flight"] == 0 and stats["requests_sent"] == 3
        server.resume_logins()
        for future in queued:
            assert future.result(timeout=10)["code"] == "200"
    stats = client.stats()
    assert (stats["backlog"], stats["in_flight"], stats["requests_failed"]) == (0, 0, 0)


def wait_for_stats(
    client: RelayClient, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """The first ``stats()`` snapshot that satisfies ``predicate``."""
    return read_until(client.stats, predicate, timeout, "a matching stats() snapshot")


def test_stats_stay_consistent_while_fifty_threads_work(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("fails.method", code="500", message="the server says no")
    server.respond("silent.method", silent=True)
    client = make_client(request_timeout=30, ping_interval=60)
    start = client.stats()
    threads, rounds = 50, 8
    done = threading.Event()

    def work(_: int) -> None:
        for n in range(rounds):
            assert client.execute("ok.method", {"n": n})["code"] == "200"
        with pytest.raises(RelayError):
            client.execute("fails.method", {})
        with pytest.raises(RelayTimeoutError):
            client.execute("silent.method", {}, timeout=0.2)

    snapshots: list[dict[str, Any]] = []

    def watch() -> None:
        while not done.is_set():
            snapshots.append(client.stats())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(work, range(threads)))
    finally:
        done.set()
        watcher.join()
    # At rest: the keepalive probes that the timeouts set off have their answers,
    # and the server has seen every request (the silent ones included).
    end = wait_for_stats(client, lambda s: s["in_flight"] == 0)
    server.wait_for_request("silent.method", count=threads)

    assert len(snapshots) > 1
    for earlier, later in zip([start, *snapshots], [*snapshots, end]):
        assert API_KEYS <= set(later)
        assert later["state"] == "connected"
        for key in COUNTERS:
            assert later[key] >= earlier[key], key
        settled = later["requests_failed"] + later["requests_timed_out"] + later["in_flight"] + later["backlog"]
        assert later["requests_sent"] >= settled
        assert 0 <= later["handlers_busy"] <= later["handler_threads"]

    # Exact at rest: every request the server saw was counted, and accounted for.
    assert end["requests_sent"] == sent_by_client(server)
    assert end["requests_failed"] - start["requests_failed"] == threads
    assert end["requests_timed_out"] - start["requests_timed_out"] == threads
    assert end["backlog"] == 0
    answered = end["requests_sent"] - end["requests_timed_out"]
    assert end["request_latency"]["count"] == answered
    assert end["request_latency"]["buckets"][-1][1] <= answered
    assert end["last_rtt_ms"] is not None


def test_active_calls_passed_calls_and_busy_handlers(server: RelayEmulator, make_client: MakeClient) -> None:
    client = make_client(contexts=["office"], max_active_calls=1)
    release = threading.Event()
    answered = threading.Event()

    @client.on_call
    def hold_the_line(call: relay_sync.Call) -> None:
        call.answer()
        answered.set()
        release.wait(timeout=30)
        call.hangup()

    server.place_call("+15550000001", "+15551110001", context="office")
    assert answered.wait(timeout=5)
    server.place_call("+15550000001", "+15551110002", context="office")
    server.wait_for_request("calling.pass")
    stats = client.stats()
    assert (stats["active_calls"], stats["inbound_calls"], stats["calls_passed"]) == (1, 1, 1)
    assert stats["handlers_busy"] >= 1 and stats["handler_threads"] >= stats["handlers_busy"]
    release.set()
    stats = wait_for_stats(client, lambda s: s["active_calls"] == 0 and s["handlers_busy"] == 0)
    assert stats["inbound_calls"] == 0


def test_in_flight_requests_are_counted_by_method(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("never.answered", silent=True)
    server.respond("also.never", silent=True)
    client = make_client(request_timeout=30)
    waiting = [client.execute_future("never.answered", {}) for _ in range(3)] + [
        client.execute_future("also.never", {})
    ]
    server.wait_for_request("also.never")
    stats = client.stats()
    by_method = {method: n for method, n in stats["in_flight_methods"].items() if method != "signalwire.ping"}
    assert by_method == {"never.answered": 3, "also.never": 1}
    assert sum(stats["in_flight_methods"].values()) == stats["in_flight"]  # read together
    json.dumps(stats)  # still plain JSON
    client.disconnect()
    assert all(isinstance(future.exception(timeout=10), RelayError) for future in waiting)
    assert client.stats()["in_flight_methods"] == {}
