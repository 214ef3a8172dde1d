"""User code on the handler pool that raises SystemExit (or another
BaseException that is not an Exception): it is logged like any raise, the
worker goes on, and the call's later listeners still run, in order."""

from __future__ import annotations

import queue

from relay_sync import RelayClient, RelayEvent
from relay_sync.testing import RelayTestServer

from .calling_support import WAIT, LogSignal, inbound_call, push_state


def test_a_listener_raising_system_exit_is_logged_and_later_events_still_run(
    client: RelayClient, server: RelayTestServer
) -> None:
    call = inbound_call(client, server)
    seen: queue.Queue[str | None] = queue.Queue()

    def listener(event: RelayEvent) -> None:
        seen.put(event.state)
        if event.state == "ringing":
            raise SystemExit("a listener called sys.exit()")

    call.on("calling.call.state", listener)
    with LogSignal("SystemExit") as signal:
        push_state(server.session(), call.call_id, "ringing")
        push_state(server.session(), call.call_id, "answered")
        push_state(server.session(), call.call_id, "ended")
        assert [seen.get(timeout=WAIT) for _ in range(3)] == ["ringing", "answered", "ended"]
        assert signal.seen.wait(WAIT)
    assert signal.records[0].exc_info is not None


def test_a_done_callback_raising_keyboard_interrupt_is_logged_and_the_pool_goes_on(
    client: RelayClient, server: RelayTestServer
) -> None:
    call = inbound_call(client, server)
    done: queue.Queue[str] = queue.Queue()

    def interrupting(_: object) -> None:
        raise KeyboardInterrupt

    with LogSignal("KeyboardInterrupt") as signal:
        call.ended.add_done_callback(interrupting)
        call.ended.add_done_callback(lambda future: done.put(future.result().state))
        push_state(server.session(), call.call_id, "ended")
        assert done.get(timeout=WAIT) == "ended"
        assert signal.seen.wait(WAIT)
    # the pool still runs work: another listener on a new call
    second = inbound_call(client, server)
    states: queue.Queue[str | None] = queue.Queue()
    second.on("calling.call.state", lambda event: states.put(event.state))
    push_state(server.session(), second.call_id, "answered")
    assert states.get(timeout=WAIT) == "answered"
