"""The connection's life as the application sees it: the ``ConnectionState``
enum, the lifecycle hooks (``on_connected``, ``on_disconnected``,
``on_reconnecting``, ``on_auth_error``), the connect counters of
``stats()``, and the connection log lines.

The transport reports what happens to the link (``LinkObserver``) from the
thread that saw it: the I/O thread, or the caller's thread during
``connect()``. Those calls only count, log and queue: the hooks run on the
handler pool, one at a time and in the order the link events happened (one
``OrderedRunner`` for all of them), so a slow hook delays later hooks but
never the I/O thread.

Logging is quiet on purpose: one line per change of state (lost,
reconnected, refused, given up), and while reconnecting a summary at most
every ``SUMMARY_INTERVAL`` seconds instead of a line per attempt, so a link
that stays down for hours does not flood the log.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Any, Callable, TypeVar

from .errors import AuthenticationError, RelayError
from .ordered import OrderedRunner
from .pool import HandlerPool

log = logging.getLogger(__name__)

# Seconds between "still reconnecting" lines while the link stays down.
SUMMARY_INTERVAL = 60.0

Hook = TypeVar("Hook", bound=Callable[..., Any])


class ConnectionState(str, enum.Enum):
    """``RelayClient.state``. A ``str``, so ``client.state == "connected"`` works."""

    DISCONNECTED = "disconnected"  # not connected yet (or connect() failed)
    CONNECTING = "connecting"  # connect() is opening the socket and logging in
    CONNECTED = "connected"  # authenticated on a live socket
    RECONNECTING = "reconnecting"  # the link was lost; logging in again with backoff
    CLOSED = "closed"  # disconnect() was called, or the client gave up; final

    def __str__(self) -> str:
        return self.value


class LinkObserver:
    """What the transport reports about the link. The base class ignores it all."""

    def connected(self, resumed: bool) -> None:
        """A session is authenticated and live: ``connected`` is True and the requests
        queued while the link was down are on their way."""

    def link_lost(self, error: RelayError) -> None:
        """The socket of a logged-in session went away (not by ``close()``)."""

    def reconnecting(self, attempt: int, delay: float, last_error: BaseException | None) -> None:
        """Reconnect attempt ``attempt`` starts after ``delay`` seconds."""

    def login_refused(self, error: AuthenticationError) -> None:
        """``signalwire.connect`` was answered with an authentication error."""


# The hook kinds, and the names users register them by (RelayClient.on_<kind>).
HOOK_KINDS = ("connected", "disconnected", "reconnecting", "auth_error")


class Lifecycle(LinkObserver):
    """The client's lifecycle hooks, its connect counters and its connection log."""

    def __init__(self, handler_pool: HandlerPool) -> None:
        self._hooks: dict[str, list[Callable[..., Any]]] = {kind: [] for kind in HOOK_KINDS}
        self._runner = OrderedRunner(handler_pool, "the lifecycle hooks")
        # _lock guards the counters and the outage record below.
        self._lock = threading.Lock()
        self._connects = 0
        self._reconnects = 0
        self._outage_started: float | None = None  # monotonic time the link was lost
        self._outage_attempts = 0
        self._last_summary = 0.0

    def after_fork(self, handler_pool: HandlerPool) -> None:
        """In a forked child: the hooks stay; the counts start again, as the child's stats do."""
        self._runner = OrderedRunner(handler_pool, "the lifecycle hooks")
        self._lock = threading.Lock()
        self._connects = self._reconnects = 0
        self._outage_started = None

    # -- registration (any thread) ---------------------------------------------

    def add(self, kind: str, hook: Hook) -> Hook:
        if not callable(hook):
            raise TypeError(f"on_{kind} needs a function, not {hook!r}")
        self._hooks[kind].append(hook)
        return hook

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {"connects": self._connects, "reconnects": self._reconnects}

    # -- what happened (I/O thread or the connecting thread) -------------------

    def connected(self, resumed: bool) -> None:
        with self._lock:
            self._connects += 1
            outage, attempts = self._outage_started, self._outage_attempts
            self._outage_started = None
            if outage is not None:
                self._reconnects += 1
        if outage is None:
            log.info("connected: RELAY session started")
        elif resumed:
            log.info(
                "reconnected after %d attempt(s) in %.1f s; the session was resumed",
                attempts,
                time.monotonic() - outage,
            )
        else:
            log.warning(
                "reconnected after %d attempt(s) in %.1f s with a NEW session: "
                "events sent while the link was down were lost",
                attempts,
                time.monotonic() - outage,
            )
        self._fire("connected", resumed)

    def link_lost(self, error: RelayError) -> None:
        now = time.monotonic()
        with self._lock:
            self._outage_started = now
            self._outage_attempts = 0
            self._last_summary = now
        log.warning("connection lost (%s); reconnecting", error.message)
        self._fire("disconnected", error)

    def reconnecting(self, attempt: int, delay: float, last_error: BaseException | None) -> None:
        now = time.monotonic()
        with self._lock:
            started = self._outage_started if self._outage_started is not None else now
            self._outage_attempts = attempt
            summary_due = attempt > 1 and now - self._last_summary >= SUMMARY_INTERVAL
            if summary_due:
                self._last_summary = now
        if attempt == 2:  # the first failure says why; then only the periodic summary
            log.info(
                "reconnect attempt failed (%s); retrying with backoff (summary every %.0f s)",
                _describe(last_error),
                SUMMARY_INTERVAL,
            )
        elif summary_due:
            log.warning(
                "still reconnecting: %d attempt(s) over %.0f s; last error: %s; next attempt in %.1f s",
                attempt - 1,
                now - started,
                _describe(last_error),
                delay,
            )
        else:
            log.debug("reconnect attempt %d in %.2f s (last error: %s)", attempt, delay, _describe(last_error))
        self._fire("reconnecting", attempt, delay)

    def login_refused(self, error: AuthenticationError) -> None:
        # The server's words only: the credentials themselves never reach a log line.
        log.warning("the server refused the credentials: %s", error.message)
        self._fire("auth_error", error)

    def gave_up(self, error: RelayError) -> None:
        """The client closed itself for good (after repeated failures to reconnect)."""
        self._fire("disconnected", error)

    def _fire(self, kind: str, *args: Any) -> None:
        for hook in self._hooks[kind]:
            self._runner.submit(hook, *args, what="lifecycle hook")


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "none"
    if isinstance(error, RelayError):
        return error.message
    return str(error) or type(error).__name__
