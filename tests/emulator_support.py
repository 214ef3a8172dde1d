"""Fixtures and helpers for the emulator's own tests: a fast emulator, a
factory of connected clients, and a way to get an on_call handler's outcome
back to the test thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, Callable

import pytest

from relay_sync import RelayClient
from relay_sync.testing import RelayEmulator

from .conftest import FAST, relay_threads

OFFICE = "+15550100"  # the number the app answers
CALLER = "+15550111"
AGENT = "+15550122"

# 100x faster than real time; an unanswered call rings for 0.2 s.
TIME_FACTOR = 0.01
RING_TIMEOUT = 20.0

Connect = Callable[..., RelayClient]


def running_emulator() -> Iterator[RelayEmulator]:
    """For an ``emulator`` fixture: a started emulator, stopped afterwards."""
    with RelayEmulator(time_factor=TIME_FACTOR, ring_timeout=RING_TIMEOUT) as running:
        yield running


def client_factory(emulator: RelayEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Connect]:
    """For a ``connect`` fixture: ``connect(contexts=("office",), **kwargs)`` gives a connected
    client on the emulator; all are disconnected afterwards, leaving no thread behind."""
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "16")
    clients: list[RelayClient] = []

    def make(contexts: tuple[str, ...] = ("office",), **kwargs: Any) -> RelayClient:
        client = emulator.client(contexts=list(contexts), **{**FAST, **kwargs})
        clients.append(client)
        client.connect()
        return client

    yield make
    for client in clients:
        client.disconnect()
    assert relay_threads() == [], "relay_sync threads left running after disconnect()"


class Outcomes:
    """What an on_call handler returned (or raised) for each call, in arrival order."""

    def __init__(self) -> None:
        self._futures: list[Future[Any]] = []
        self._changed = threading.Condition()

    def add(self) -> Future[Any]:
        future: Future[Any] = Future()
        with self._changed:
            self._futures.append(future)
            self._changed.notify_all()
        return future

    def result(self, index: int = 0, timeout: float = 3.0) -> Any:
        """The ``index``-th handler's return value (re-raising what it raised)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._futures) > index, timeout):
                raise TimeoutError(f"fewer than {index + 1} calls reached the handler within {timeout} s")
            future = self._futures[index]
        return future.result(timeout)

    def __len__(self) -> int:
        with self._changed:
            return len(self._futures)


def handle_calls(client: RelayClient, handler: Callable[[Any], Any]) -> Outcomes:
    """Register ``handler`` for inbound calls; their outcomes are collected in the returned ``Outcomes``."""
    outcomes = Outcomes()

    @client.on_call
    def on_call(call: Any) -> None:
        outcome = outcomes.add()
        try:
            outcome.set_result(handler(call))
        except BaseException as error:  # noqa: BLE001  # handed to the test thread, which re-raises it
            outcome.set_exception(error)

    return outcomes


def tts(text: str) -> list[dict[str, Any]]:
    return [{"type": "tts", "params": {"text": text}}]


def phone_device(number: str) -> dict[str, Any]:
    return {"type": "phone", "params": {"to_number": number, "from_number": OFFICE}}
