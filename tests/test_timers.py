"""The timer thread: deadlines run in order, a cancelled timer never runs, and
cancelling lets go of the callback at once and keeps the heap small."""

from __future__ import annotations

import gc
import queue
import threading
import weakref
from collections.abc import Iterator
from functools import partial

import pytest

from relay_sync.timers import COMPACT_AT, TimerThread

WAIT = 10.0


@pytest.fixture
def timers() -> Iterator[TimerThread]:
    thread = TimerThread("relay_sync-timer-test")
    thread.start()
    yield thread
    thread.stop()


def test_timers_run_in_deadline_order_and_cancelled_ones_never(timers: TimerThread) -> None:
    ran: queue.SimpleQueue[str] = queue.SimpleQueue()
    timers.call_later(0.06, lambda: ran.put("third"))
    doomed = timers.call_later(0.03, lambda: ran.put("cancelled"))
    timers.call_later(0.02, lambda: ran.put("first"))
    timers.call_later(0.04, lambda: ran.put("second"))
    doomed.cancel()
    assert [ran.get(timeout=WAIT) for _ in range(3)] == ["first", "second", "third"]
    done = threading.Event()
    timers.call_later(0, done.set)  # everything due before it has run by now
    assert done.wait(WAIT)
    assert ran.empty()


def test_cancel_lets_go_of_the_callback_before_its_deadline(timers: TimerThread) -> None:
    class Held:
        pass

    held = Held()
    alive = weakref.ref(held)
    timer = timers.call_later(600, partial(id, held))  # a callback holding an object
    del held
    gc.collect()
    assert alive() is not None  # the pending timer keeps what its callback needs
    timer.cancel()
    gc.collect()
    assert alive() is None  # ten minutes early


def test_many_cancelled_far_timers_do_not_pile_up(timers: TimerThread) -> None:
    for _ in range(20):
        batch = [timers.call_later(600, lambda: None) for _ in range(COMPACT_AT * 5)]
        for timer in batch:
            timer.cancel()
    assert timers.pending_count() < COMPACT_AT * 2
    keeper = timers.call_later(600, lambda: None)  # a live timer survives compaction
    for timer in [timers.call_later(600, lambda: None) for _ in range(COMPACT_AT * 3)]:
        timer.cancel()
    assert 1 <= timers.pending_count() < COMPACT_AT * 2
    keeper.cancel()


def test_cancel_is_idempotent_and_safe_after_the_timer_ran(timers: TimerThread) -> None:
    done = threading.Event()
    timer = timers.call_later(0, done.set)
    assert done.wait(WAIT)
    timer.cancel()
    timer.cancel()
    after = threading.Event()
    timers.call_later(0, after.set)
    assert after.wait(WAIT)
