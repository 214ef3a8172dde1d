"""A user's wait timeout through the real transport: ``None`` or any finite number
of seconds (API.md). A huge one (``1e10``) waits like no limit instead of raising
``OverflowError`` from the lock underneath; NaN, infinity and negative numbers are a
``ValueError`` naming ``timeout``, and the thing waited on stays usable."""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

import pytest

from relay_sync import Call, RelayClient
from relay_sync.events import RelayEvent
from relay_sync.futures import wait_timeout
from relay_sync.testing import RelayTestServer

from .calling_support import WAIT, inbound_call, push_control, push_state

T = TypeVar("T")
HUGE = 1e10  # past threading.TIMEOUT_MAX (about 9.2e9 s on 64-bit Linux)
BAD = [math.nan, math.inf, -math.inf, -1.0]
TTS = [{"type": "tts", "params": {"text": "hold on"}}]


def waiting(wait: Callable[[], T]) -> tuple[Future[T], ThreadPoolExecutor]:
    """Run ``wait`` on another thread; returns once that thread is about to call it."""
    about_to_wait = threading.Event()
    executor = ThreadPoolExecutor(max_workers=1)

    def run() -> T:
        about_to_wait.set()
        return wait()

    future = executor.submit(run)
    assert about_to_wait.wait(timeout=WAIT)
    return future, executor


def test_the_clamp_is_the_primitives_limit() -> None:
    assert wait_timeout(HUGE) == threading.TIMEOUT_MAX
    assert wait_timeout(None) is None
    assert wait_timeout(0) == 0.0 and wait_timeout(2) == 2.0
    for bad in [*BAD, "5", True]:
        with pytest.raises(ValueError, match="timeout"):
            wait_timeout(bad)  # type: ignore[arg-type]


def test_action_and_call_waits_take_a_huge_timeout(client: RelayClient, server: RelayTestServer) -> None:
    call = inbound_call(client, server)
    session = server.session()
    play = call.play(TTS)
    control_id = play.control_id

    playing, first = waiting(lambda: call.wait_for("calling.call.play", timeout=HUGE))
    finished, second = waiting(lambda: play.wait(timeout=HUGE))
    ended, third = waiting(lambda: call.wait_for_ended(timeout=HUGE))
    try:
        push_control(session, "calling.call.play", call.call_id, control_id, state="playing")
        push_control(session, "calling.call.play", call.call_id, control_id, state="finished")
        event: RelayEvent = playing.result(timeout=WAIT)
        assert event.params["control_id"] == control_id
        assert finished.result(timeout=WAIT).params["state"] == "finished"
        push_state(session, call.call_id, "ended", end_reason="hangup")
        assert ended.result(timeout=WAIT).params["call_state"] == "ended"
        # Done already: a huge timeout returns at once as well.
        assert play.wait(timeout=HUGE).params["state"] == "finished"
        assert call.wait_for_ending(timeout=HUGE).params["call_state"] == "ended"
    finally:
        for executor in (first, second, third):
            executor.shutdown(wait=False)


@pytest.mark.parametrize("bad", BAD)
def test_a_wait_rejects_a_timeout_that_is_not_a_finite_number(
    client: RelayClient, server: RelayTestServer, bad: float
) -> None:
    call: Call = inbound_call(client, server)
    play = call.play(TTS)
    for wait in (
        lambda: play.wait(timeout=bad),
        lambda: call.wait_for("calling.call.play", timeout=bad),
        lambda: call.wait_for_ended(timeout=bad),
        lambda: call.wait_for_answered(timeout=bad),
    ):
        with pytest.raises(ValueError, match="timeout"):
            wait()
    # Nothing was lost: the action and the call still finish normally.
    session = server.session()
    push_control(session, "calling.call.play", call.call_id, play.control_id, state="finished")
    assert play.wait(timeout=WAIT).params["state"] == "finished"
    push_state(session, call.call_id, "ended", end_reason="hangup")
    assert call.wait_for_ended(timeout=WAIT).params["call_state"] == "ended"


def test_message_wait_takes_a_huge_timeout_and_rejects_nan(client: RelayClient, server: RelayTestServer) -> None:
    message = client.send_message(to_number="+15552222222", from_number="+15551111111", body="hi")
    with pytest.raises(ValueError, match="timeout"):
        message.wait(timeout=math.nan)
    delivered, executor = waiting(lambda: message.wait(timeout=HUGE))
    try:
        state = {"message_id": message.message_id, "message_state": "delivered", "direction": "outbound"}
        server.session().push_event("messaging.state", state)
        assert delivered.result(timeout=WAIT).params["message_state"] == "delivered"
        assert message.wait(timeout=HUGE).params["message_state"] == "delivered"
    finally:
        executor.shutdown(wait=False)
