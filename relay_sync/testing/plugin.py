"""pytest plugin (registered through the ``pytest11`` entry point): fixtures
for testing your own RELAY handlers against a local emulator.

Fixtures:

``relay_emulator``
    A started :class:`~relay_sync.testing.RelayEmulator` on 127.0.0.1
    (time runs 100x faster: ``time_factor=0.01``), stopped after the test.
``relay_client``
    A connected ``RelayClient`` on it, subscribed to ``relay_contexts``;
    disconnected after the test.
``relay_contexts``
    The contexts ``relay_client`` listens on: ``["default"]``. Override it
    in your ``conftest.py`` or test module to change them.
``relay_emulator_options``
    Keyword arguments for ``RelayEmulator`` (``{}``); override to change
    ``time_factor``, ``ring_timeout``, caps...
``relay_environment``
    Sets ``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN`` and
    ``SIGNALWIRE_SPACE`` to the emulator's for the test, for code that
    builds its own client from the environment (the loopback host gets plain ws by itself).

A test for your handler, in a few lines::

    def test_greeting(relay_emulator, relay_client):
        relay_client.on_call(my_app.handle_call)        # your handler
        relay_emulator.phone("+15550100", digits="1")   # the caller presses 1
        call = relay_emulator.place_call("+15550199", "+15550100")
        assert call.wait_ended(timeout=5) == "hangup"
        assert "Welcome to Acme" in call.said()

Flask/Django views that send SMS or tasks take the same client (or the
``relay_environment`` variables), and assertions go to
``relay_emulator.transcript`` or ``relay_emulator.requests("messaging.send")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ..client import RelayClient

if TYPE_CHECKING:
    from .emulator import RelayEmulator

PLUGIN_TIME_FACTOR = 0.01
CLIENT_DEFAULTS: dict[str, Any] = {"request_timeout": 5.0, "reconnect_backoff": (0.05, 0.5)}


@pytest.fixture
def relay_emulator_options() -> dict[str, Any]:
    """Keyword arguments for the ``relay_emulator`` fixture's ``RelayEmulator``; override to change them."""
    return {}


@pytest.fixture
def relay_emulator(relay_emulator_options: dict[str, Any]) -> Iterator[RelayEmulator]:
    """A started RELAY emulator on 127.0.0.1 (stopped after the test)."""
    # Imported here, not at the top: pytest loads this plugin in every
    # environment relay-sync is installed in, with or without websockets. Through
    # the package, whose import names the extra to install when websockets is missing.
    from . import RelayEmulator

    options = {"time_factor": PLUGIN_TIME_FACTOR, **relay_emulator_options}
    with RelayEmulator(**options) as emulator:
        yield emulator


@pytest.fixture
def relay_contexts() -> list[str]:
    """The contexts ``relay_client`` subscribes to; override to change them."""
    return ["default"]


@pytest.fixture
def relay_client(relay_emulator: RelayEmulator, relay_contexts: list[str]) -> Iterator[RelayClient]:
    """A ``RelayClient`` connected to ``relay_emulator`` (disconnected after the test)."""
    client = relay_emulator.client(contexts=relay_contexts, **CLIENT_DEFAULTS)
    client.connect()
    try:
        yield client
    finally:
        client.disconnect()


@pytest.fixture
def relay_environment(relay_emulator: RelayEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the ``SIGNALWIRE_*`` environment variables at ``relay_emulator`` for this test."""
    environment = relay_emulator.environment()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment
