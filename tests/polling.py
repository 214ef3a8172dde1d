"""Waiting on a value that has nothing to block on: a health probe, a count in
``stats()``, a thread retiring. The helper reads it again every few
milliseconds until it matches or the time is up; anything that can be waited
on directly (an event, a future, a queue) is waited on instead."""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")

READ_AGAIN_AFTER = 0.005  # seconds between readings


def read_until(read: Callable[[], T], matches: Callable[[T], bool], timeout: float, what: str) -> T:
    """The first ``read()`` that ``matches``; ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: its wait is the pause between readings
    while True:
        value = read()
        if matches(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s; last reading: {value!r}")
        pause.wait(READ_AGAIN_AFTER)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Return once ``condition()`` is true; ``AssertionError`` after ``timeout`` seconds."""
    read_until(condition, bool, timeout, what)
