"""The fault matrix, one row about errors themselves: when one fault fails
many waiters at once (a dropped link, ``disconnect()``, credentials refused
on reconnect), each waiter's thread gets its own exception instance, so no
traceback shows another thread's frames.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future

from relay_sync import AuthenticationError, ClientClosedError, ConnectionLostError, RelayClient, RelayError
from relay_sync.testing import RelayTestServer

from .support import STEP, outcome_of, run_in_thread

WAITERS = 6


def start_waiters(client: RelayClient, server: RelayTestServer) -> list[Future[object]]:
    """WAITERS threads, each blocked on a request the server never answers."""
    server.respond("never.answered", silent=True)
    waiting = [
        run_in_thread(lambda: client.execute("never.answered", {}, timeout=30), name=f"waiter-{n}")
        for n in range(WAITERS)
    ]
    server.wait_for_request("never.answered", count=WAITERS)
    return waiting


def errors_of(waiting: list[Future[object]]) -> list[RelayError]:
    errors = [outcome_of(future, timeout=STEP) for future in waiting]
    assert all(isinstance(error, RelayError) for error in errors), errors
    return errors


def assert_one_instance_each(errors: list[RelayError]) -> None:
    assert len({id(error) for error in errors}) == len(errors)
    for error in errors:
        frames = traceback.extract_tb(error.__traceback__)
        # Raised once, in its own waiter thread: one trip up from the future to execute().
        assert sum(1 for frame in frames if frame.name == "execute") == 1, frames


def test_a_dropped_link_fails_each_waiter_with_its_own_error(
    server: RelayTestServer, make_client: Callable[..., RelayClient]
) -> None:
    client = make_client(request_timeout=30.0)
    waiting = start_waiters(client, server)
    server.session().drop()
    errors = errors_of(waiting)
    assert all(isinstance(error, ConnectionLostError) for error in errors)
    assert_one_instance_each(errors)


def test_disconnect_fails_each_waiter_with_its_own_error(
    server: RelayTestServer, make_client: Callable[..., RelayClient]
) -> None:
    client = make_client(request_timeout=30.0)
    waiting = start_waiters(client, server)
    client.disconnect()
    errors = errors_of(waiting)
    assert all(isinstance(error, ClientClosedError) for error in errors)
    assert_one_instance_each(errors)


def test_a_fatal_error_is_a_new_instance_each_time_it_is_raised(
    server: RelayTestServer, make_client: Callable[..., RelayClient]
) -> None:
    client = make_client()
    gave_up = threading.Event()
    client.on_disconnected(lambda error: isinstance(error, AuthenticationError) and gave_up.set())
    server.reject_logins = True
    server.session().drop()  # reconnecting, the credentials are refused three times: fatal
    assert gave_up.wait(STEP * 2)
    raised = []
    for _ in range(3):
        error = outcome_of(run_in_thread(lambda: client.execute("after.fatal", {}, timeout=STEP)))
        raised.append(error)
    assert all(isinstance(error, AuthenticationError) for error in raised), raised
    assert len({id(error) for error in raised}) == 3
    assert len({str(error) for error in raised}) == 1  # the same failure, told the same way
