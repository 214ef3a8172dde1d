"""The fault matrix, configuration rows: durations that are infinite, not a
number, absurd or not numbers at all; host names DNS cannot carry; and
deadlines from the server (a JWT's ``expires_at`` in milliseconds, or
infinite) that used to kill the timer thread, and with it keepalive.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relay_sync import RelayClient
from relay_sync.testing import RelayTestServer
from relay_sync.timers import TimerThread

from .support import STEP, phone, relay_thread_count

BAD_DURATIONS = [math.inf, -math.inf, math.nan, 0, -1, 1e10, 86_401, True, "10", None]


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    yield
    assert relay_thread_count() == 0, "relay_sync threads left running"


# -- durations ---------------------------------------------------------------------


@pytest.mark.parametrize("value", BAD_DURATIONS)
@pytest.mark.parametrize("name", ["request_timeout", "ping_interval", "connect_timeout"])
def test_a_bad_duration_setting_is_a_value_error_naming_it(name: str, value: Any) -> None:
    if value is None and name == "connect_timeout":
        pytest.skip("connect_timeout=None means 'as request_timeout'")
    with pytest.raises(ValueError, match=name):
        RelayClient("p", "t", **{name: value})


@pytest.mark.parametrize("value", BAD_DURATIONS)
def test_a_bad_backoff_is_a_value_error_naming_it(value: Any) -> None:
    with pytest.raises(ValueError, match="reconnect_backoff"):
        RelayClient("p", "t", reconnect_backoff=(value, 30.0))
    with pytest.raises(ValueError, match="reconnect_backoff"):
        RelayClient("p", "t", reconnect_backoff=(1.0, value))


def test_durations_up_to_a_day_are_accepted() -> None:
    RelayClient("p", "t", request_timeout=86_400, ping_interval=0.001, connect_timeout=86_400.0)


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, 1e10])
def test_a_bad_connect_timeout_argument_is_refused_before_anything_opens(server: RelayTestServer, value: float) -> None:
    client = RelayClient(**server.client_kwargs())
    with pytest.raises(ValueError, match="timeout"):
        client.connect(timeout=value)
    assert server.sessions == []


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, 1e10])
def test_a_bad_dial_timeout_is_a_value_error_and_nothing_is_dialed(
    server: RelayTestServer, make_client: Callable[..., RelayClient], value: float
) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="dial_timeout"):
        client.dial([[phone("+15551230000")]], dial_timeout=value)
    assert server.requests("calling.dial") == []


def test_a_huge_request_timeout_on_one_call_is_just_a_long_wait(make_client: Callable[..., RelayClient]) -> None:
    client = make_client()
    assert client.execute("patient", {}, timeout=1e12)["code"] == "200"


# -- deadlines from the server ---------------------------------------------------------


@pytest.fixture
def jwt_server(request: pytest.FixtureRequest) -> Iterator[RelayTestServer]:
    """A server whose logins say ``expires_at = request.param()``."""
    expires_at = request.param()
    authorization = {"project_id": "test", "scopes": ["calling"], "expires_at": expires_at}
    with RelayTestServer(jwt_tokens=("jwt-1", "jwt-2"), authorization=authorization) as server:
        yield server


def jwt_client(server: RelayTestServer) -> RelayClient:
    return RelayClient(
        jwt_token="jwt-1",
        jwt_refresher=lambda: "jwt-2",
        host=server.relay_host,
        scheme="ws",
        ping_interval=0.2,
        request_timeout=0.5,  # an answered ping is checked (and the next one sent) after this
    )


def soon_in_milliseconds() -> float:
    return (time.time() + 2) * 1000


@pytest.mark.parametrize("jwt_server", [soon_in_milliseconds], indirect=True)
def test_an_expiry_in_milliseconds_is_read_as_such(jwt_server: RelayTestServer) -> None:
    with jwt_client(jwt_server):
        # Read as seconds it would be 50,000 years away (and its wait would kill the timer thread).
        jwt_server.wait_for_request("signalwire.reauthenticate", timeout=STEP * 2)
        jwt_server.wait_for_request("signalwire.ping", timeout=STEP)  # and keepalive runs


@pytest.mark.parametrize(
    "jwt_server",
    [lambda: math.inf, lambda: 1e300, lambda: 4e18, lambda: 10**400],
    ids=["inf", "1e300", "4e18", "integer-past-float"],
    indirect=True,
)
def test_an_absurd_expiry_does_not_stop_keepalive(jwt_server: RelayTestServer) -> None:
    with jwt_client(jwt_server) as client:
        # The renewal timer is armed at login; keepalive pings must still go out after it.
        jwt_server.wait_for_request("signalwire.ping", count=3, timeout=STEP * 2)
        assert client.execute("still.here", {}, timeout=STEP)["code"] == "200"
        assert jwt_server.requests("signalwire.reauthenticate") == []


@pytest.mark.parametrize("jwt_server", [lambda: time.time() + 3600], indirect=True)
def test_an_expiry_past_float_range_on_reconnect_keeps_the_reader(jwt_server: RelayTestServer) -> None:
    # JSON integers have no limit: 10**400 cannot become a float. Read during a
    # reconnect's login, on the I/O thread, it once killed the only reader and left
    # the client "connected" with nobody reading the socket.
    with jwt_client(jwt_server) as client:
        jwt_server.authorization = {"project_id": "test", "scopes": ["calling"], "expires_at": 10**400}
        jwt_server.session().drop()
        jwt_server.wait_for_session(2, timeout=STEP)
        assert client.execute("read.after.reconnect", {}, timeout=STEP)["code"] == "200"
        assert client.state == "connected"


def test_the_timer_thread_survives_whatever_a_callback_raises() -> None:
    timers = TimerThread("relay_sync-test-timer")
    timers.start()
    ran = threading.Event()
    try:
        timers.call_later(0, lambda: (_ for _ in ()).throw(SystemExit(3)))
        timers.call_later(0, lambda: (_ for _ in ()).throw(OverflowError("boom")))
        timers.call_later(math.inf, ran.set)  # an infinite deadline is waited for, not fatal
        timers.call_later(math.nan, ran.set)
        assert ran.wait(STEP)
    finally:
        timers.stop()


# -- host names --------------------------------------------------------------------


BAD_HOSTS = ["a" * 64 + ".example.com", "relay..signalwire.com", ".signalwire.com", "x" * 63 + "." + "y" * 200]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_an_invalid_host_name_is_a_value_error_at_construction(host: str) -> None:
    with pytest.raises(ValueError, match=r"^host "):
        RelayClient("p", "t", host=host)


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_an_invalid_space_from_the_environment_is_named(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_SPACE", host)
    with pytest.raises(ValueError, match="SIGNALWIRE_SPACE"):
        RelayClient("p", "t")


@pytest.mark.parametrize("host", ["example.signalwire.com.", "bücher.example", "a" * 63 + ".example.com"])
def test_valid_host_names_are_accepted(host: str) -> None:
    assert RelayClient("p", "t", host=host).host == host
