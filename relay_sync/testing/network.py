"""The simulated network's shared state: the lock, the network thread, event
delivery, routing, phones, the transcript, and what waits for a client.

``calling.py`` and ``sms.py`` do the work; this is what they share. Every
change to calls or messages happens under ``Network.lock``, taken by the
connection threads (commands) and the network thread (timed happenings).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..rpc import JSONDict
from .clock import Scheduler
from .legs import Leg, Transcript, TranscriptEntry
from .outbox import Outbox
from .phones import PhoneBook
from .routing import Router

log = logging.getLogger(__name__)


DEFAULT_MAX_HELD = 1000


@dataclass
class Limits:
    """The emulator's bounds."""

    max_calls: int = 1000  # legs alive at once
    max_messages: int = 10_000  # outbound messages still progressing
    max_held: int = DEFAULT_MAX_HELD  # messages and tasks waiting for a client on their context
    ring_timeout: float = 30.0  # simulated seconds an unanswered call rings
    orphan_timeout: float = 30.0  # real seconds a client may be away before its calls are hung up


@dataclass
class Held:
    """A message or task for a context nobody listens on yet."""

    context: str
    deliver: Callable[[str], None]  # deliver(protocol)
    what: str


class Network:
    def __init__(self, *, time_factor: float, limits: Limits, project: str) -> None:
        self.lock = threading.RLock()
        self.scheduler = Scheduler(time_factor)
        self.outbox = Outbox()
        self.router = Router(self.outbox)
        self.phones = PhoneBook()
        self.started = time.monotonic()
        self.transcript = Transcript(self.started)
        self.limits = limits
        self.project = project
        self.legs: dict[str, Leg] = {}
        self._held: deque[Held] = deque()
        self._waiting_calls: list[Callable[[], None]] = []

    # -- events -------------------------------------------------------------

    def emit(self, leg: Leg, event_type: str, params: JSONDict) -> None:
        """Send a call event to the protocol controlling ``leg`` (nothing when nobody does)."""
        if leg.owner is None or leg.silent:
            return
        self.outbox.push(leg.owner, event_type, {"call_id": leg.call_id, "node_id": leg.node_id, **params})

    def note(self, actor: str, text: str, leg: Leg | None = None, **details: Any) -> TranscriptEntry:
        log.debug("%s: %s", actor, text)
        return self.transcript.add(actor, text, leg.call_id if leg is not None else None, **details)

    # -- context delivery ---------------------------------------------------------

    def deliver(self, context: str, what: str, deliver: Callable[[str], None]) -> str | None:
        """Give something to the next client on ``context``, or hold it until one subscribes.

        Returns the protocol it went to (None: held).
        """
        protocol = self.router.pick(context)
        if protocol is not None:
            deliver(protocol)
            return protocol
        with self.lock:
            if len(self._held) >= self.limits.max_held:
                dropped = self._held.popleft()
                log.warning("dropping %s held for context %r: too many waiting", dropped.what, dropped.context)
            self._held.append(Held(context, deliver, what))
        self.note("network", f"{what} waits: no client listens on context {context!r}")
        return None

    def table_sizes(self) -> dict[str, int]:
        with self.lock:
            return {"calls": len(self.legs), "held": len(self._held), "calls_waiting": len(self._waiting_calls)}

    def when_subscribed(self, retry: Callable[[], None]) -> None:
        """Run ``retry`` (on the network thread) each time a client subscribes, until it is dropped."""
        with self.lock:
            self._waiting_calls.append(retry)

    def forget_waiting(self, retry: Callable[[], None]) -> None:
        with self.lock:
            if retry in self._waiting_calls:
                self._waiting_calls.remove(retry)

    def subscribed(self) -> None:
        """A client logged in or subscribed to more contexts: hand it what waits (on the network thread)."""
        self.scheduler.soon(self._hand_out_waiting)

    def _hand_out_waiting(self) -> None:
        with self.lock:
            held, self._held = list(self._held), deque()
            retries = list(self._waiting_calls)
        for item in held:
            protocol = self.router.pick(item.context)
            if protocol is None:
                with self.lock:
                    self._held.append(item)
            else:
                item.deliver(protocol)
        for retry in retries:
            retry()
