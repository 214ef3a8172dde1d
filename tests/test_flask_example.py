"""examples/flask_app: Flask views sending an SMS, starting a call and
delivering a task through one lazily created RelayClient, run with Flask's
test client against the test server (the task's REST call through
``responses``) and against the emulator (the call, the task reaching a
worker, and the client across a fork)."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import responses

from relay_sync import AuthenticationError
from relay_sync.testing import RelayEmulator, RelayTestServer

from .fast_clients import FAST, relay_threads
from .polling import read_until

pytest.importorskip("flask")

APP_PATH = Path(__file__).resolve().parent.parent / "examples" / "flask_app" / "app.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("relay_sync_flask_example", APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app(server: RelayTestServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "1")  # one client per process, as in production
    flask_app = load_example().create_app(**server.client_kwargs(**FAST))
    yield flask_app
    flask_app.extensions["relay"].close()
    assert relay_threads() == [], "the example's client left threads running"


def test_no_client_is_created_before_the_first_request(server: RelayTestServer, app: Any) -> None:
    assert server.sessions == []


def test_the_sms_view_sends_a_message(server: RelayTestServer, app: Any) -> None:
    reply = app.test_client().post("/sms", json={"to": "+15552222222", "from": "+15551111111", "body": "Hello!"})
    assert reply.status_code == 202
    [frame] = server.requests("messaging.send")
    assert frame["params"]["body"] == "Hello!" and frame["params"]["to_number"] == "+15552222222"
    assert reply.get_json()["state"] == "queued"
    assert reply.get_json()["message_id"]


def test_the_sms_view_rejects_a_message_without_body_or_media(server: RelayTestServer, app: Any) -> None:
    reply = app.test_client().post("/sms", json={"to": "+15552222222", "from": "+15551111111"})
    assert reply.status_code == 400
    assert "body" in reply.get_json()["error"]


def test_concurrent_first_requests_share_one_client(server: RelayTestServer, app: Any) -> None:
    start = threading.Barrier(10)
    statuses: list[int] = []

    def post(n: int) -> None:
        start.wait(timeout=5)
        reply = app.test_client().post("/sms", json={"to": "+15552222222", "from": "+15551111111", "body": f"n{n}"})
        statuses.append(reply.status_code)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert statuses == [202] * 10
    assert len(server.requests("signalwire.connect")) == 1
    assert len(server.requests("messaging.send")) == 10


def test_the_task_view_delivers_a_task(server: RelayTestServer, app: Any) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, f"http://{server.relay_host}/api/relay/rest/tasks", status=204)
        reply = app.test_client().post("/tasks/office", json={"order": 42})
        [call] = mock.calls
    assert reply.status_code == 202
    assert json.loads(call.request.body or b"") == {"context": "office", "message": {"order": 42}}


def test_the_task_view_reports_a_refused_task(server: RelayTestServer, app: Any) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, f"http://{server.relay_host}/api/relay/rest/tasks", status=401, body="nope")
        reply = app.test_client().post("/tasks/office", json={"order": 42})
    assert reply.status_code == 502
    assert "401" in reply.get_json()["error"]


# -- against the emulator: a call started from a view, a task reaching a worker, fork safety --


@pytest.fixture
def emulator() -> Iterator[RelayEmulator]:
    with RelayEmulator(time_factor=0.01) as running:
        yield running


@pytest.fixture
def emulator_app(emulator: RelayEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "2")  # the app's client, and a worker in one test
    flask_app = load_example().create_app(**emulator.client_kwargs(**FAST))
    yield flask_app
    flask_app.extensions["relay"].close()


def test_the_call_view_dials_speaks_and_hangs_up(emulator: RelayEmulator, emulator_app: Any) -> None:
    emulator.phone("+15552222222", after=2)

    reply = emulator_app.test_client().post(
        "/calls", json={"to": "+15552222222", "from": "+15551111111", "say": "Your order has shipped."}
    )

    assert reply.status_code == 202  # at once: the view does not wait for the phone to answer
    tag = reply.get_json()["tag"]
    emulator.wait_for_request("calling.end", timeout=5)  # answered, spoken to, hung up
    [dial] = emulator.requests("calling.dial")
    assert dial["params"]["tag"] == tag
    assert dial["params"]["devices"] == [
        [{"type": "phone", "params": {"to_number": "+15552222222", "from_number": "+15551111111"}}]
    ]
    [play] = emulator.requests("calling.play")
    assert play["params"]["play"] == [{"type": "tts", "params": {"text": "Your order has shipped."}}]
    happened = [entry.text for entry in emulator.transcript]
    assert happened.index("+15552222222 answered") < happened.index('played "Your order has shipped."')
    assert happened.index('played "Your order has shipped."') < happened.index("hung up (hangup)")


def test_the_call_view_wants_to_from_and_say(emulator: RelayEmulator, emulator_app: Any) -> None:
    reply = emulator_app.test_client().post("/calls", json={"to": "+15552222222"})

    assert reply.status_code == 400
    assert emulator.requests("calling.dial") == []


def test_the_sms_view_message_is_delivered(emulator: RelayEmulator, emulator_app: Any) -> None:
    reply = emulator_app.test_client().post("/sms", json={"to": "+15552222222", "from": "+15551111111", "body": "Hi"})

    assert reply.status_code == 202
    emulator.wait_for_transcript("message to +15552222222: delivered")
    assert emulator.requests("messaging.send")[0]["params"]["body"] == "Hi"


def test_the_alert_view_publishes_to_pubsub_subscribers(emulator: RelayEmulator, emulator_app: Any) -> None:
    dashboard = emulator.client(**FAST)  # another process's client, listening on the channel
    dashboard.connect()
    try:
        received: Future[Any] = Future()
        dashboard.pubsub.listen(["ops"], on_message=received.set_result)

        reply = emulator_app.test_client().post("/alerts/ops", json={"level": "warning", "text": "disk 90% full"})

        assert reply.status_code == 200, reply.get_json()
        alert = received.result(timeout=5)
        assert (alert.channel, alert.content) == ("ops", {"level": "warning", "text": "disk 90% full"})
        assert alert.meta == {"source": "flask"}
    finally:
        dashboard.disconnect()


def test_the_alert_view_refuses_what_is_not_json(emulator: RelayEmulator, emulator_app: Any) -> None:
    reply = emulator_app.test_client().post("/alerts/ops", data="disk full", content_type="text/plain")

    assert reply.status_code == 400
    assert emulator.requests("chat.publish") == []


def test_the_task_view_reaches_the_worker_on_the_context(emulator: RelayEmulator, emulator_app: Any) -> None:
    worker = emulator.client(contexts=["office"], **FAST)
    received: Future[Any] = Future()
    worker.on_task(lambda task: received.set_result(task.message))
    with worker:
        reply = emulator_app.test_client().post("/tasks/office", json={"order": 42})

        assert reply.status_code == 202
        assert received.result(timeout=5) == {"order": 42}


def run_in_child(work: Callable[[], dict], timeout: float = 15.0) -> dict:
    """Fork; run ``work`` in the child and return what it reported (JSON over a pipe).
    A child that reports nothing within ``timeout`` (deadlocked) is killed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running pytest's teardown
        os.close(read_end)
        try:
            report = work()
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            report = {"error": repr(error)}
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            return {"error": f"the child reported nothing within {timeout} s"}
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def post_sms_in_child(flask_app: Any, body: str) -> dict:
    """For run_in_child: the child's answer to POST /sms, and its client's session."""
    reply = flask_app.test_client().post("/sms", json={"to": "+15552222222", "from": "+15551111111", "body": body})
    relay = flask_app.extensions["relay"]
    protocol = relay.get().relay_protocol
    relay.close()
    return {"status": reply.status_code, "protocol": protocol}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_client_made_before_a_fork_logs_in_afresh_in_the_worker(emulator: RelayEmulator, emulator_app: Any) -> None:
    # The first request in the parent (gunicorn --preload, say) made and connected the client.
    assert (
        emulator_app.test_client()
        .post("/sms", json={"to": "+15552222222", "from": "+15551111111", "body": "p"})
        .status_code
        == 202
    )
    parent_protocol = emulator_app.extensions["relay"].get().relay_protocol

    report = run_in_child(lambda: post_sms_in_child(emulator_app, "from the worker"))

    assert report["status"] == 202, report
    assert report["protocol"] != parent_protocol  # its own session, not the parent's socket
    emulator.wait_for_session(2)
    bodies = {frame["params"]["body"] for frame in emulator.requests("messaging.send")}
    assert bodies == {"p", "from the worker"}
    # the parent's client goes on as before
    assert (
        emulator_app.test_client()
        .post("/sms", json={"to": "+15552222222", "from": "+15551111111", "body": "q"})
        .status_code
        == 202
    )
    assert emulator_app.extensions["relay"].get().relay_protocol == parent_protocol


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_while_a_thread_holds_the_lazy_lock_does_not_deadlock_the_worker(
    emulator: RelayEmulator, emulator_app: Any
) -> None:
    relay = emulator_app.extensions["relay"]
    with relay.creating:  # a request thread of the parent is creating the client at the moment of the fork
        report = run_in_child(lambda: post_sms_in_child(emulator_app, "after the fork"))

    assert report["status"] == 202, report
    assert [frame["params"]["body"] for frame in emulator.requests("messaging.send")] == ["after the fork"]


def test_without_credentials_the_app_runs_on_an_emulator_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN", "SIGNALWIRE_JWT_TOKEN", "SIGNALWIRE_SPACE"):
        monkeypatch.delenv(name, raising=False)
    flask_app = load_example().create_app(**FAST)
    relay = flask_app.extensions["relay"]
    try:
        web = flask_app.test_client()
        sms = web.post("/sms", json={"to": "+15552222222", "from": "+15551111111", "body": "Hi"})
        call = web.post("/calls", json={"to": "+15553333333", "from": "+15551111111", "say": "Hello there"})

        assert (sms.status_code, call.status_code) == (202, 202)
        relay.emulator.wait_for_transcript("message to +15552222222: delivered")
        relay.emulator.wait_for_transcript("call with +15553333333 ended (hangup)")
        assert 'played "Hello there"' in [entry.text for entry in relay.emulator.transcript]
    finally:
        relay.close()
    assert relay.emulator is None
    assert relay_threads() == [], "the example's client left threads running"


def wait_for_status(http: Any, path: str, status: int, timeout: float = 10.0) -> Any:
    """GET ``path`` until it answers ``status``: a probe has nothing to block on, so ask again."""
    return read_until(lambda: http.get(path), lambda reply: reply.status_code == status, timeout, f"{path} {status}")


def test_healthz_follows_the_relay_link(server: RelayTestServer, app: Any) -> None:
    http = app.test_client()
    reply = http.get("/healthz")  # the first probe connects the client
    assert reply.status_code == 200
    assert reply.get_json()["healthy"] is True and reply.get_json()["state"] == "connected"

    server.pause_logins()
    server.session().drop()
    server.wait_for_request("signalwire.connect", count=2)  # logging in again, held by the server
    reply = http.get("/healthz")
    assert reply.status_code == 503
    assert reply.get_json()["healthy"] is False and reply.get_json()["state"] == "reconnecting"

    server.resume_logins()
    reply = wait_for_status(http, "/healthz", 200)
    assert reply.status_code == 200 and reply.get_json()["reconnects"] == 1


def test_healthz_is_503_while_relay_refuses_the_credentials(server: RelayTestServer, app: Any) -> None:
    server.reject_logins = True
    reply = app.test_client().get("/healthz")
    assert reply.status_code == 503
    assert reply.get_json()["healthy"] is False and "Authentication failed" in reply.get_json()["error"]


@pytest.mark.parametrize("path", ["/sms", "/calls"])
def test_a_json_array_body_is_a_bad_request(server: RelayTestServer, app: Any, path: str) -> None:
    reply = app.test_client().post(path, json=["+15552222222", "+15551111111"])

    assert reply.status_code == 400
    assert reply.get_json()["error"]


def test_a_client_that_gave_up_is_replaced_on_the_next_request(server: RelayTestServer, app: Any) -> None:
    relay = app.extensions["relay"]
    first = relay.get()
    gave_up = threading.Event()
    first.on_disconnected(lambda error: isinstance(error, AuthenticationError) and gave_up.set())

    server.reject_logins = True  # an auth outage: every reconnect is refused
    for session in server.live_sessions():
        session.drop()
    assert gave_up.wait(10)  # refused three times: the client closed itself for good
    first.disconnect()  # returns once that closing is over (a no-op for the outcome)
    server.reject_logins = False  # the outage is over

    reply = app.test_client().post("/sms", json={"to": "+15552222222", "from": "+15551111111", "body": "Back"})

    assert reply.status_code == 202
    assert relay.get() is not first and relay.get().connected
