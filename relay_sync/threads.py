"""Starting relay_sync's own threads.

``Thread.start()`` blocks until the new thread runs; a Ctrl-C landing in that
instant would leave a thread running that its owner never recorded, so
``disconnect()`` could not join it. Starting with SIGINT/SIGTERM blocked (on
the main thread, where Python handles signals) moves the KeyboardInterrupt to
just after the start, when the thread is known.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable

_DEFERRED = {signal.SIGINT, signal.SIGTERM}


def start_daemon(target: Callable[..., Any], name: str, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        thread.start()
        return thread
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread
