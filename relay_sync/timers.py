"""One thread that runs short internal callbacks at deadlines: keepalive pings,
dial timeouts, JWT refreshes.

The thread sleeps on a condition until the earliest deadline (or until a new,
earlier one is scheduled), so an idle client costs nothing. Callbacks are
relay_sync's own and never block; user code never runs here.

Keepalive and dial timeouts depend on this thread, so it must not die: a
deadline of any size (even infinite, or one a server made up) is waited for
in steps the lock underneath accepts, and whatever a callback raises is
logged and the thread goes on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

# The longest single wait. Condition.wait() raises OverflowError past ~9e9 s;
# a farther deadline is simply waited for in several steps.
MAX_WAIT = 24 * 60 * 60.0


# A cancelled timer stays in the heap until it comes up or the heap is compacted:
# compaction runs once cancelled entries are this many and at least half the heap.
COMPACT_AT = 64


def _nothing() -> None:
    pass


class Timer:
    """A scheduled callback; ``cancel()`` keeps it from running."""

    __slots__ = ("_owner", "callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None], owner: TimerThread | None = None) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False
        self._owner = owner

    def cancel(self) -> None:
        """Keep the callback from running, and let go of it (and of what it holds) now,
        not at the deadline: a request's timeout may be far away. Idempotent."""
        if self.cancelled:
            return
        self.cancelled = True
        self.callback = _nothing
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.cancelled_one()


class TimerThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()  # tie-breaker: heap entries never compare Timers
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._cancelled = 0  # cancelled timers possibly still in the heap (an upper bound)

    def start(self) -> None:
        with self._condition:
            if self._thread is not None:
                return
            self._stopped = False
            thread = self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        thread.start()

    def stop(self) -> None:
        """Stop the thread and drop every pending timer; joins unless called from the thread itself."""
        with self._condition:
            self._stopped = True
            self._heap.clear()
            self._cancelled = 0
            thread, self._thread = self._thread, None
            self._condition.notify()
        # ident is None for a thread stop() caught between being recorded and started
        if thread is not None and thread.ident is not None and thread is not threading.current_thread():
            thread.join()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the timer thread after ``delay`` seconds (NaN or below 0: at once)."""
        timer = Timer(time.monotonic() + (delay if delay > 0 else 0.0), callback, self)
        with self._condition:
            if self._stopped:
                timer.cancel()
                return timer
            heapq.heappush(self._heap, (timer.deadline, next(self._sequence), timer))
            if self._heap[0][2] is timer:  # a new earliest deadline: wake the thread to re-arm
                self._condition.notify()
        return timer

    def cancelled_one(self) -> None:
        """A timer of ours was cancelled: drop the dead entries once they are many, so
        a client that times out many far-off requests early keeps a small heap."""
        with self._condition:
            self._cancelled += 1
            if self._cancelled >= COMPACT_AT and self._cancelled * 2 >= len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def pending_count(self) -> int:
        """Timers in the heap (cancelled ones not yet dropped included): for stats and tests."""
        with self._condition:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._condition:
                timer = self._next_due()
                if timer is None:
                    return
            try:
                timer.callback()
            except BaseException:  # the thread's top level: log anything, keep the timers running
                log.exception("internal timer callback %r failed", timer.callback)

    def _next_due(self) -> Timer | None:
        """Block (holding the condition) until a live timer is due; None once stopped."""
        while not self._stopped:
            if not self._heap:
                self._condition.wait()
                continue
            deadline, _, timer = self._heap[0]
            if timer.cancelled:
                heapq.heappop(self._heap)
                self._cancelled = max(0, self._cancelled - 1)
                continue
            remaining = deadline - time.monotonic()
            if remaining > 0:
                self._condition.wait(min(remaining, MAX_WAIT))
                continue
            heapq.heappop(self._heap)
            return timer
        return None
