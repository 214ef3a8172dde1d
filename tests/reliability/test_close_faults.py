"""The fault matrix, ending rows: a client that gives up reconnecting closes
itself for good; a connect() that fails for a bad CA bundle, or is raced by
disconnect(), leaves nothing behind (no connection slot, no thread)."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme

from relay_sync import AuthenticationError, ClientClosedError, ConnectionState, RelayClient, RelayError
from relay_sync.testing import RelayTestServer

from ..fast_clients import FAST, relay_threads
from ..polling import wait_until
from .support import STEP


def test_a_client_that_gave_up_is_closed_for_good(server: RelayTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "1")
    client = RelayClient(**server.client_kwargs(**FAST))
    disconnects: queue.Queue[RelayError] = queue.Queue()
    client.on_disconnected(disconnects.put)
    client.connect()
    server.reject_logins = True
    server.session().drop()
    try:
        assert disconnects.get(timeout=STEP).code == "connection_lost"
        gave_up = disconnects.get(timeout=STEP * 2)
        assert isinstance(gave_up, AuthenticationError)
        # Every thread it started ends without a disconnect(): the timer thread too.
        wait_until(lambda: relay_threads() == [], timeout=STEP, what="the client's threads ending")
        assert client.state is ConnectionState.CLOSED
        server.reject_logins = False
        with pytest.raises(AuthenticationError, match="refused the credentials 3 times"):
            client.connect()  # not a silent return: the client is closed, and says why
        with pytest.raises(AuthenticationError):
            client.execute("after.giving.up", {})
        # Its connection slot is free: with RELAY_MAX_CONNECTIONS=1 another client connects.
        with RelayClient(**server.client_kwargs(**FAST)) as other:
            assert other.execute("still.served", {})["code"] == "200"
    finally:
        client.disconnect()
    assert relay_threads() == []


def test_run_raises_the_error_it_gave_up_with(server: RelayTestServer) -> None:
    client = RelayClient(**server.client_kwargs(**FAST))
    outcome: queue.Queue[BaseException | None] = queue.Queue()

    def run() -> None:
        try:
            client.run()
            outcome.put(None)
        except BaseException as error:  # noqa: BLE001 - handed to the assertion below
            outcome.put(error)

    runner = threading.Thread(target=run, name="test-run")
    runner.start()
    server.wait_for_session(1)
    server.reject_logins = True
    server.session().drop()
    error = outcome.get(timeout=STEP * 3)
    runner.join(STEP)
    assert isinstance(error, AuthenticationError)
    assert relay_threads() == []


def test_a_ca_file_that_is_not_pem_is_refused_at_construction(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="ca_file .* no usable PEM certificate"):
        RelayClient("p", "t", host="relay.example.com", ca_file=str(bad))


def test_a_ca_file_spoiled_after_construction_leaves_no_slot_taken(
    server: RelayTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "1")
    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    client = RelayClient("p", "t", host=f"127.0.0.1:{server.port}", scheme="wss", ca_file=str(bundle))
    bundle.write_text("not a certificate any more\n")
    for _ in range(2):  # each failed connect() gives its slot back
        with pytest.raises(ValueError, match="no usable PEM certificate"):
            client.connect()
    with RelayClient(**server.client_kwargs(**FAST)) as other:
        assert other.execute("still.served", {})["code"] == "200"
    client.disconnect()


def test_disconnect_while_connect_starts_its_reader(server: RelayTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """disconnect() lands between connect() creating the I/O thread and starting it."""
    reader_starting = threading.Event()
    disconnect_done = threading.Event()
    start = threading.Thread.start

    def start_late(thread: threading.Thread) -> None:
        if thread.name == "relay_sync-io":
            reader_starting.set()
            # Hold the start until disconnect() is over; with the fix disconnect() waits
            # for this start instead, so the hold gives up after a while.
            disconnect_done.wait(STEP / 2)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_late)
    client = RelayClient(**server.client_kwargs(**FAST))
    connected: queue.Queue[BaseException | None] = queue.Queue()

    def connect() -> None:
        try:
            client.connect()
            connected.put(None)
        except BaseException as error:  # noqa: BLE001 - handed to the assertion below
            connected.put(error)

    connecting = threading.Thread(target=connect, name="test-connect")
    connecting.start()
    assert reader_starting.wait(STEP)
    outcome: Any = None
    try:
        client.disconnect()
    except BaseException as error:  # noqa: BLE001 - asserted below
        outcome = error
    finally:
        disconnect_done.set()
        connecting.join(STEP)
    assert outcome is None, f"disconnect() raised {outcome!r}"
    error = connected.get(timeout=STEP)
    assert error is None or isinstance(error, ClientClosedError)
    assert client.state is ConnectionState.CLOSED
    wait_until(lambda: relay_threads() == [], timeout=STEP, what="the client's threads ending")
