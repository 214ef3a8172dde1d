"""The emulator's messaging, tasks and REST side through the real SDK and
the real REST helpers: message state progression and failures, inbound
messages, tasks over HTTP, JWTs minted, accepted, refreshed and refused."""

from __future__ import annotations

import queue
from typing import Any

import pytest
import requests

from relay_sync import RelayClient, RelayError, rest
from relay_sync.testing import RelayEmulator

from .emulator_support import CALLER, OFFICE, Connect


def test_an_outbound_message_is_queued_initiated_sent_then_delivered(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()

    message = client.send_message(to_number=CALLER, from_number=OFFICE, body="Your table is ready")
    final = message.wait(timeout=2)

    assert final.params["message_state"] == "delivered"
    assert message.state == "delivered"
    states = [e["params"]["message_state"] for e in emulator.events("messaging.state")]
    assert states == ["queued", "initiated", "sent", "delivered"]
    assert emulator.requests("messaging.send")[0]["params"]["body"] == "Your table is ready"


@pytest.mark.parametrize("outcome", ["undelivered", "failed"])
def test_a_phone_can_refuse_messages(emulator: RelayEmulator, connect: Connect, outcome: str) -> None:
    emulator.phone(CALLER, sms=outcome)
    message = connect().send_message(to_number=CALLER, from_number=OFFICE, body="hello")

    final = message.wait(timeout=2)

    assert final.params["message_state"] == outcome
    assert message.reason


def test_a_message_without_body_or_media_is_refused_by_the_server(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()

    with pytest.raises(RelayError) as caught:
        client.execute("messaging.send", {"to_number": CALLER, "from_number": OFFICE, "context": "office"})

    assert caught.value.code == "400"


def test_an_inbound_message_reaches_the_message_handler(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    received: queue.Queue[Any] = queue.Queue()
    client.on_message(received.put)

    message_id = emulator.send_sms(OFFICE, CALLER, "Is the shop open?", context="office")

    message = received.get(timeout=2)
    assert (message.message_id, message.body, message.from_number) == (message_id, "Is the shop open?", CALLER)
    assert message.direction == "inbound" and message.context == "office"


def test_an_inbound_message_waits_for_a_client_on_its_context(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect(contexts=("sales",))
    received: queue.Queue[Any] = queue.Queue()
    client.on_message(received.put)
    emulator.send_sms(OFFICE, CALLER, "hello?", context="office")
    emulator.wait_for_transcript("waits: no client listens on context 'office'")

    client.receive(["office"])

    assert received.get(timeout=2).body == "hello?"


def test_a_task_posted_over_rest_reaches_the_task_handler(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    tasks: queue.Queue[Any] = queue.Queue()
    client.on_task(tasks.put)

    rest.deliver_task("office", {"order": 42}, **emulator.rest_kwargs())
    client.deliver_task("office", {"order": 43})

    assert tasks.get(timeout=2).message == {"order": 42}
    assert tasks.get(timeout=2).message == {"order": 43}
    envelope = emulator.events("queuing.relay.tasks")[0]
    assert envelope["context"] == "office" and envelope["project_id"] == emulator.project


def test_the_rest_endpoints_check_credentials_and_bodies(emulator: RelayEmulator) -> None:
    base = f"http://{emulator.relay_host}"
    auth = (emulator.project, emulator.token)

    assert (
        requests.post(f"{base}/api/relay/rest/tasks", json={"context": "x", "message": {}}, timeout=2).status_code
        == 401
    )
    wrong = requests.post(f"{base}/api/relay/rest/tasks", json={}, auth=(emulator.project, "nope"), timeout=2)
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert requests.post(f"{base}/api/relay/rest/tasks", data=b"{", auth=auth, timeout=2).status_code == 400
    no_context = requests.post(f"{base}/api/relay/rest/tasks", json={"message": {}}, auth=auth, timeout=2)
    assert no_context.status_code == 422
    assert requests.get(f"{base}/api/relay/rest/tasks", auth=auth, timeout=2).status_code == 405
    assert requests.get(f"{base}/api/relay/rest/nothing", auth=auth, timeout=2).status_code == 404
    assert requests.get(f"{base}/recordings/unknown.wav", auth=auth, timeout=2).status_code == 404
    too_big = requests.post(f"{base}/api/relay/rest/tasks", data=b"x" * (2 << 20), auth=auth, timeout=5)
    assert too_big.status_code == 413


def test_a_jwt_minted_over_rest_logs_in_and_can_be_refreshed_once(emulator: RelayEmulator) -> None:
    pair = rest.create_jwt(resource="alice", expires_in=5, **emulator.rest_kwargs())

    with RelayClient(jwt_token=pair.jwt_token, host=emulator.relay_host, scheme="ws") as client:
        assert client.authorization is not None
        assert client.authorization["resource"] == "alice"
        renewed = rest.refresh_jwt(pair.refresh_token, **emulator.rest_kwargs())
        result = client.execute("signalwire.reauthenticate", {"authentication": {"jwt_token": renewed.jwt_token}})
        assert result["authorization"]["expires_at"] > 0
        with pytest.raises(RelayError):
            client.execute("signalwire.reauthenticate", {"authentication": {"jwt_token": pair.jwt_token + "x"}})

    with pytest.raises(rest.RestError) as reused:
        rest.refresh_jwt(pair.refresh_token, **emulator.rest_kwargs())
    assert reused.value.status == 401


def test_a_forged_jwt_is_refused_at_login(emulator: RelayEmulator) -> None:
    header, payload, _ = rest.create_jwt(**emulator.rest_kwargs()).jwt_token.split(".")
    client = RelayClient(jwt_token=f"{header}.{payload}.forged", host=emulator.relay_host, scheme="ws")

    with pytest.raises(RelayError):
        client.connect()
