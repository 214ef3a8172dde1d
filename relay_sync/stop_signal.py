"""How ``RelayClient.run()`` waits to be stopped.

``run()`` blocks in ``select()`` on one end of a socket pair; anything may
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
still wakes the main thread's ``select()``.
"""

from __future__ import annotations

import select
import signal
import socket
import threading
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
        reader.setblocking(False)
        writer.setblocking(False)
        self._reader, self._writer = reader, writer
        restore = self._install_handlers(writer)
        try:
            yield
        finally:
            restore()
            self._reader = self._writer = None
            reader.close()
            writer.close()

    def wait(self) -> None:
        """Block until a stop is requested."""
        reader = self._reader
        if reader is None:
            self._event.wait()
            return
        while not self.is_set():  # a stop requested before listening() began is seen here
            _wait_for_bytes(reader)

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


def _wait_for_bytes(reader: socket.socket) -> None:
    """Block until a wake-up byte (or a signal) arrives, and swallow what came."""
    select.select([reader], [], [])
    _drain(reader)


def _drain(reader: socket.socket) -> None:
    try:
        while reader.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        return


def _nothing() -> None:
    return None
