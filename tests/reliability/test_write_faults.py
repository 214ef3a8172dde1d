"""The fault matrix, write rows: the server stops reading what the client
sends while it keeps sending (a wedged peer, a full window that never
opens). A write that cannot go out within ``request_timeout`` makes the link
lost: the caller gets ``ConnectionLostError`` instead of blocking without
end, and the client reconnects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from relay_sync import ConnectionLostError, RelayClient, RelayError, RelayTimeoutError
from relay_sync.testing import RelayTestServer

from .netfaults import FaultProxy
from .support import STEP, relay_thread_count, run_in_thread

REQUEST_TIMEOUT = 1.0
# A few of these fill the socket buffers on the way; each stays under the test
# server's 4 MiB frame limit, so the server never closes the link itself.
BLOB = "x" * (3 * 1024 * 1024)
WAIT = 0.2  # how long each upload waits for its (never coming) answer


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    yield
    assert relay_thread_count() == 0, "relay_sync threads left running"


def keep_pinging(server: RelayTestServer, stop: threading.Event) -> None:
    """The server keeps talking (so the client's keepalive sees a live link)."""
    while not stop.wait(0.05):
        for session in server.live_sessions():
            session.ping()


def test_a_write_the_server_never_takes_fails_within_request_timeout() -> None:
    server = RelayTestServer().start()
    stop_pinging = threading.Event()
    try:
        with FaultProxy(server.port) as proxy:
            client = RelayClient(
                "test",
                "test",
                host=f"127.0.0.1:{proxy.port}",
                scheme="ws",
                request_timeout=REQUEST_TIMEOUT,
                ping_interval=60.0,
                reconnect_backoff=(0.05, 0.2),
            )
            with client:
                threading.Thread(target=keep_pinging, args=(server, stop_pinging), daemon=True).start()
                proxy.stall_upstream()

                def upload_until_lost() -> list[tuple[float, RelayError]]:
                    outcomes = []
                    for _ in range(40):
                        started = time.monotonic()
                        try:
                            client.execute("blob.upload", {"blob": BLOB}, timeout=WAIT)
                        except RelayError as error:
                            outcomes.append((time.monotonic() - started, error))
                            if isinstance(error, ConnectionLostError):
                                return outcomes
                    raise AssertionError("the link was never given up")

                # Without a write deadline one of these blocks in the socket for good.
                outcomes = run_in_thread(upload_until_lost).result(timeout=40)
                for elapsed, error in outcomes:
                    assert isinstance(error, (RelayTimeoutError, ConnectionLostError))
                    assert elapsed < 2 * REQUEST_TIMEOUT + 3.0, outcomes
                assert server.requests("blob.upload") == []  # nothing got through the stall
                # The link was treated as lost, and the client is back on a fresh one.
                server.wait_for_session(2, timeout=STEP * 2)
                assert client.execute("after.stall", {}, timeout=STEP)["code"] == "200"
    finally:
        stop_pinging.set()
        server.stop()
