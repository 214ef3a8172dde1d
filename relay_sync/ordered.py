"""OrderedRunner: run one call's listener callbacks on the handler pool one at
a time, in the order the I/O thread handed them over.

A plain ``executor.submit`` per event would let two events of one call run
in parallel on two workers and finish out of order (``answered`` after
``ended``). Here at most one worker drains a call's queue at a time, so each
call sees its events in order, and a slow listener holds up only its own call.
``submit`` never blocks, so the I/O thread may call it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable

from .pool import HandlerPool, run_user_code

log = logging.getLogger(__name__)

Task = tuple[Callable[..., Any], tuple[Any, ...], str]  # fn, args, what it is (for the log)


class OrderedRunner:
    """Runs submitted user callbacks on ``executor``, one at a time, first in first out."""

    def __init__(self, executor: HandlerPool, owner: str) -> None:
        self._executor = executor
        self._owner = owner  # for log lines: whose callbacks these are
        self._lock = threading.Lock()
        self._queue: deque[Task] = deque()
        self._draining = False

    def submit(self, fn: Callable[..., Any], *args: Any, what: str = "listener") -> None:
        with self._lock:
            self._queue.append((fn, args, what))
            if self._draining:
                return  # the worker already draining picks it up
            self._draining = True
        self._start_draining()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                fn, args, what = self._queue.popleft()
            try:
                run_user_code(fn, *args, what=what, detail=lambda: f" ({self._owner})")
            except BaseException:  # SystemExit and the like pass run_user_code (the worker logs them)
                self._hand_on()  # this drain ends here: the callbacks behind it must not wait forever
                raise

    def _hand_on(self) -> None:
        """Give what is left of the queue to a fresh drain on the pool, or stop draining."""
        with self._lock:
            if not self._queue:
                self._draining = False
                return
        self._start_draining()

    def _start_draining(self) -> None:
        """Hand a drain of the queue to the pool (``_draining`` already set)."""
        try:
            self._executor.run(self._drain)
        except RuntimeError:  # the pool is shut down: the client is closing
            with self._lock:
                self._queue.clear()
                self._draining = False
            log.debug("callbacks of %s dropped: the handler pool is closed", self._owner)
