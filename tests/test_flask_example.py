"""examples/flask_app: Flask views sending an SMS and delivering a task
through one lazily created RelayClient, run with Flask's test client against
the test server (the task's REST call through ``responses``)."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import responses

from relay_sync.testing import RelayTestServer

from .conftest import FAST, relay_threads

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
