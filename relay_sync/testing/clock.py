"""The emulator's network thread: one thread running scheduled callbacks in
time order, with simulated durations scaled by a time factor.

Everything the simulated network does on its own (a phone ringing, a prompt
finishing, a message being delivered) is a callback here, so events are
produced by one thread in a well-defined order. The thread blocks on a
condition until the next deadline or until something new is scheduled.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

THREAD_NAME = "relay-emulator-network"
MIN_COMPACT_AT = 1024
# Condition.wait raises OverflowError past threading.TIMEOUT_MAX: the thread waits at most this
# long at a time, and nothing is scheduled further out than MAX_DELAY (a year: "never" for a test).
MAX_WAIT = 3600.0
MAX_DELAY = 365 * 24 * 3600.0


class Scheduled:
    """A callback waiting to run; ``cancel()`` before it ran makes it never run."""

    __slots__ = ("callback", "cancelled", "due")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """Runs callbacks at real-time deadlines on one thread.

    ``time_factor`` converts simulated seconds to real ones: with 0.05 a
    four-second prompt plays for 0.2 s. ``after(seconds, fn)`` takes
    simulated seconds; ``after_real`` takes real ones.
    """

    def __init__(self, time_factor: float = 1.0) -> None:
        if not (time_factor > 0 and math.isfinite(time_factor)):
            raise ValueError(f"time_factor must be a positive number, not {time_factor!r}")
        self.time_factor = time_factor
        self._queue: list[tuple[float, int, Scheduled]] = []
        # Cancelled items stay in the heap until due (a ring timeout, a max_duration): past
        # this size the queue is rebuilt without them, so it tracks what is really pending.
        self._compact_at = MIN_COMPACT_AT
        self._order = itertools.count()  # FIFO among equal deadlines
        self._changed = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._changed:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Drop what is still scheduled and end the thread."""
        with self._changed:
            self._stopping = True
            self._queue.clear()
            self._changed.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def real(self, simulated_seconds: float) -> float:
        return max(0.0, simulated_seconds) * self.time_factor

    def after(self, simulated_seconds: float, callback: Callable[[], None]) -> Scheduled:
        """Run ``callback`` on the network thread after ``simulated_seconds`` (scaled)."""
        return self.after_real(self.real(simulated_seconds), callback)

    def soon(self, callback: Callable[[], None]) -> Scheduled:
        """Run ``callback`` on the network thread as soon as what is already due has run."""
        return self.after_real(0.0, callback)

    def after_real(self, seconds: float, callback: Callable[[], None]) -> Scheduled:
        item = Scheduled(time.monotonic() + min(max(0.0, seconds), MAX_DELAY), callback)  # NaN -> 0
        with self._changed:
            if not self._stopping:
                heapq.heappush(self._queue, (item.due, next(self._order), item))
                if len(self._queue) > self._compact_at:
                    self._queue = [entry for entry in self._queue if not entry[2].cancelled]
                    heapq.heapify(self._queue)
                    self._compact_at = max(MIN_COMPACT_AT, 2 * len(self._queue))  # amortised O(1)
                self._changed.notify_all()
        return item

    @property
    def pending(self) -> int:
        """Items in the queue (cancelled ones included until the next compaction)."""
        with self._changed:
            return len(self._queue)

    def _next_due(self) -> list[Scheduled] | None:
        """Block until something is due; None once stopping."""
        with self._changed:
            while not self._stopping:
                if not self._queue:
                    self._changed.wait()
                    continue
                wait = self._queue[0][0] - time.monotonic()
                if wait > 0:
                    self._changed.wait(min(wait, MAX_WAIT))
                    continue
                now = time.monotonic()
                due: list[Scheduled] = []
                while self._queue and self._queue[0][0] <= now:
                    due.append(heapq.heappop(self._queue)[2])
                return due
            return None

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException:
            log.critical("the emulator's network thread died: nothing timed happens any more", exc_info=True)
            raise

    def _serve(self) -> None:
        while True:
            due = self._next_due()
            if due is None:
                return
            for item in due:
                if item.cancelled:
                    continue
                try:
                    item.callback()
                except Exception:  # one broken callback must not stop the simulated network
                    log.exception("emulator callback %r failed", item.callback)
