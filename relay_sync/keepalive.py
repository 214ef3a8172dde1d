"""Keepalive: notice a link that has gone quiet and prove it alive, or close it.

Any frame from the server proves the link alive (the I/O thread stamps
``last_heard``). When nothing arrived for ``interval`` seconds, a
``signalwire.ping`` goes out; if nothing at all arrives within
``answer_timeout``, that ping failed. ``max_failures`` failures in a row close
the socket, which makes the I/O thread reconnect. A request that timed out
makes the link *suspect*: it is probed at once, and one more silence closes it.
While a probe is already out, a further timed-out request changes nothing but
the failure count: re-probing would push the verdict back, so a stream of
timeouts would keep a silent link open for ever.

Runs on the timer thread; the I/O thread only calls ``start``/``stop``/``heard``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .timers import Timer, TimerThread

log = logging.getLogger(__name__)


class Keepalive:
    def __init__(
        self,
        timers: TimerThread,
        *,
        interval: float,
        answer_timeout: float,
        send_ping: Callable[[], Callable[[], None] | None],
        force_close: Callable[[str], None],
        max_failures: int = 3,
    ) -> None:
        self._timers = timers
        self._interval = interval
        self._answer_timeout = answer_timeout
        self._send_ping = send_ping
        self._force_close = force_close
        self._max_failures = max_failures
        self._lock = threading.Lock()
        self._timer: Timer | None = None
        self._forget_ping: Callable[[], None] | None = None
        self._probing = False  # a ping is out and _check_answer is armed for it
        self._ping_sent_at = 0.0
        self._failures = 0
        self._running = False
        self.last_heard = time.monotonic()

    def start(self) -> None:
        with self._lock:
            self._running = True
            self._failures = 0
            self.last_heard = time.monotonic()
            self._arm(self._interval, self._check_quiet)

    def stop(self) -> None:
        with self._lock:
            self._running = False
            self._disarm()
            # Not forgotten: the transport fails what the link had in flight, ping included.
            self._forget_ping = None

    def suspect(self) -> None:
        """A request went unanswered: probe now, and close on one more silence."""
        with self._lock:
            if not self._running:
                return
            self._failures = max(self._failures, self._max_failures - 1)
            if self._probing:
                return  # the ping already out decides, at its own deadline
            self._ping_now()

    # -- timer callbacks ---------------------------------------------------

    def _check_quiet(self) -> None:
        with self._lock:
            if not self._running:
                return
            quiet = time.monotonic() - self.last_heard
            if quiet < self._interval:
                self._arm(self._interval - quiet, self._check_quiet)
            else:
                self._ping_now()

    def _check_answer(self) -> None:
        with self._lock:
            if not self._running:
                return
            self._forget()
            if self.last_heard >= self._ping_sent_at:
                self._failures = 0
                quiet = time.monotonic() - self.last_heard
                self._arm(max(0.0, self._interval - quiet), self._check_quiet)
                return
            self._failures += 1
            if self._failures < self._max_failures:
                log.info("keepalive ping unanswered (%d of %d)", self._failures, self._max_failures)
                self._ping_now()
                return
            self._running = False
            self._disarm()
        log.warning("the server stopped answering (%d pings unanswered): reconnecting", self._max_failures)
        self._force_close("keepalive")

    # -- helpers (called with the lock held) -------------------------------

    def _ping_now(self) -> None:
        self._forget()  # one ping in the request table at a time
        self._ping_sent_at = time.monotonic()
        self._forget_ping = self._send_ping()
        self._arm(self._answer_timeout, self._check_answer)
        self._probing = True

    def _forget(self) -> None:
        """Stop waiting for the last ping's answer (any frame at all is the proof)."""
        if self._forget_ping is not None:
            self._forget_ping()
            self._forget_ping = None

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self._timers.call_later(delay, callback)

    def _disarm(self) -> None:
        self._probing = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
