"""Shared fixtures: a real RELAY test server (``server``) or emulator
(``emulator``) on 127.0.0.1, and clients connected to them (``make_client``,
``client``, ``connect``).

Every client made through ``make_client`` or ``connect`` is disconnected after
the test, and the test fails if any relay_sync thread is still alive afterwards.
A module that needs an emulator with other settings defines its own
``emulator`` fixture; ``connect`` then uses that one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from relay_sync import RelayClient
from relay_sync.testing import RelayEmulator, RelayTestServer

from .emulator_support import RING_TIMEOUT, TIME_FACTOR, Connect
from .fast_clients import FAST, relay_threads


def disconnect_all(clients: list[RelayClient]) -> None:
    """A fixture's teardown: every client it made is disconnected, and no relay_sync thread is left."""
    for client in clients:
        client.disconnect()
    assert relay_threads() == [], "relay_sync threads left running after disconnect()"


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.1, and relay_sync follows the proxy variables as requests
    does (loopback included): a proxy set on the machine running the tests must not
    carry their sockets. A test that wants one sets it."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


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
    disconnect_all(clients)


@pytest.fixture
def client(make_client: Callable[..., RelayClient]) -> RelayClient:
    """A connected client on the ``office`` context."""
    return make_client(contexts=["office"])


@pytest.fixture
def emulator() -> Iterator[RelayEmulator]:
    """A started emulator, 100x faster than real time; an unanswered call rings for 0.2 s."""
    with RelayEmulator(time_factor=TIME_FACTOR, ring_timeout=RING_TIMEOUT) as running:
        yield running


@pytest.fixture
def connect(emulator: RelayEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Connect]:
    """``connect(contexts=("office",), **kwargs)``: a connected client on ``emulator``."""
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "16")
    clients: list[RelayClient] = []

    def make(contexts: tuple[str, ...] = ("office",), **kwargs: Any) -> RelayClient:
        client = emulator.client(contexts=list(contexts), **{**FAST, **kwargs})
        clients.append(client)
        client.connect()
        return client

    yield make
    disconnect_all(clients)
