"""``RelayClient.execute_future``: a raw request without blocking, through the real socket.

The future settles as ``execute()`` would return or raise; its done-callbacks
run on the handler pool; its timeout is kept without anyone blocking on it.
"""

from __future__ import annotations

import gc
import queue
import threading
import weakref
from concurrent.futures import Future
from typing import Any, Callable

import pytest

from relay_sync import (
    ClientClosedError,
    ConnectionLostError,
    NotConnectedError,
    RelayClient,
    RelayError,
    RelayTimeoutError,
)
from relay_sync.testing import RelayTestServer

from .calling_support import LogSignal

MakeClient = Callable[..., RelayClient]
WAIT = 10.0


def test_results_arrive_and_requests_go_out_in_the_order_made(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("test.echo", handler=lambda session, params: {"code": "200", "echo": params["n"]})
    client = make_client()
    futures = [client.execute_future("test.echo", {"n": n}) for n in range(100)]
    assert [future.result(timeout=WAIT)["echo"] for future in futures] == list(range(100))
    assert [frame["params"]["n"] for frame in server.requests("test.echo")] == list(range(100))


def test_an_error_answer_is_the_futures_exception(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.end", code="500", message="boom")
    future = make_client().execute_future("calling.end", {"call_id": "c"})
    error = future.exception(timeout=WAIT)
    assert isinstance(error, RelayError)
    assert (error.code, error.message) == ("500", "boom")


def test_no_answer_within_the_timeout_fails_the_future(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.answer", silent=True)
    client = make_client(request_timeout=30)
    future = client.execute_future("calling.answer", {}, timeout=0.2)
    error = future.exception(timeout=WAIT)  # nobody blocked on it: the timer thread kept the deadline
    assert isinstance(error, RelayTimeoutError) and isinstance(error, TimeoutError)
    assert "calling.answer" in str(error)
    stats = client.stats()
    assert stats["requests_timed_out"] == 1
    assert "calling.answer" not in stats["in_flight_methods"]  # abandoned: its table entry is gone


def test_the_default_timeout_is_request_timeout(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.answer", silent=True)
    future = make_client(request_timeout=0.2).execute_future("calling.answer", {})
    assert isinstance(future.exception(timeout=WAIT), RelayTimeoutError)


def test_a_request_queued_while_reconnecting_that_times_out_is_never_sent(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    client = make_client(request_timeout=30)
    server.pause_logins()
    server.session().drop()
    server.wait_for_request("signalwire.connect", count=2)
    future = client.execute_future("too.late", {}, timeout=0.2)
    assert isinstance(future.exception(timeout=WAIT), RelayTimeoutError)
    assert client.stats()["backlog"] == 0
    server.resume_logins()
    server.wait_for_session(2)
    client.execute("marker", {})
    assert server.requests("too.late") == []


def test_a_lost_link_fails_a_request_in_flight(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.answer", silent=True)
    client = make_client(request_timeout=30)
    future = client.execute_future("calling.answer", {})
    server.wait_for_request("calling.answer")
    server.session().drop()
    assert isinstance(future.exception(timeout=WAIT), ConnectionLostError)


def test_disconnect_fails_a_waiting_future(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.answer", silent=True)
    client = make_client(request_timeout=30)
    future = client.execute_future("calling.answer", {})
    server.wait_for_request("calling.answer")
    client.disconnect()
    assert isinstance(future.exception(timeout=WAIT), ClientClosedError)
    with pytest.raises(ClientClosedError):
        client.execute_future("after.disconnect", {})


def test_before_connect_it_raises_at_once(make_client: MakeClient) -> None:
    with pytest.raises(NotConnectedError):
        make_client(connect=False).execute_future("signalwire.ping", {})


def test_done_callbacks_run_on_the_handler_pool(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("slow.method", delay=0.1)  # the callback is added before the answer comes
    client = make_client()
    ran_on: queue.Queue[str] = queue.Queue()
    future = client.execute_future("slow.method", {})
    future.add_done_callback(lambda done: ran_on.put(threading.current_thread().name))
    assert ran_on.get(timeout=WAIT).startswith("relay_sync-handler")
    assert future.result(timeout=0)["code"] == "200"


def test_a_raising_done_callback_is_logged_and_the_client_goes_on(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    client = make_client()

    def broken(done: Future[Any]) -> None:
        raise ValueError("the callback broke")

    with LogSignal("done-callback") as signal:
        client.execute_future("any.method", {}).add_done_callback(broken)
        assert signal.seen.wait(WAIT)
    (record,) = signal.records
    assert "broken" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert client.execute("after.callback", {})["code"] == "200"


def test_the_future_cannot_be_cancelled(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("calling.answer", silent=True)
    client = make_client(request_timeout=30)
    future = client.execute_future("calling.answer", {})
    assert future.cancel() is False
    assert future.running()
    server.wait_for_request("calling.answer")  # sent all the same


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1.0, "5"])
def test_a_bad_timeout_is_refused_before_anything_is_sent(
    server: RelayTestServer, make_client: MakeClient, timeout: Any
) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="timeout"):
        client.execute_future("never.sent", {}, timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        client.execute("never.sent", {}, timeout=timeout)
    client.execute("marker", {})  # answered in order: had they gone out, they would be recorded by now
    assert server.requests("never.sent") == []


def test_an_answered_request_holds_nothing_until_its_far_timeout(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    server.respond("big.answer", result={"code": "200", "blob": "x" * 100_000})
    client = make_client()
    futures = [client.execute_future("big.answer", {}, timeout=600) for _ in range(50)]
    assert all(future.result(timeout=WAIT)["code"] == "200" for future in futures)
    alive = [weakref.ref(future) for future in futures]
    del futures
    gc.collect()
    assert [ref for ref in alive if ref() is not None] == []  # no timer still holds them for ten minutes
