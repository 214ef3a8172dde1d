"""How a call's waits end when the call goes: each waiting thread gets its own
exception instance (docs/reliability.rst), and a state wait asked after the
end answers from the states the call went through, not the one it ended in."""

from __future__ import annotations

import threading
from typing import Callable

import pytest

from relay_sync import Call, CallEndedError, RelayClient, RelayError
from relay_sync.testing import RelayTestServer

from .calling_support import WAIT, inbound_call, push_state
from .polling import wait_until

Wait = Callable[[Call], object]

WAITS: list[Wait] = [
    lambda call: call.wait_for("calling.call.play", timeout=WAIT * 5),
    lambda call: call.wait_for_answered(timeout=WAIT * 5),
    lambda call: call.wait_for("calling.call.play", timeout=WAIT * 5),
]


def errors_of_waits(call: Call, end: Callable[[], None]) -> list[BaseException]:
    """Start each of WAITS in its own thread, ``end`` the call, return what each raised."""
    errors: list[BaseException] = []

    def run(wait: Wait) -> None:
        try:
            wait(call)
        except BaseException as error:  # noqa: BLE001 - collected for the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(wait,)) for wait in WAITS]
    for thread in threads:
        thread.start()
    wait_until(lambda: call.waiting == len(WAITS), WAIT, "every wait in place")
    end()
    for thread in threads:
        thread.join(WAIT * 5)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def distinct(errors: list[BaseException]) -> bool:
    return len({id(error) for error in errors}) == len(errors)


def test_waiters_on_a_call_the_client_dropped_each_get_their_own_error(
    make_client: Callable[..., RelayClient], server: RelayTestServer
) -> None:
    client = make_client(contexts=["office"])
    call = inbound_call(client, server)

    errors = errors_of_waits(call, client.disconnect)

    assert len(errors) == len(WAITS) and all(isinstance(error, RelayError) for error in errors)
    assert distinct(errors)
    later = []
    for _ in range(2):  # waits asked after the call left raise too, each its own instance
        with pytest.raises(RelayError) as excinfo:
            call.wait_for("calling.call.play", timeout=WAIT)
        later.append(excinfo.value)
    with pytest.raises(RelayError) as excinfo:
        call.wait_for_answered(timeout=WAIT)
    later.append(excinfo.value)
    assert distinct(later) and len({error.code for error in later}) == 1


def test_waiters_on_a_call_that_ended_each_get_their_own_error(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)

    errors = errors_of_waits(call, lambda: push_state(server.session(), call.call_id, "ended"))

    assert len(errors) == len(WAITS) and all(isinstance(error, CallEndedError) for error in errors)
    assert distinct(errors)


def test_a_state_wait_after_an_unanswered_end_raises(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)  # it rings (its receive event says so)
    push_state(server.session(), call.call_id, "ending")
    push_state(server.session(), call.call_id, "ended")
    call.wait_for_ended(timeout=WAIT)

    with pytest.raises(CallEndedError):
        call.wait_for_answered(timeout=WAIT)
    assert call.wait_for_ringing(timeout=WAIT).state == "ringing"  # it did ring
    assert call.wait_for_ending(timeout=WAIT).state == "ended"


def test_a_state_wait_after_an_answered_call_ended_returns_the_answer(
    client: RelayClient, server: RelayTestServer
) -> None:
    call = inbound_call(client, server)
    push_state(server.session(), call.call_id, "answered")
    push_state(server.session(), call.call_id, "ended")
    call.wait_for_ended(timeout=WAIT)

    assert call.wait_for_answered(timeout=WAIT).state == "answered"
    assert call.wait_for_ringing(timeout=WAIT).state == "answered"  # past ringing: the furthest state


def test_a_call_that_ended_before_it_rang_never_rang(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server, call_state="created")
    push_state(server.session(), call.call_id, "ended")
    call.wait_for_ended(timeout=WAIT)

    with pytest.raises(CallEndedError):
        call.wait_for_ringing(timeout=WAIT)
