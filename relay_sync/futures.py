"""Small helpers around ``concurrent.futures.Future``.

``settle``/``fail`` resolve a future that another thread may resolve first
(a response racing a timeout, an event racing ``disconnect()``); the first
outcome wins and the later one is dropped without an exception.

``HandoffFuture`` is the future handed to users (actions, messages, calls):
its done-callbacks run on the handler pool, never on the I/O thread that
resolves it.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, TypeVar

from .errors import RelayError, RelayTimeoutError
from .pool import HandlerPool, run_user_code

log = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def settle(future: Future[T], value: T) -> bool:
    """Set the result unless the future already has one; True if this call set it."""
    try:
        future.set_result(value)
    except InvalidStateError:  # already settled by the other side of the race
        return False
    return True


def fail(future: Future[Any], error: BaseException) -> bool:
    """Set the exception unless the future is already settled; True if this call set it.

    The future gets its own copy of a ``RelayError`` (see ``copy_for_waiter``):
    one error often fails many futures at once (a lost link, ``disconnect()``),
    and each is raised in its own thread.
    """
    try:
        future.set_exception(copy_for_waiter(error))
    except InvalidStateError:  # already settled by the other side of the race
        return False
    return True


def copy_for_waiter(error: E) -> E:
    """A new instance of ``error`` (same class, code, message and cause) for one more waiter.

    An exception raised in a thread collects that thread's frames in its
    traceback; the same instance raised in two threads would show each one
    the other's frames, and one thread's ``raise`` would change what the
    other sees. Only ``RelayError`` is copied: its state is its args and
    attributes, which a bare instance takes over as they are.
    """
    if not isinstance(error, RelayError):
        return error
    twin = type(error).__new__(type(error), *error.args)
    twin.args = error.args
    twin.__dict__.update(error.__dict__)
    twin.__cause__ = error.__cause__
    twin.__suppress_context__ = error.__suppress_context__
    return twin


class HandoffFuture(Future):  # type: ignore[type-arg]
    """A Future whose done-callbacks are run by an executor (the handler pool).

    The I/O thread resolves these futures; a plain Future would run the user's
    ``add_done_callback`` functions right there, stalling every other call.
    """

    def __init__(self, executor: HandlerPool) -> None:
        super().__init__()
        self._executor = executor

    def add_done_callback(self, fn: Callable[[Future[Any]], object]) -> None:
        executor = self._executor

        def hand_off(future: Future[Any]) -> None:
            try:
                executor.run(_run_callback, fn, future)
            except RuntimeError:  # the pool is shut down: the client is closing
                log.debug("done-callback %r dropped: the handler pool is closed", fn)

        super().add_done_callback(hand_off)


def _run_callback(fn: Callable[[Future[Any]], object], future: Future[Any]) -> None:
    run_user_code(fn, future, what="a future's done-callback")


def wait_timeout(timeout: float | None) -> float | None:
    """A user's wait timeout as a blocking primitive takes it: ``None`` (no limit)
    or seconds from 0 up to ``threading.TIMEOUT_MAX``.

    Every user-facing wait passes its timeout through here. A huge finite timeout
    (``1e10``) is clamped, since the lock underneath raises ``OverflowError`` past
    ``TIMEOUT_MAX`` (about 292 years on 64-bit Linux, so nothing real is cut short);
    NaN, infinity, a negative number or a non-number is a ``ValueError`` naming ``timeout``.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"timeout must be None or a number of seconds, not {timeout!r}")  # noqa: TRY004 - bad input
    if not math.isfinite(timeout) or timeout < 0:
        raise ValueError(f"timeout must be None or a finite number of seconds, at least 0, not {timeout!r}")
    return min(float(timeout), threading.TIMEOUT_MAX)


def wait_result(future: Future[Any], timeout: float | None, what: str) -> Any:
    """``future.result(timeout)``, raising ``RelayTimeoutError`` (a ``TimeoutError``) when
    time runs out; ``timeout`` is checked and clamped by ``wait_timeout``."""
    limit = wait_timeout(timeout)
    try:
        return future.result(limit)
    except FutureTimeout:
        # On Python >= 3.11 FutureTimeout is TimeoutError, so this also catches a
        # RelayTimeoutError the future itself failed with: re-raise that one as is.
        if future.done():
            raise
        raise RelayTimeoutError(f"{what} did not finish within {timeout:g} s") from None
