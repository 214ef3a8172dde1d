"""Helpers for the tests that run on the emulator (its fixtures, ``emulator``
and ``connect``, are in conftest.py): the numbers they use, and a way to get an
on_call handler's outcome back to the test thread."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable

from relay_sync import RelayClient

OFFICE = "+15550100"  # the number the app answers
CALLER = "+15550111"
AGENT = "+15550122"

# 100x faster than real time; an unanswered call rings for 0.2 s.
TIME_FACTOR = 0.01
RING_TIMEOUT = 20.0

Connect = Callable[..., RelayClient]


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
