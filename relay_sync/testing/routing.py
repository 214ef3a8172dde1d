"""Which client gets an inbound call, message or task: round-robin among the
live protocols subscribed to its context, skipping those that passed on it.

Subscriptions are read from the live sessions (their ``contexts`` follow
``signalwire.connect``, ``receive`` and ``unreceive``). Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from .outbox import Outbox

# Contexts whose round-robin position is kept; past it the positions start over.
MAX_CONTEXTS = 1000


class Router:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._lock = threading.Lock()
        self._turns: dict[str, int] = {}

    def subscribers(self, context: str) -> list[str]:
        """Live protocols listening on ``context``, in the order they connected."""
        subscribed = []
        for protocol in self._outbox.live_protocols():
            session = self._outbox.live_session(protocol)
            if session is not None and context in session.contexts:
                subscribed.append(protocol)
        return subscribed

    @property
    def context_count(self) -> int:
        return len(self._turns)

    def pick(self, context: str, exclude: Collection[str] = ()) -> str | None:
        """The protocol whose turn it is on ``context`` (None: nobody is listening)."""
        candidates = [p for p in self.subscribers(context) if p not in exclude]
        if not candidates:
            return None
        with self._lock:
            if context not in self._turns and len(self._turns) >= MAX_CONTEXTS:
                self._turns.clear()  # clients made up many contexts: only fairness is lost
            turn = self._turns.get(context, 0)
            self._turns[context] = turn + 1
        return candidates[turn % len(candidates)]
