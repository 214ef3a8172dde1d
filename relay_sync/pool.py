"""HandlerPool: the threads that run user code (``on_call``/``on_message``/
``on_task`` handlers, ``Call.on`` listeners, done-callbacks), and
``run_user_code``, the one place where what user code raises is caught and
logged with what was running.

Workers start on demand, up to ``max_workers``, and retire after
``idle_timeout`` seconds without work, so a storm of 300 inbound calls does
not leave 300 idle threads behind. Starting a thread takes a while (the
starter waits until the new thread runs), so the thread that hands over work,
often the I/O thread, starts at most one worker, and that worker starts the
others the burst needs before it takes work itself. ``run(fn, *args)`` hands work over without
building a ``Future``: the I/O thread calls it for every event it passes on.
``expect(n)`` starts workers ahead of work known to be on its way (the I/O
thread saw a burst of inbound calls in one read), so the starter thread starts
them back to back instead of one per piece of work as each arrives.
``submit`` is the ``concurrent.futures.Executor`` method, for callers that
want a Future. ``run_now`` hands work over only if a worker can take it at
once (an idle one, or room to start one): an inbound call must not wait in
a queue behind other work.

At interpreter exit queued work still runs, then the workers stop (idle ones
at once): a hook that runs before the interpreter joins threads joins them,
as ``ThreadPoolExecutor``'s does. The workers are daemon threads so that a
pool the user chose to give up on (``abandon()``, a second Ctrl-C in
``RelayClient.run()``) cannot hold the process open.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import weakref
from concurrent.futures import Executor, Future
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

# Seconds a worker waits for work before it retires.
IDLE_TIMEOUT = 5.0

_Work = Optional[tuple[Callable[..., Any], tuple[Any, ...]]]  # None: stop

_live_pools: weakref.WeakSet[HandlerPool] = weakref.WeakSet()


class HandlerPool(Executor):
    """``on_worker_exit`` runs on each worker thread as it exits (after it left
    ``worker_count``): a way to wake someone waiting for the pool to drain."""

    def __init__(
        self,
        max_workers: int,
        thread_name_prefix: str,
        idle_timeout: float = IDLE_TIMEOUT,
        on_worker_exit: Callable[[], None] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._thread_name_prefix = thread_name_prefix
        self._idle_timeout = idle_timeout
        self._on_worker_exit = on_worker_exit
        self._queue: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        # _lock guards _workers, _spare, _spawning and _shutdown; _changed is signalled
        # when _spawning ends.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._workers: set[threading.Thread] = set()
        # Workers that left _workers but may still be finishing: shutdown(wait=True)
        # joins them too, so no thread of ours outlives it. Pruned as workers start.
        self._retired: set[threading.Thread] = set()
        self._spawning = False  # a worker is being started, or is starting others
        # Workers waiting for work minus work waiting for a worker (negative: work is queued
        # because every worker is busy). A put that finds no spare worker starts one.
        self._spare = 0
        # Work announced by expect() and not handed over yet: workers are started for it too.
        self._expected = 0
        self._shutdown = False
        # Workers running work now. Changed by each worker without the lock (set.add and
        # set.discard are atomic), so the hand-over of each piece of work costs no lock.
        self._busy: set[threading.Thread] = set()
        self._abandoned = False  # nobody joins the workers any more, not even at exit
        self._names = itertools.count()
        _live_pools.add(self)

    def _reset_after_fork(self) -> None:
        """In a forked child only the forking thread exists: the workers, and any lock
        one of them held, stayed in the parent."""
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._workers = set()
        self._retired = set()
        self._busy = set()
        self._spare = 0
        self._expected = 0
        self._spawning = False

    @property
    def worker_count(self) -> int:
        return len(self._workers)

    @property
    def busy_count(self) -> int:
        """Workers running a piece of work right now."""
        return len(self._busy)

    def owns_current_thread(self) -> bool:
        """True on one of this pool's own workers (not another pool's)."""
        with self._lock:
            return threading.current_thread() in self._workers

    def run_now(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Like ``run``, but only if a worker can start on it at once: an idle worker
        is waiting, or there is room for one more. False (nothing handed over)
        otherwise. ``RuntimeError`` after shutdown."""
        return self._put((fn, args), only_if_free=True)

    def expect(self, count: int) -> None:
        """About ``count`` pieces of work are on their way: start the workers they need
        now, one starter thread starting them back to back. Each ``run``/``run_now``
        uses up one; ``expect(0)`` drops what is left (the burst was handed over).
        Never blocks on work: the I/O thread calls it."""
        with self._lock:
            self._expected = max(0, count)
            spawner = None if self._spawning else self._new_worker(self._spawn_then_work)
            self._spawning = self._spawning or spawner is not None
        if spawner is not None:
            self._start_spawner(spawner)

    def abandon(self) -> None:
        """Give up on the workers still running: shut down without waiting, and
        nobody joins them later (not even at interpreter exit)."""
        self._abandoned = True
        self.shutdown(wait=False)

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker; what it raises is logged. ``RuntimeError`` after shutdown."""
        self._put((fn, args))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._put((_run_for_future, (future, fn, args, kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work and stop the workers once the queue is done (at once with
        ``cancel_futures``, which drops queued work and cancels its futures)."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                _drop_queued(self._queue)
            while self._spawning:  # a worker on its way up is stopped and joined too
                self._changed.wait()
            workers = list(self._workers)
            for _ in workers:
                self._queue.put(None)
            workers.extend(self._retired)
        if wait and not self._abandoned:
            current = threading.current_thread()
            for worker in workers:
                if worker is not current:
                    worker.join()

    def _put(self, work: _Work, *, only_if_free: bool = False) -> bool:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            # Free now: idle workers plus room for new ones outnumber the work already waiting.
            if only_if_free and self._spare + self._max_workers - len(self._workers) <= 0:
                return False
            self._queue.put(work)
            self._spare -= 1
            if self._expected:
                self._expected -= 1
            spawner = None if self._spawning else self._new_worker(self._spawn_then_work)
            self._spawning = self._spawning or spawner is not None
        if spawner is not None:
            self._start_spawner(spawner)
        return True

    def _start_spawner(self, spawner: threading.Thread) -> None:
        try:
            spawner.start()
        except BaseException:
            self._not_started(spawner, spawning_ends=True)
            raise

    def _new_worker(self, target: Callable[[], None]) -> threading.Thread | None:
        """A worker to start when work waits (or is expected) and there is room (lock held)."""
        if self._spare >= self._expected or self._shutdown or len(self._workers) >= self._max_workers:
            return None
        worker = threading.Thread(target=target, name=f"{self._thread_name_prefix}_{next(self._names)}", daemon=True)
        self._retired = {thread for thread in self._retired if thread.is_alive()}
        self._workers.add(worker)
        self._spare += 1
        return worker

    def _not_started(self, worker: threading.Thread, *, spawning_ends: bool) -> None:
        with self._lock:
            self._workers.discard(worker)
            self._spare -= 1
            if spawning_ends:
                self._spawning = False
                self._changed.notify_all()

    def _spawn_then_work(self) -> None:
        """The first worker of a burst starts the others the burst needs, one after
        another, then works. (Starting them in parallel measured slower: the starts
        then compete with the I/O thread for the GIL.)"""
        while True:
            with self._lock:
                worker = self._new_worker(self._work)
                if worker is None:
                    self._spawning = False
                    self._changed.notify_all()
                    break
            try:
                worker.start()
            except RuntimeError as error:  # no more threads to be had: the work waits for a busy worker
                log.warning("could not start another handler thread: %s", error)
                self._not_started(worker, spawning_ends=True)
                break
        self._work()

    def _work(self) -> None:
        me = threading.current_thread()
        get = self._queue.get
        try:
            while True:
                try:
                    work = get(timeout=self._idle_timeout)
                except queue.Empty:
                    with self._lock:
                        if self._spare > 0 or self._shutdown:  # nobody's work is waiting for this worker
                            self._spare -= 1
                            return
                    continue  # work was queued as we timed out: take it
                if work is None:
                    return
                fn, args = work
                self._busy.add(me)
                try:
                    run_user_code(fn, *args, what="work on the handler pool")
                except BaseException as error:  # SystemExit and the like, which run_user_code passes on
                    # Raised on a worker they would end only this thread, and silently (threading
                    # ignores SystemExit): log them as any raise and go on, as the queued work needs a worker.
                    log.exception(
                        "work on the handler pool %r raised %s", getattr(fn, "__name__", fn), type(error).__name__
                    )
                finally:
                    self._busy.discard(me)
                del work, fn, args
                with self._lock:
                    self._spare += 1
        finally:
            with self._lock:
                self._workers.discard(me)
                self._retired.add(me)
            if self._on_worker_exit is not None:
                self._on_worker_exit()


def run_user_code(fn: Callable[..., Any], *args: Any, what: str, detail: Callable[[], str] | None = None) -> bool:
    """Run ``fn(*args)``; True if it returned. What it raises is logged, never
    propagated, so the worker (and every other handler) goes on: the only
    try/log wrapper around user code. The line reads ``<what> <fn> raised<detail()>``,
    ``detail`` being called only after a raise (an on_call handler's call, a hang-up)."""
    try:
        fn(*args)
    except Exception:  # user code: log it with what was running; the thread goes on
        log.exception("%s %r raised%s", what, getattr(fn, "__name__", fn), detail() if detail is not None else "")
        return False
    return True


def _run_for_future(future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as error:  # noqa: BLE001 - handed to the Future, as ThreadPoolExecutor does
        future.set_exception(error)
    else:
        future.set_result(result)


def _drop_queued(work_queue: queue.SimpleQueue[_Work]) -> None:
    while True:
        try:
            work = work_queue.get_nowait()
        except queue.Empty:
            return
        if work is not None and work[0] is _run_for_future:
            work[1][0].cancel()


def _stop_all_at_exit() -> None:
    try:
        for pool in list(_live_pools):
            pool.shutdown(wait=True)
    except KeyboardInterrupt:  # Ctrl-C while a worker holds the exit up: stop now, quietly
        log.warning("interrupted at exit: handlers still running are left behind")
        abandon_all_pools()


def abandon_all_pools() -> None:
    """Give up on every pool's running workers (a Ctrl-C at interpreter exit)."""
    for pool in list(_live_pools):
        pool.abandon()


def _reset_all_after_fork() -> None:
    for pool in list(_live_pools):
        pool._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_after_fork)

# Runs before the interpreter joins non-daemon threads (as ThreadPoolExecutor's does):
# queued work still runs, and idle workers stop at once instead of waiting out their
# idle timeout. (relay_sync.client registers a hook after this one, which therefore runs
# first: it closes the clients, so that handlers blocked in SDK waits unwind.)
threading._register_atexit(_stop_all_at_exit)  # type: ignore[attr-defined]
