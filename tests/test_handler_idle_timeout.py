"""handler_idle_timeout: handler threads retire after that long without work,
seen through ``client.stats()["handler_threads"]`` on a real emulator."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

import relay_sync
from relay_sync import RelayClient
from relay_sync.testing import RelayEmulator

from .polling import read_until

Connect = Callable[..., RelayClient]
OFFICE = "+15551110000"
CALLER = "+15550001111"
WAIT = 30.0


def wait_for_handler_threads(client: RelayClient, predicate: Callable[[int], bool], timeout: float = WAIT) -> int:
    """The first ``handler_threads`` count that satisfies ``predicate`` (a thread retiring has nothing to block on)."""
    threads: int = read_until(lambda: client.stats()["handler_threads"], predicate, timeout, "handler_threads matching")
    return threads


def take_calls(emulator: RelayEmulator, client: RelayClient, count: int, context: str = "office") -> None:
    """Offer ``count`` calls on ``context`` at once; each handler answers and hangs up."""
    handled = threading.Semaphore(0)

    @client.on_call
    def answer_and_hang_up(call: relay_sync.Call) -> None:
        call.answer()
        call.hangup()
        handled.release()

    handles = [emulator.place_call(OFFICE, CALLER, context=context) for _ in range(count)]
    for _ in range(count):
        assert handled.acquire(timeout=WAIT)
    for handle in handles:
        assert handle.wait_ended(timeout=WAIT) == "hangup"


def test_workers_retire_after_the_configured_idle_time_and_not_before_a_longer_one(
    emulator: RelayEmulator, connect: Connect
) -> None:
    quick = connect(handler_idle_timeout=0.2)
    patient = connect(contexts=("patient",), handler_idle_timeout=600)
    take_calls(emulator, patient, 3, context="patient")
    take_calls(emulator, quick, 3)
    assert patient.stats()["handler_threads"] >= 1

    wait_for_handler_threads(quick, lambda threads: threads == 0)
    # The patient client's workers went idle before the quick one's and are still there.
    assert patient.stats()["handler_threads"] >= 1


def test_a_call_after_every_worker_retired_starts_a_new_one(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect(handler_idle_timeout=0.1)
    take_calls(emulator, client, 2)
    wait_for_handler_threads(client, lambda threads: threads == 0)
    take_calls(emulator, client, 2)
    wait_for_handler_threads(client, lambda threads: threads == 0)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "5", None])
def test_a_bad_idle_time_is_refused_by_name(value: Any) -> None:
    with pytest.raises(ValueError, match="handler_idle_timeout"):
        RelayClient(project="p", token="t", host="127.0.0.1:1", contexts=["office"], handler_idle_timeout=value)


def test_a_burst_of_calls_is_handled_and_its_threads_retire(emulator: RelayEmulator, connect: Connect) -> None:
    # Offered together, many of these arrive in one read: the I/O thread announces them
    # to the handler pool, which starts their threads ahead of them.
    client = connect(handler_idle_timeout=0.2)
    take_calls(emulator, client, 40)
    wait_for_handler_threads(client, lambda threads: threads == 0)
    take_calls(emulator, client, 40)
    wait_for_handler_threads(client, lambda threads: threads == 0)
