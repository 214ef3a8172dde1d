"""Tasks: queuing.relay.tasks events reach on_task handlers, and
client.deliver_task posts to the REST endpoint with the client's credentials
(the HTTP side through ``responses``)."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, Callable

import pytest
import requests
import responses

from relay_sync import RelayClient
from relay_sync.errors import RestError
from relay_sync.events import TaskEvent
from relay_sync.testing import RelayTestServer

MakeClient = Callable[..., RelayClient]
JSONDict = dict[str, Any]


def task_envelope(context: str, message: JSONDict) -> JSONDict:
    """A queuing.relay.tasks event as the server sends it: no nested params."""
    return {
        "event_type": "queuing.relay.tasks",
        "context": context,
        "message": message,
        "timestamp": 1700000000.5,
        "project_id": "test",
        "space_id": "space-1",
    }


def tasks_url(server: RelayTestServer) -> str:
    return f"http://{server.relay_host}/api/relay/rest/tasks"


def test_a_task_event_reaches_on_task_handlers_on_the_handler_pool(
    server: RelayTestServer, client: RelayClient
) -> None:
    received: list[tuple[TaskEvent, str]] = []
    arrived = threading.Event()

    @client.on_task
    def handle(task: TaskEvent) -> None:
        received.append((task, threading.current_thread().name))
        arrived.set()

    server.session().push_envelope(task_envelope("office", {"job": "invoice", "id": 7}))
    assert arrived.wait(2)
    [(task, thread)] = received
    assert isinstance(task, TaskEvent)
    assert task.message == {"job": "invoice", "id": 7}
    assert task.context == "office"
    assert task.timestamp == 1700000000.5
    assert task.params["space_id"] == "space-1"
    assert thread.startswith("relay_sync-handler")


def test_every_task_handler_runs_and_a_failing_one_does_not_stop_the_next(
    server: RelayTestServer, client: RelayClient
) -> None:
    done = threading.Event()

    @client.on_task
    def broken(task: TaskEvent) -> None:
        raise RuntimeError("handler bug")

    client.on_task(lambda task: done.set())
    server.session().push_envelope(task_envelope("office", {}))
    assert done.wait(2)


def test_deliver_task_posts_the_task_with_the_clients_credentials(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    client = make_client(connect=False)  # REST needs no socket
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, tasks_url(server), status=204)
        client.deliver_task("office", {"job": "invoice", "id": 7})
        [call] = mock.calls
    request = call.request
    assert json.loads(request.body or b"") == {"context": "office", "message": {"job": "invoice", "id": 7}}
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"test:test").decode()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("relay_sync/")


@pytest.mark.parametrize(
    ("status", "body"), [(401, "Unauthorized"), (404, "no such space"), (422, '{"errors":["context"]}'), (500, "boom")]
)
def test_deliver_task_failures_carry_status_and_body(
    server: RelayTestServer, make_client: MakeClient, status: int, body: str
) -> None:
    client = make_client(connect=False)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, tasks_url(server), status=status, body=body)
        with pytest.raises(RestError) as caught:
            client.deliver_task("office", {"job": 1})
    assert caught.value.status == status
    assert body in caught.value.body
    assert "test:test" not in str(caught.value)


def test_deliver_task_network_failure_is_a_rest_error(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, tasks_url(server), body=requests.ConnectionError("refused"))
        with pytest.raises(RestError) as caught:
            client.deliver_task("office", {"job": 1})
    assert caught.value.status == 0


def test_a_task_delivered_over_rest_reaches_the_client_listening_on_its_context(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    """The whole story: a web process delivers, the RELAY process's handler gets it."""
    worker = make_client(contexts=["office"])
    web = make_client(connect=False)
    got: list[Any] = []
    arrived = threading.Event()

    @worker.on_task
    def handle(task: TaskEvent) -> None:
        got.append(task.message)
        arrived.set()

    def relay_to_listeners(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        task = json.loads(request.body or b"")
        for session in server.sessions:
            if task["context"] in session.contexts:
                session.push_envelope(task_envelope(task["context"], task["message"]))
        return 204, {}, ""

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, tasks_url(server), callback=relay_to_listeners)
        web.deliver_task("office", {"order": 99})
    assert arrived.wait(2)
    assert got == [{"order": 99}]
