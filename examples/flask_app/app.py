"""A Flask app that sends SMS, starts calls, publishes alerts and hands work to a RELAY worker process.

Each process gets one RelayClient, created and connected by the first
request that needs it (never at import time). Request threads share it: it
is safe to use from many threads at once. It is fork-safe as well: a
pre-forking server (gunicorn, uWSGI) that forks after a client was made
gives each worker a client that logs in afresh on first use, never the
parent's socket. There is no event loop anywhere.

Run it with your space's credentials::

    export SIGNALWIRE_PROJECT_ID=... SIGNALWIRE_API_TOKEN=... SIGNALWIRE_SPACE=example.signalwire.com
    flask --app app run            # or: gunicorn -w 4 app:app

    curl -X POST localhost:5000/sms -H 'Content-Type: application/json' \\
         -d '{"to": "+15552222222", "from": "+15551111111", "body": "Hello!"}'
    curl -X POST localhost:5000/calls -H 'Content-Type: application/json' \\
         -d '{"to": "+15552222222", "from": "+15551111111", "say": "Your order has shipped."}'
    curl -X POST localhost:5000/tasks/office -H 'Content-Type: application/json' \\
         -d '{"order": 42}'
    curl -X POST localhost:5000/alerts/ops -H 'Content-Type: application/json' \\
         -d '{"level": "warning", "text": "disk 90% full"}'
    curl localhost:5000/healthz     # 200 while the RELAY link is up, else 503

Without credentials the first request starts relay_sync's RELAY emulator in
the process and the views talk to its simulated phones (``app.extensions
["relay"].emulator.transcript`` shows what happened): try it with no account.
To share one emulator between processes, run ``relay-sync emulator`` and
export the variables it prints (a loopback space is reached over plain ws).

The alert is published on the PubSub channel ``ops``: every subscriber of it
(``client.pubsub.listen(["ops"], on_message=...)`` in another process, or a
browser with SignalWire's JavaScript SDK) receives it.

The task reaches ``@client.on_task`` handlers of whichever process listens on
the ``office`` context (for example ``RelayClient(contexts=["office"]).run()``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
import weakref
from concurrent.futures import Future
from typing import Any

from flask import Flask, Response, jsonify, request

from relay_sync import Call, ConnectionState, RelayClient, RelayError

log = logging.getLogger(__name__)

CALL_STEP_TIMEOUT = 60.0  # seconds the message of a started call may take


class LazyRelayClient:
    """One connected RelayClient per process, created on first use by whichever thread gets there first.

    Thread-safe: concurrent first requests create one client. Fork-safe: the
    lock is renewed in a forked child (a request thread of the parent may
    have held it at the moment of the fork), and a client made before the
    fork reconnects on its own in the child on first use.
    """

    def __init__(self, **client_options: Any) -> None:
        self._options = client_options
        # Held while the client is being made. Public because a forked child renews it
        # (below) and because a test holds it to stand for a request thread mid-creation.
        self.creating = threading.Lock()
        self._client: RelayClient | None = None
        self.emulator: Any = None  # a RelayEmulator, when there are no credentials
        _lazy_clients.add(self)

    def get(self) -> RelayClient:
        client = self._client
        if client is not None and client.state is not ConnectionState.CLOSED:
            return client
        with self.creating:
            # Made anew when another request thread has not won the race, or when the
            # one we had gave up reconnecting (closed for good: it would only raise).
            if self._client is None or self._client.state is ConnectionState.CLOSED:
                options = dict(self._options)
                if not has_credentials(options):
                    if self.emulator is None:
                        self.emulator = start_emulator()
                    options = self.emulator.client_kwargs(**options)
                client = new_client(**options)
                client.connect()
                self._client = client
            return self._client

    def close(self) -> None:
        with self.creating:
            client, self._client = self._client, None
            emulator, self.emulator = self.emulator, None
        if client is not None:
            client.disconnect()
        if emulator is not None:
            emulator.stop()


# Every LazyRelayClient of the process, to renew their locks in a forked child.
_lazy_clients: weakref.WeakSet[LazyRelayClient] = weakref.WeakSet()


def _renew_locks_after_fork() -> None:
    for lazy in list(_lazy_clients):
        lazy.creating = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_locks_after_fork)


def has_credentials(options: dict[str, Any]) -> bool:
    """Credentials in the client options or the environment (as RelayClient looks for them)."""
    given = options.get("project") or options.get("jwt_token")
    return bool(given or os.environ.get("SIGNALWIRE_PROJECT_ID") or os.environ.get("SIGNALWIRE_JWT_TOKEN"))


def start_emulator() -> Any:
    """relay_sync's RELAY emulator in this process (``pip install 'relay-sync[testing]'``)."""
    from relay_sync.testing import RelayEmulator

    log.warning("no SIGNALWIRE_* credentials: using a RELAY emulator in this process (simulated phones)")
    return RelayEmulator().start()


def new_client(**options: Any) -> RelayClient:
    """A RelayClient; credentials and space default to ``SIGNALWIRE_*`` (a loopback
    space, ``relay-sync emulator``, is reached over plain ws by itself)."""
    return RelayClient(**options)


def say_and_hang_up(text: str) -> Any:
    """A done-callback for ``dial_future``: speak ``text`` to the answered call, then hang up.

    It runs on the client's handler pool, where blocking is fine, not on the request thread.
    """

    def on_dialed(dialed: Future[Call]) -> None:
        if dialed.exception() is not None:
            log.info("call not answered: %s", dialed.exception())
            return
        call = dialed.result()
        try:
            call.play([{"type": "tts", "params": {"text": text}}]).wait(CALL_STEP_TIMEOUT)
        finally:
            call.hangup()

    return on_dialed


def create_app(**client_options: Any) -> Flask:
    """The app; ``client_options`` go to ``RelayClient`` (credentials default to the environment)."""
    app = Flask(__name__)
    relay = LazyRelayClient(**client_options)
    app.extensions["relay"] = relay
    atexit.register(relay.close)

    @app.post("/sms")
    def send_sms() -> tuple[Response, int]:
        data = request.get_json(silent=True)
        data = data if isinstance(data, dict) else {}  # a JSON array or scalar: the fields are missing
        try:
            message = relay.get().send_message(
                to_number=data.get("to", ""),
                from_number=data.get("from", ""),
                body=data.get("body"),
                media=data.get("media"),
            )
        except ValueError as error:
            return jsonify(error=str(error)), 400
        except RelayError as error:
            return jsonify(error=str(error)), 502
        # Accepted, not yet delivered: delivery is reported later by messaging.state events.
        return jsonify(message_id=message.message_id, state=message.state), 202

    @app.post("/calls")
    def start_call() -> tuple[Response, int]:
        data = request.get_json(silent=True)
        data = data if isinstance(data, dict) else {}  # a JSON array or scalar: the fields are missing
        to_number, from_number, text = data.get("to"), data.get("from"), data.get("say")
        if not (isinstance(to_number, str) and isinstance(from_number, str) and isinstance(text, str)):
            return jsonify(error='"to", "from" and "say" are required strings'), 400
        tag = str(uuid.uuid4())
        device = {"type": "phone", "params": {"to_number": to_number, "from_number": from_number}}
        try:
            # Returns at once: the request does not wait for the phone to ring and be answered.
            dialing = relay.get().dial_future([[device]], tag=tag, dial_timeout=60)
        except RelayError as error:
            return jsonify(error=str(error)), 502
        dialing.add_done_callback(say_and_hang_up(text))
        return jsonify(tag=tag, state="dialing"), 202

    @app.post("/tasks/<context>")
    def deliver_task(context: str) -> tuple[Response, int]:
        task = request.get_json(silent=True)
        if not isinstance(task, dict):
            return jsonify(error="the task must be a JSON object"), 400
        try:
            relay.get().deliver_task(context, task)
        except RelayError as error:  # RestError is a RelayError
            return jsonify(error=str(error)), 502
        return jsonify(delivered=True, context=context), 202

    @app.post("/alerts/<channel>")
    def publish_alert(channel: str) -> tuple[Response, int]:
        alert = request.get_json(silent=True)
        if alert is None:
            return jsonify(error="the alert must be JSON (a string or an object)"), 400
        try:
            # Returns once SignalWire accepted it; every subscriber of the channel
            # (browsers, dashboards, other workers) then receives it.
            relay.get().pubsub.publish(channel, alert, meta={"source": "flask"})
        except ValueError as error:
            return jsonify(error=str(error)), 400
        except RelayError as error:
            return jsonify(error=str(error)), 502
        return jsonify(published=True, channel=channel), 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """Readiness for a load balancer or a Kubernetes ``readinessProbe``: 200 while
        the RELAY link is up and the server was heard from recently, else 503.

        The first probe creates and connects the client, so a new process is ready
        once it reached RELAY, not only after its first real request.
        """
        try:
            client = relay.get()
        except RelayError as error:
            return jsonify(healthy=False, error=str(error)), 503
        healthy = client.healthy()
        stats = client.stats()
        body = {key: stats[key] for key in ("state", "reconnects", "backlog", "last_rtt_ms")}
        return jsonify(healthy=healthy, **body), 200 if healthy else 503

    return app


app = create_app()
