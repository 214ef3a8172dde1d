"""Lifecycle hooks and connection states through real faults: a server that
restarts, a dropped link, a half-open link, and credentials refused."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from relay_sync import AuthenticationError, ConnectionLostError, RelayClient
from relay_sync.testing import RelayEmulator, RelayTestServer
from relay_sync.transport import AUTH_FAILURE_LIMIT, retry_delay

from .fast_clients import relay_threads
from .polling import wait_until

MakeClient = Callable[..., RelayClient]


@pytest.fixture
def server() -> Iterator[RelayTestServer]:
    with RelayEmulator() as emulator:
        yield emulator


class HookRecorder:
    """Registers every lifecycle hook on a client and records the calls in order,
    with the thread each ran on and how many ran at once."""

    def __init__(self, client: RelayClient) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.threads: set[str] = set()
        self.most_at_once = 0
        self._running = 0
        self._changed = threading.Condition()
        self.gate: dict[str, threading.Event] = {}  # a hook kind waits for its event before returning
        client.on_connected(lambda resumed: self._record("connected", resumed))
        client.on_disconnected(lambda error: self._record("disconnected", error))
        client.on_reconnecting(lambda attempt, delay: self._record("reconnecting", attempt, delay))
        client.on_auth_error(lambda error: self._record("auth_error", error))

    def _record(self, kind: str, *args: Any) -> None:
        with self._changed:
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
            self.threads.add(threading.current_thread().name)
        gate = self.gate.get(kind)
        if gate is not None:
            gate.wait(timeout=30)
        with self._changed:
            self._running -= 1
            self.calls.append((kind, *args))
            self._changed.notify_all()

    def kinds(self) -> list[str]:
        with self._changed:
            return [call[0] for call in self.calls]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[tuple[Any, ...]]:
        """Block until ``count`` calls of ``kind`` were recorded; returns them."""

        def matching() -> list[tuple[Any, ...]]:
            return [call for call in self.calls if call[0] == kind]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                raise AssertionError(f"{count} {kind} hook call(s) not seen within {timeout} s: {self.calls}")
            return matching()


class LogWatcher(logging.Handler):
    """Collects records of one logger and lets a test wait for a message."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()
        self._logger = logging.getLogger(name)

    def __enter__(self) -> LogWatcher:
        self._old_level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old_level)

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10.0) -> logging.LogRecord:
        def found() -> logging.LogRecord | None:
            return next((r for r in self.records if text in r.getMessage()), None)

        with self._changed:
            record = self._changed.wait_for(found, timeout)
        if record is None:
            raise AssertionError(f"no log line containing {text!r} within {timeout} s")
        return record

    def lines(self, level: int) -> list[str]:
        with self._changed:
            return [r.getMessage() for r in self.records if r.levelno == level]


def test_hooks_run_in_order_one_at_a_time_through_a_server_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    first = RelayTestServer().start()
    client = RelayClient(**first.client_kwargs(request_timeout=2.0, reconnect_backoff=(0.05, 0.2)))
    hooks = HookRecorder(client)
    hooks.gate["disconnected"] = hold_disconnected = threading.Event()
    second: RelayTestServer | None = None
    try:
        with LogWatcher("relay_sync.lifecycle") as log:
            client.connect()
            hooks.wait_for("connected")
            first.stop()  # the server goes away with the session it knew
            log.wait_for("reconnect attempt failed")  # refused: nothing listens on the port now
            assert client.state == "reconnecting"
            second = RelayTestServer(port=first.port).start()  # back, knowing nothing of the old session
            second.wait_for_session(1)
            # The disconnected hook is still running: everything after it waits its turn.
            assert hooks.kinds() == ["connected"]
            hold_disconnected.set()
            hooks.wait_for("connected", count=2)
            warnings = log.lines(logging.WARNING)
        assert client.state == "connected"
    finally:
        client.disconnect()
        first.stop()
        if second is not None:
            second.stop()

    kinds = hooks.kinds()
    reconnecting = [call for call in hooks.calls if call[0] == "reconnecting"]
    assert kinds == ["connected", "disconnected"] + ["reconnecting"] * len(reconnecting) + ["connected"]
    assert [call[1] for call in reconnecting] == list(range(1, len(reconnecting) + 1))
    assert len(reconnecting) >= 2
    assert all(isinstance(call[2], float) and call[2] >= 0 for call in reconnecting)
    assert isinstance(hooks.calls[1][1], ConnectionLostError)
    assert [call[1] for call in hooks.calls if call[0] == "connected"] == [False, False]  # a new session
    assert hooks.most_at_once == 1
    assert all(name.startswith("relay_sync-handler") for name in hooks.threads)
    assert any("NEW session" in line for line in warnings)
    assert client.stats()["reconnects"] == 1
    assert relay_threads() == []


def test_a_dropped_link_resumes_the_session(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False)
    hooks = HookRecorder(client)
    with LogWatcher("relay_sync.lifecycle") as log:
        client.connect()
        server.session().drop()
        hooks.wait_for("connected", count=2)
        assert not any("NEW session" in line for line in log.lines(logging.WARNING))
        log.wait_for("the session was resumed")
    assert [call[1] for call in hooks.calls if call[0] == "connected"] == [False, True]
    assert isinstance(hooks.wait_for("disconnected")[0][1], ConnectionLostError)
    assert client.stats()["reconnects"] == 1


def test_on_connected_sees_a_live_client_with_the_backlog_already_sent(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    server.respond("queued.method", result={"code": "200", "message": "OK"})
    client = make_client(request_timeout=30)
    seen: list[tuple[bool, str, int]] = []
    reconnected = threading.Event()

    @client.on_connected
    def look(resumed: bool) -> None:
        seen.append((client.connected, client.state, client.stats()["backlog"]))
        if resumed:
            reconnected.set()

    server.pause_logins()
    server.session().drop()
    server.wait_for_request("signalwire.connect", count=2)
    queued = [client.execute_future("queued.method", {"n": n}) for n in range(300)]
    server.resume_logins()
    assert reconnected.wait(10)
    assert all(future.result(timeout=10)["code"] == "200" for future in queued)
    assert seen[-1] == (True, "connected", 0)


def test_a_server_restart_notice_means_a_new_session(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False)
    hooks = HookRecorder(client)
    with LogWatcher("relay_sync.lifecycle") as log:
        client.connect()
        server.session().send_disconnect(restart=True)
        hooks.wait_for("connected", count=2)
        record = log.wait_for("NEW session")
    assert record.levelno == logging.WARNING
    assert [call[1] for call in hooks.calls if call[0] == "connected"] == [False, False]


def test_a_half_open_link_turns_unhealthy_then_reconnects(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False, ping_interval=0.3, request_timeout=0.5)
    hooks = HookRecorder(client)
    client.connect()
    assert client.healthy()
    server.session().go_silent()
    # Silent for longer than ping_interval + request_timeout, yet before the three
    # unanswered pings force the reconnect, the client is connected but not healthy.
    wait_until(lambda: not client.healthy())
    hooks.wait_for("connected", count=2)
    assert server.wait_for_session(2)
    assert hooks.kinds()[:3] == ["connected", "disconnected", "reconnecting"]
    wait_until(client.healthy)


def test_refused_credentials_on_connect(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False, token="wrong")
    hooks = HookRecorder(client)
    with pytest.raises(AuthenticationError):
        client.connect()
    (call,) = hooks.wait_for("auth_error")
    assert isinstance(call[1], AuthenticationError)
    assert client.state == "disconnected"
    assert "wrong" not in str(call[1])


def test_refused_credentials_on_reconnect_close_the_client(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False)
    hooks = HookRecorder(client)
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            client.run()
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion below
            outcome["error"] = error

    runner = threading.Thread(target=run)
    runner.start()
    server.wait_for_session(1)
    server.reject_logins = True
    server.session().drop()
    runner.join(timeout=20)
    assert not runner.is_alive()
    refusals = len(server.requests("signalwire.connect")) - 1
    assert refusals >= 1
    # Each attempt is announced, then refused; after the last, the client gives up.
    assert hooks.kinds() == ["connected", "disconnected"] + ["reconnecting", "auth_error"] * refusals + ["disconnected"]
    final = hooks.calls[-1][1]
    # The same failure as run() raised (each waiter and hook gets its own instance).
    assert isinstance(final, AuthenticationError) and str(final) == str(outcome["error"])
    assert client.state == "closed"


def test_reconnect_delays_start_under_half_the_minimum_and_never_pass_the_maximum(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    low, high = 0.02, 0.05
    client = make_client(reconnect_backoff=(low, high))
    hooks = HookRecorder(client)
    server.reject_logins = True  # every reconnect attempt fails, until the client gives up
    server.session().drop()
    hooks.wait_for("disconnected", count=2)  # the loss, then giving up
    delays = [call[2] for call in hooks.calls if call[0] == "reconnecting"]
    assert len(delays) == AUTH_FAILURE_LIMIT
    assert 0 <= delays[0] < low / 2
    assert low <= delays[1] < 2 * low
    assert all(delay <= high for delay in delays)


@pytest.mark.parametrize("backoff", [(1.0, 30.0), (0.05, 0.2), (2.0, 2.0), (1.0, 1.5)])
def test_every_retry_delay_keeps_to_the_backoff(backoff: tuple[float, float]) -> None:
    low, high = backoff
    for _ in range(200):
        assert 0 <= retry_delay(1, low, high) < low / 2
        for retry in range(2, 40):
            delay = retry_delay(retry, low, high)
            floor = min(low * 2 ** (retry - 2), high - low)
            assert floor <= delay <= min(floor + low, high)


def test_a_hook_that_raises_is_logged_and_the_next_still_runs(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False)
    ran = threading.Event()

    @client.on_connected
    def broken(resumed: bool) -> None:
        raise RuntimeError("hook bug")

    @client.on_connected
    def fine(resumed: bool) -> None:
        ran.set()

    with LogWatcher("relay_sync.pool") as log:  # the one runner of user code logs there
        client.connect()
        assert ran.wait(timeout=5)
        record = log.wait_for("raised")
    assert record.exc_info is not None and "hook bug" in str(record.exc_info[1])
    assert record.getMessage().startswith("lifecycle hook 'broken' raised")


def test_hooks_must_be_callable(make_client: MakeClient) -> None:
    client = make_client(connect=False)
    with pytest.raises(TypeError, match="on_connected"):
        client.on_connected("not a function")  # type: ignore[type-var]


def test_a_long_outage_logs_state_changes_and_summaries_not_every_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("relay_sync.lifecycle.SUMMARY_INTERVAL", 0.5)  # a minute, in production
    server = RelayTestServer().start()
    client = RelayClient(**server.client_kwargs(reconnect_backoff=(0.01, 0.02)))
    attempts = threading.Semaphore(0)
    client.on_reconnecting(lambda attempt, delay: attempts.release())
    try:
        with LogWatcher("relay_sync") as log:
            client.connect()
            server.stop()  # down for good: every attempt is refused
            for _ in range(40):
                assert attempts.acquire(timeout=10)
            log.wait_for("still reconnecting")
            records = [r for r in log.records if r.levelno >= logging.INFO]
    finally:
        client.disconnect()
        server.stop()
    lines = [r.getMessage() for r in records]
    lost = next(n for n, line in enumerate(lines) if line.startswith("connection lost"))
    during_outage = records[lost:]
    summaries = [r for r in during_outage if r.getMessage().startswith("still reconnecting")]
    others = [r.getMessage() for r in during_outage if r not in summaries]
    # 40+ attempts, yet besides the summaries only the loss and the first failure were logged...
    assert len(others) == 2 and "reconnect attempt failed" in others[1], others
    # ...and the summaries come no oftener than their interval.
    times = [r.created for r in summaries]
    assert all(later - earlier >= 0.45 for earlier, later in zip(times, times[1:])), times
