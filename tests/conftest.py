"""Shared fixtures: a real RELAY test server on 127.0.0.1 and clients connected to it.

Every client made through ``make_client`` is disconnected after the test, and
the test fails if any relay_sync thread is still alive afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from relay_sync import RelayClient
from relay_sync.testing import RelayTestServer

# Fast settings so fault tests finish in well under a second.
FAST = {"request_timeout": 2.0, "ping_interval": 5.0, "reconnect_backoff": (0.05, 0.2)}


def relay_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("relay_sync")]


@pytest.fixture
def server() -> Iterator[RelayTestServer]:
    with RelayTestServer() as srv:
        yield srv


@pytest.fixture
def make_client(server: RelayTestServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., RelayClient]]:
    """``make_client(connect=True, **kwargs)``: a client for ``server`` with fast timings."""
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "16")
    clients: list[RelayClient] = []

    def make(connect: bool = True, **kwargs: Any) -> RelayClient:
        options = dict(FAST)
        options.update(kwargs)
        client = RelayClient(**server.client_kwargs(**options))
        clients.append(client)
        if connect:
            client.connect()
        return client

    yield make
    for client in clients:
        client.disconnect()
    assert relay_threads() == [], "relay_sync threads left running after disconnect()"


@pytest.fixture
def client(make_client: Callable[..., RelayClient]) -> RelayClient:
    """A connected client on the ``office`` context."""
    return make_client(contexts=["office"])
