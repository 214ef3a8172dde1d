"""How ``RelayClient.run()`` waits to be stopped.

``run()`` blocks in ``recv()`` on one end of a socket pair; anything may
wake it by writing a byte to the other end: ``stop()`` from any thread, a
fatal connection error from the I/O thread, and SIGINT/SIGTERM. While
``run()`` is active on the main thread, Ctrl-C and SIGTERM are handled here
instead of raising KeyboardInterrupt at an arbitrary point inside relay_sync's
threading code (where it could leave a lock held and hang the exit); a signal
received mid-``connect()`` takes effect as soon as connecting ends.

After the first signal ``run()`` keeps listening while it waits for busy
handlers (``wait_until``), so that a second Ctrl-C stops the wait instead of
raising KeyboardInterrupt inside the pool's join.

The signal handler only records the signal and writes to the socket: it takes
no lock, so it cannot deadlock with the code it interrupts. The socket is also
the C-level wakeup fd, so a signal that the kernel hands to another thread
still wakes the main thread's ``recv()``. (Not ``select()``: it refuses a
descriptor numbered 1024 or more, which a busy process easily has.)
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Callable

_HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopSignal:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None
        self._restore: Callable[[], None] = _nothing  # undoes what listening() installed
        self.signal_received: int | None = None
        self.signal_count = 0  # signals received while listening

    def is_set(self) -> bool:
        return self._event.is_set() or self.signal_received is not None

    def request(self) -> None:
        """Ask ``run()`` to return. Any thread; not for signal handlers."""
        self._event.set()
        self._wake()

    def wake(self) -> None:
        """Make a ``wait_until`` in progress test its condition again. Any thread."""
        self._wake()

    @contextmanager
    def listening(self) -> Iterator[None]:
        """While inside, ``wait()`` can be woken and, on the main thread, SIGINT/SIGTERM request a stop."""
        reader, writer = socket.socketpair()
        writer.setblocking(False)  # a signal handler must never block on it
        self._reader, self._writer = reader, writer
        self._restore = self._install_handlers(writer)
        try:
            yield
        finally:
            self._restore()
            self._restore = _nothing
            self._reader = self._writer = None
            reader.close()
            writer.close()

    def after_fork_in_child(self) -> None:
        """In a process forked while ``listening()``: the signal handlers and the wakeup
        fd are the parent's ``run()``'s, and would swallow the child's own SIGTERM and
        SIGINT. Put back what was there before (signals may be handled only on the main
        thread, which in the child is the one that forked) and let go of the socket pair."""
        restore, self._restore = self._restore, _nothing
        if threading.current_thread() is threading.main_thread():
            restore()
        for sock in (self._reader, self._writer):
            if sock is not None:
                sock.close()  # the child's copies: the parent's stay open
        self._reader = self._writer = None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested, or ``timeout`` seconds passed; True if stopped."""
        reader = self._reader
        if reader is None:
            self._event.wait(timeout)
            return self.is_set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():  # a stop requested before listening() began is seen here
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            _wait_for_bytes(reader, remaining)
        return True

    def wait_until(self, done: Callable[[], bool], signals_seen: int) -> bool:
        """Inside ``listening()``: block until ``done()`` holds (True) or a signal
        beyond the first ``signals_seen`` arrives (False; it may have come already).
        Whoever makes ``done()`` true must call ``wake()``. Outside ``listening()``
        there is nothing to wait on: returns ``done()``."""
        reader = self._reader
        if reader is None:
            return done()
        while not done():
            if self.signal_count > signals_seen:
                return False
            _wait_for_bytes(reader)
        return True

    def _wake(self) -> None:
        writer = self._writer
        if writer is not None:
            try:
                writer.send(b"\0")
            except OSError:  # closed, or the buffer is full: run() is awake already
                pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signal_received = signum
        self.signal_count += 1
        self._wake()

    def _install_handlers(self, writer: socket.socket) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return _nothing
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _HANDLED}
        previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

        def restore() -> None:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        return restore


def _wait_for_bytes(reader: socket.socket, timeout: float | None = None) -> None:
    """Block until a wake-up byte (or a signal) arrives, or ``timeout`` passes; swallow
    what came. What the bytes mean is in the state the caller checks next."""
    reader.settimeout(timeout)
    try:
        reader.recv(4096)
    except socket.timeout:
        return


def _nothing() -> None:
    return None
