"""``VideoSubscription``: the handlers one ``listen()`` call registered, until
``close()``.

Built and closed in the caller's thread; ``deliver`` runs on the handler
pool (through the room's ordered runner) and checks ``closed`` before each
handler, so after ``close()`` even events already queued for the
subscription are dropped (a handler already running finishes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

Handler = Callable[..., Any]


class VideoSubscription:
    """Handlers listening to video events, from ``client.video.listen()`` or ``room.listen()``.

    ``close()`` stops them; it is idempotent, and a ``with`` block closes the
    subscription on exit. (Like the realtime SDK, closing sends nothing to the
    server: events nobody listens to any more are dropped by the client.)
    """

    def __init__(
        self, scope: str, handlers: Mapping[str, Handler], detach: Callable[[VideoSubscription], None]
    ) -> None:
        self.scope = scope  # "video.rooms" or the room session id, for repr and log lines
        self._handlers = dict(handlers)  # dispatched event name -> handler
        self._detach = detach
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def events(self) -> frozenset[str]:
        """The event names this subscription has handlers for."""
        return frozenset(self._handlers)

    def handler_for(self, event: str) -> Handler | None:
        return self._handlers.get(event)

    def close(self) -> None:
        """Stop the handlers: events still queued for them are dropped."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._detach(self)

    def deliver(self, event: str, argument: Any) -> None:
        """Handler pool: run this subscription's handler for ``event``, unless it was closed."""
        handler = self._handlers.get(event)
        if handler is not None and not self._closed.is_set():
            handler(argument)

    def __enter__(self) -> VideoSubscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<VideoSubscription {self.scope} {sorted(self._handlers)} {'closed' if self.closed else 'open'}>"
