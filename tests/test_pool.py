"""HandlerPool: workers on demand, retired when idle, joined on shutdown."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from relay_sync.pool import HandlerPool


def workers_named(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_run_and_submit_run_on_named_workers() -> None:
    pool = HandlerPool(4, "test-pool-a")
    seen: list[str] = []
    done = threading.Event()
    pool.run(lambda: (seen.append(threading.current_thread().name), done.set()))
    assert done.wait(2)
    assert pool.submit(lambda x: x * 2, 21).result(2) == 42
    assert seen[0].startswith("test-pool-a_")
    pool.shutdown(wait=True)
    assert workers_named("test-pool-a") == []


def test_a_burst_gets_one_worker_per_blocked_task_up_to_the_limit() -> None:
    pool = HandlerPool(5, "test-pool-b")
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocked() -> None:
        started.release()
        release.wait(5)

    for _ in range(8):
        pool.run(blocked)
    for _ in range(5):
        assert started.acquire(timeout=2)
    assert not started.acquire(timeout=0.1)  # the other 3 wait for a free worker
    assert pool.worker_count == 5
    release.set()
    for _ in range(3):
        assert started.acquire(timeout=2)
    pool.shutdown(wait=True)
    assert workers_named("test-pool-b") == []


def test_idle_workers_retire() -> None:
    pool = HandlerPool(10, "test-pool-c", idle_timeout=0.1)
    release = threading.Event()
    workers: list[threading.Thread] = []
    started = threading.Semaphore(0)

    def blocked() -> None:
        workers.append(threading.current_thread())
        started.release()
        release.wait(5)

    for _ in range(6):
        pool.run(blocked)
    for _ in range(6):
        assert started.acquire(timeout=2)
    release.set()
    for worker in workers:  # idle for 0.1 s, each retires and exits on its own
        worker.join(timeout=5)
        assert not worker.is_alive()
    assert pool.worker_count == 0
    assert workers_named("test-pool-c") == []
    done = threading.Event()
    pool.run(done.set)  # and it starts again on demand
    assert done.wait(2)
    pool.shutdown(wait=True)
    assert workers_named("test-pool-c") == []


def test_shutdown_joins_workers_that_already_retired() -> None:
    pool = HandlerPool(2, "test-pool-r", idle_timeout=0.01)
    started: list[threading.Thread] = []
    pool.submit(lambda: started.append(threading.current_thread())).result(2)
    started[0].join(timeout=5)  # retired
    pool.shutdown(wait=True)
    assert workers_named("test-pool-r") == []


def test_a_raising_task_is_logged_and_the_worker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = HandlerPool(1, "test-pool-d")

    def boom() -> None:
        raise ValueError("boom")

    pool.run(boom)
    assert pool.submit(lambda: "still here").result(2) == "still here"
    assert "boom" in caplog.text or any(r.exc_info for r in caplog.records)
    with pytest.raises(ValueError):
        pool.submit(boom).result(2)
    pool.shutdown(wait=True)


def test_shutdown_refuses_new_work_and_cancels_queued_futures() -> None:
    pool = HandlerPool(1, "test-pool-e")
    release = threading.Event()
    running = threading.Event()
    pool.run(lambda: (running.set(), release.wait(5)))
    assert running.wait(2)
    queued = pool.submit(lambda: "never")
    stopper = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
    stopper.start()
    with pytest.raises(CancelledError):
        queued.result(2)
    release.set()
    stopper.join(5)
    assert not stopper.is_alive()
    with pytest.raises(RuntimeError):
        pool.run(print)
    assert workers_named("test-pool-e") == []


def test_shutdown_from_a_worker_does_not_join_itself() -> None:
    pool = HandlerPool(2, "test-pool-f")
    done = threading.Event()

    def stop_from_inside() -> None:
        pool.shutdown(wait=True)
        done.set()

    pool.run(stop_from_inside)
    assert done.wait(2)


def test_run_now_refuses_work_that_would_have_to_wait() -> None:
    pool = HandlerPool(2, "test-pool-now")
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocked() -> None:
        started.release()
        release.wait(5)

    assert pool.run_now(blocked)
    assert pool.run_now(blocked)
    for _ in range(2):
        assert started.acquire(timeout=2)
    assert pool.busy_count == 2
    assert not pool.run_now(blocked)  # both workers busy, no room for a third
    release.set()
    pool.shutdown(wait=True)
    assert pool.busy_count == 0
    with pytest.raises(RuntimeError):
        pool.run_now(blocked)


def test_a_pool_knows_its_own_workers() -> None:
    mine, other = HandlerPool(1, "test-pool-own"), HandlerPool(1, "test-pool-own")
    answers = [mine.submit(lambda: (mine.owns_current_thread(), other.owns_current_thread())).result(2)]
    assert answers == [(True, False)]  # same thread name prefix, different pools
    assert not mine.owns_current_thread()
    mine.shutdown(wait=True)
    other.shutdown(wait=True)


def test_an_abandoned_pool_is_not_joined() -> None:
    pool = HandlerPool(1, "test-pool-abandon")
    release = threading.Event()
    started = threading.Event()
    pool.run(lambda: (started.set(), release.wait(5)))
    assert started.wait(2)
    pool.abandon()
    pool.shutdown(wait=True)  # returns at once: nobody joins an abandoned pool's workers
    assert workers_named("test-pool-abandon") != []
    release.set()


def test_expect_starts_workers_ahead_of_the_work_and_they_retire_unused() -> None:
    exited = threading.Semaphore(0)
    pool = HandlerPool(10, "test-pool-expect", idle_timeout=0.1, on_worker_exit=exited.release)
    pool.expect(6)
    for _ in range(6):  # every announced worker started, then retired with nothing to do
        assert exited.acquire(timeout=10)
    assert pool.worker_count == 0
    pool.shutdown(wait=True)
    assert workers_named("test-pool-expect") == []


def test_expect_is_used_up_by_the_work_it_announced() -> None:
    pool = HandlerPool(10, "test-pool-expect-b")
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocked() -> None:
        started.release()
        release.wait(5)

    pool.expect(3)
    for _ in range(3):
        pool.run(blocked)
    for _ in range(3):
        assert started.acquire(timeout=5)
    pool.expect(0)
    # Three announced, three handed over: no worker beyond them was started.
    assert pool.worker_count == 3
    release.set()
    pool.shutdown(wait=True)
    assert workers_named("test-pool-expect-b") == []
