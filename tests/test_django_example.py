"""examples/django_app: the views run with Django's test client in this
process against the emulator (an SMS delivered, a call dialed, spoken to and
hung up, a task reaching a worker on its context), and the project run as
``manage.py`` in a subprocess, which must exit cleanly with its client shut down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from relay_sync import AuthenticationError
from relay_sync.testing import RelayEmulator

from .fast_clients import FAST, relay_threads
from .polling import read_until

pytest.importorskip("django")

PROJECT = Path(__file__).resolve().parent.parent / "examples" / "django_app"


@pytest.fixture(scope="module")
def django_project() -> Iterator[Any]:
    """Django set up with the example's settings (once: Django's settings are process-wide)."""
    import django

    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PROJECT))
        patch.setenv("DJANGO_SETTINGS_MODULE", "relaysite.settings")
        django.setup()
        from telephony import relay

        yield relay


@pytest.fixture
def emulator() -> Iterator[RelayEmulator]:
    with RelayEmulator(time_factor=0.01) as running:
        yield running


@pytest.fixture
def django_client(django_project: Any, emulator: RelayEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Django's test client, the views' RelayClient aimed at the emulator."""
    from django.test import Client, override_settings

    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "2")  # the views' client, and a worker in one test
    with override_settings(RELAY_CLIENT_OPTIONS=emulator.client_kwargs(**FAST)):
        yield Client()
        django_project.shutdown()
    assert relay_threads() == [], "the example's client left threads running"


def post(django_client: Any, path: str, data: Any) -> Any:
    return django_client.post(path, data=json.dumps(data), content_type="application/json")


def test_no_client_is_created_before_the_first_request(django_client: Any, emulator: RelayEmulator) -> None:
    assert emulator.sessions == []


def test_the_sms_view_sends_a_message_that_is_delivered(django_client: Any, emulator: RelayEmulator) -> None:
    reply = post(django_client, "/sms/", {"to": "+15552222222", "from": "+15551111111", "body": "Hello from Django"})

    assert reply.status_code == 202
    [frame] = emulator.requests("messaging.send")
    assert frame["params"]["body"] == "Hello from Django" and frame["params"]["to_number"] == "+15552222222"
    delivered = emulator.wait_for_event("messaging.state", lambda params: params["message_state"] == "delivered")
    assert delivered["params"]["message_id"] == reply.json()["message_id"]


def test_the_sms_view_refuses_a_message_without_body(django_client: Any, emulator: RelayEmulator) -> None:
    reply = post(django_client, "/sms/", {"to": "+15552222222", "from": "+15551111111"})

    assert reply.status_code == 400
    assert emulator.requests("messaging.send") == []


def test_the_call_view_dials_speaks_and_hangs_up(django_client: Any, emulator: RelayEmulator) -> None:
    emulator.phone("+15552222222", after=2)

    reply = post(
        django_client, "/calls/", {"to": "+15552222222", "from": "+15551111111", "say": "Your table is ready."}
    )

    assert reply.status_code == 202
    emulator.wait_for_request("calling.end", timeout=5)
    [dial] = emulator.requests("calling.dial")
    assert dial["params"]["tag"] == reply.json()["tag"]
    [play] = emulator.requests("calling.play")
    assert play["params"]["play"] == [{"type": "tts", "params": {"text": "Your table is ready."}}]
    happened = [entry.text for entry in emulator.transcript]
    assert happened.index("+15552222222 answered") < happened.index('played "Your table is ready."')
    assert happened.index('played "Your table is ready."') < happened.index("hung up (hangup)")


def test_the_task_view_reaches_the_worker_on_the_context(django_client: Any, emulator: RelayEmulator) -> None:
    worker = emulator.client(contexts=["kitchen"], **FAST)
    received: Future[Any] = Future()
    worker.on_task(lambda task: received.set_result(task.message))
    with worker:
        reply = post(django_client, "/tasks/kitchen/", {"table": 7})

        assert reply.status_code == 202
        assert received.result(timeout=5) == {"table": 7}


def test_the_views_share_one_client(django_client: Any, emulator: RelayEmulator) -> None:
    for n in range(3):
        assert (
            post(django_client, "/sms/", {"to": "+15552222222", "from": "+15551111111", "body": f"n{n}"}).status_code
            == 202
        )

    assert len(emulator.requests("signalwire.connect")) == 1
    assert len(emulator.requests("messaging.send")) == 3


def test_manage_py_runs_a_view_and_exits_cleanly(emulator: RelayEmulator) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALWIRE_", "RELAY_", "DJANGO_"))}
    env.update(emulator.environment())  # credentials and space from the environment, as in production
    script = (
        "import json; from django.test import Client; "
        "reply = Client().post('/sms/', json.dumps({'to': '+15552222222', 'from': '+15551111111', 'body': 'cli'}), "
        "content_type='application/json'); print(reply.status_code)"
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=PROJECT,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "202"
    assert [frame["params"]["body"] for frame in emulator.requests("messaging.send")] == ["cli"]
    # At exit (telephony.apps registers relay.shutdown) the client said goodbye with a
    # close frame: the session was closed, not dropped with the process.
    session = emulator.session(0)
    assert session.closed.wait(5)
    close = session.connection.protocol.close_rcvd
    assert close is not None and close.code == 1000


def test_without_credentials_the_project_runs_on_an_emulator_of_its_own(
    django_project: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.test import Client, override_settings

    for name in ("SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN", "SIGNALWIRE_JWT_TOKEN", "SIGNALWIRE_SPACE"):
        monkeypatch.delenv(name, raising=False)
    with override_settings(RELAY_CLIENT_OPTIONS=dict(FAST)):
        try:
            reply = post(Client(), "/calls/", {"to": "+15553333333", "from": "+15551111111", "say": "Hello there"})

            assert reply.status_code == 202
            emulator = django_project.emulator
            emulator.wait_for_transcript("call with +15553333333 ended (hangup)")
            assert 'played "Hello there"' in [entry.text for entry in emulator.transcript]
        finally:
            django_project.shutdown()
    assert django_project.emulator is None
    assert relay_threads() == [], "the example's client left threads running"


def test_healthz_follows_the_relay_link(django_client: Any, emulator: RelayEmulator) -> None:
    reply = django_client.get("/healthz")  # the first probe connects the client
    assert reply.status_code == 200
    assert reply.json()["healthy"] is True and reply.json()["state"] == "connected"

    emulator.pause_logins()
    emulator.drop_sessions()
    emulator.wait_for_request("signalwire.connect", count=2)  # logging in again, held by the server
    reply = django_client.get("/healthz")
    assert reply.status_code == 503
    assert reply.json()["healthy"] is False and reply.json()["state"] == "reconnecting"

    emulator.resume_logins()
    reply = read_until(lambda: django_client.get("/healthz"), lambda r: r.status_code == 200, 10, "/healthz 200")
    assert reply.status_code == 200 and reply.json()["reconnects"] == 1


def test_healthz_is_503_while_relay_refuses_the_credentials(django_client: Any, emulator: RelayEmulator) -> None:
    emulator.reject_logins = True
    reply = django_client.get("/healthz")
    assert reply.status_code == 503 and reply.json()["healthy"] is False


def test_a_client_that_gave_up_is_replaced_on_the_next_request(
    django_client: Any, django_project: Any, emulator: RelayEmulator
) -> None:
    first = django_project.get_client()
    gave_up = threading.Event()
    first.on_disconnected(lambda error: isinstance(error, AuthenticationError) and gave_up.set())

    emulator.reject_logins = True  # an auth outage: every reconnect is refused
    emulator.drop_sessions()
    assert gave_up.wait(10)  # refused three times: the client closed itself for good
    first.disconnect()  # returns once that closing is over (a no-op for the outcome)
    emulator.reject_logins = False  # the outage is over

    reply = post(django_client, "/sms/", {"to": "+15552222222", "from": "+15551111111", "body": "Back"})

    assert reply.status_code == 202, reply.content
    assert django_project.get_client() is not first and django_project.get_client().connected
