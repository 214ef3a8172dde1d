"""Keepalive under timeouts: a silent link that the application keeps sending
requests to must still be given up on, and the probes must not pile up."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable

from relay_sync import RelayClient
from relay_sync.testing import RelayTestServer

MakeClient = Callable[..., RelayClient]


def test_timeouts_arriving_faster_than_the_probe_do_not_keep_a_silent_link(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    # A long ping interval: only the probe after a timed-out request can notice the silence.
    timeout = 0.5
    client = make_client(request_timeout=timeout, ping_interval=60.0, reconnect_backoff=(0.05, 0.1))
    server.session().go_silent()
    stop = threading.Event()
    most_pings_waiting = 0
    sent: list[Future[Any]] = []

    def pump() -> None:
        # A request more often than request_timeout: each one times out while the probe
        # of an earlier one is still waiting for its answer.
        nonlocal most_pings_waiting
        while not stop.is_set() and len(server.sessions) < 2:
            sent.append(client.execute_future("never.answered", {}))
            waiting = client.stats()["in_flight_methods"].get("signalwire.ping", 0)
            most_pings_waiting = max(most_pings_waiting, waiting)
            stop.wait(timeout / 4)

    pumping = threading.Thread(target=pump, name="test-pump")
    pumping.start()
    try:
        # First timeout after 0.5 s, its probe unanswered 0.5 s later: the link closes
        # and the client logs in again. Never, while each timeout pushed the verdict back.
        server.wait_for_session(2, timeout=20 * timeout)
    finally:
        stop.set()
        pumping.join()
    assert most_pings_waiting <= 1, f"{most_pings_waiting} keepalive pings waited at once"
    assert client.execute("after.reconnect", {})["code"] == "200"
    for future in sent:
        future.exception(timeout=10)  # every request came to an end (timeout or lost link)
    assert client.stats()["in_flight_methods"].get("never.answered", 0) == 0
