"""The fault matrix, DNS rows: a resolver that does not answer is bounded by
``connect_timeout`` and cut short by ``disconnect()``, like the rest of opening
the socket.

No real DNS runs here: ``socket.getaddrinfo`` is replaced by a resolver that
holds the lookups of one name until the test lets them go, then answers with
127.0.0.1; the transport, its threads and the socket are all real."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from relay_sync import ClientClosedError, RelayClient, RelayTimeoutError
from relay_sync.testing import RelayTestServer

from ..fast_clients import FAST, relay_threads
from ..polling import wait_until
from .support import STEP, outcome_of, run_in_thread

SLOW_NAME = "localhost"  # a name (so it is looked up) that plain ws:// may use


class SlowResolver:
    """Holds every lookup of SLOW_NAME while ``holding``, until ``release()``; then
    answers with 127.0.0.1 whatever the machine's hosts file says."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.resolving = threading.Event()  # a lookup is being held
        self._released = threading.Event()
        self._real = socket.getaddrinfo

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == SLOW_NAME:
            if self.holding.is_set():
                self.resolving.set()
                self._released.wait(60)  # bounded: a test that forgot to release still ends
            host = "127.0.0.1"
        return self._real(host, port, *args, **kwargs)

    def release(self) -> None:
        self._released.set()


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowResolver]:
    slow = SlowResolver()
    monkeypatch.setattr(socket, "getaddrinfo", slow.getaddrinfo)
    try:
        yield slow
    finally:
        slow.release()
        # The abandoned lookups end once they have their answer.
        wait_until(lambda: relay_threads() == [], timeout=STEP, what="the relay_sync threads ending")


def slow_client(server: RelayTestServer, **options: Any) -> RelayClient:
    settings = dict(FAST)
    settings.update(options)
    return RelayClient(**server.client_kwargs(host=f"{SLOW_NAME}:{server.port}", scheme="ws", **settings))


def test_connect_timeout_bounds_a_resolver_that_does_not_answer(
    server: RelayTestServer, resolver: SlowResolver
) -> None:
    resolver.holding.set()
    client = slow_client(server, connect_timeout=0.5)
    try:
        connecting = run_in_thread(client.connect)
        assert resolver.resolving.wait(STEP)
        # Raised while the lookup is still held: the deadline does not wait for it.
        assert isinstance(outcome_of(connecting), RelayTimeoutError)
    finally:
        client.disconnect()


def test_disconnect_does_not_wait_for_a_reconnects_lookup(server: RelayTestServer, resolver: SlowResolver) -> None:
    client = slow_client(server, connect_timeout=60.0)
    client.connect()  # the resolver answers at once for now
    resolver.holding.set()
    server.session().drop()
    assert resolver.resolving.wait(STEP)  # the I/O thread is in the reconnect's lookup
    disconnecting = run_in_thread(client.disconnect)
    assert outcome_of(disconnecting) is None  # returned while the lookup is still held
    assert client.state == "closed"


def test_disconnect_cuts_a_first_connects_lookup_short(server: RelayTestServer, resolver: SlowResolver) -> None:
    resolver.holding.set()
    client = slow_client(server, connect_timeout=60.0)
    connecting = run_in_thread(client.connect)
    assert resolver.resolving.wait(STEP)
    disconnecting = run_in_thread(client.disconnect)
    assert outcome_of(disconnecting) is None
    assert isinstance(outcome_of(connecting), ClientClosedError)


def test_a_lookup_that_answers_in_time_connects(server: RelayTestServer, resolver: SlowResolver) -> None:
    with slow_client(server) as client:
        assert client.execute("resolved", {})["code"] == "200"
