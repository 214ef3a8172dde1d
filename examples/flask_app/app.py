"""A Flask app that sends SMS and hands work to a RELAY worker process.

Each process gets one RelayClient, created and connected by the first request
that needs it (never at import time, so a pre-forking server such as gunicorn
creates it in each worker, after the fork). Request threads share it: it is
safe to use from many threads at once.

Run it with your space's credentials::

    export SIGNALWIRE_PROJECT_ID=... SIGNALWIRE_API_TOKEN=... SIGNALWIRE_SPACE=example.signalwire.com
    flask --app app run

    curl -X POST localhost:5000/sms -H 'Content-Type: application/json' \\
         -d '{"to": "+15552222222", "from": "+15551111111", "body": "Hello!"}'
    curl -X POST localhost:5000/tasks/office -H 'Content-Type: application/json' \\
         -d '{"order": 42}'

The task reaches ``@client.on_task`` handlers of whichever process listens on
the ``office`` context (for example ``RelayClient(contexts=["office"]).run()``).
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from flask import Flask, Response, jsonify, request

from relay_sync import RelayClient, RelayError


class LazyRelayClient:
    """One connected RelayClient per process, created on first use by whichever thread gets there first.

    Create it after any fork (the first request in a gunicorn worker is after
    the fork): a client's threads do not survive fork(), and its socket would
    be shared with the parent.
    """

    def __init__(self, **client_options: Any) -> None:
        self._options = client_options
        self._lock = threading.Lock()
        self._client: RelayClient | None = None

    def get(self) -> RelayClient:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:  # another request thread may have won the race
                client = RelayClient(**self._options)
                client.connect()
                self._client = client
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.disconnect()


def create_app(**client_options: Any) -> Flask:
    """The app; ``client_options`` go to ``RelayClient`` (credentials default to the environment)."""
    app = Flask(__name__)
    relay = LazyRelayClient(**client_options)
    app.extensions["relay"] = relay
    atexit.register(relay.close)

    @app.post("/sms")
    def send_sms() -> tuple[Response, int]:
        data = request.get_json(silent=True) or {}
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

    return app


app = create_app()
