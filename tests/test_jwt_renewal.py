"""JWT sessions outlive their token: signalwire.reauthenticate before
authorization.expires_at, on the same socket, with a token from the user's
jwt_refresher or minted over REST; a warning when there is no way to renew."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Callable

import pytest
import responses

from relay_sync import RelayClient
from relay_sync.jwt_renewal import MIN_RENEWAL_INTERVAL, jwt_expiry, refresh_delay
from relay_sync.testing import RelayTestServer

MakeClient = Callable[..., RelayClient]


class LogWaiter(logging.Handler):
    """Lets a test block until a log record containing ``text`` was emitted."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.fixture
def renewal_log(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[str], LogWaiter]]:
    caplog.set_level(logging.INFO, logger="relay_sync.jwt_renewal")
    logger = logging.getLogger("relay_sync.jwt_renewal")
    waiters: list[LogWaiter] = []

    def waiter(text: str) -> LogWaiter:
        handler = LogWaiter(text)
        logger.addHandler(handler)
        waiters.append(handler)
        return handler

    yield waiter
    for handler in waiters:
        logger.removeHandler(handler)


def real_jwt(expires_at: float) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'exp': expires_at, 'sub': 'x'})}.c2ln"


def expiring_in(server: RelayTestServer, seconds: float) -> float:
    expires_at = time.time() + seconds
    server.authorization = {"project_id": "test", "expires_at": expires_at}
    return expires_at


def test_a_refresher_token_reauthenticates_on_the_same_socket_before_expiry(
    server: RelayTestServer, make_client: MakeClient, renewal_log: Callable[[str], LogWaiter]
) -> None:
    expires_at = expiring_in(server, 0.6)
    serial = itertools.count(2)
    refresher_threads: list[str] = []

    def refresher() -> str:
        refresher_threads.append(threading.current_thread().name)
        token = f"jwt-{next(serial)}"
        server.jwt_tokens.add(token)
        return token

    renewed = renewal_log("re-authenticated with a new JWT")
    client = make_client(project=None, token=None, jwt_token="test-jwt", jwt_refresher=refresher)
    frame = server.wait_for_request("signalwire.reauthenticate", timeout=2)
    assert time.time() < expires_at
    assert frame["params"] == {"authentication": {"jwt_token": "jwt-2"}}
    assert renewed.seen.wait(2)
    assert client.connected and len(server.requests("signalwire.connect")) == 1  # same socket
    assert refresher_threads[0].startswith("relay_sync-handler")

    # A later reconnect logs in with the token the server accepted last.
    server.session().drop()
    server.wait_for_session(2, timeout=2)
    login = server.requests("signalwire.connect")[1]["params"]["authentication"]["jwt_token"]
    assert login != "test-jwt" and login in server.jwt_tokens


def test_a_server_that_renews_with_an_expiry_already_past_gets_no_renewal_loop(
    server: RelayTestServer, make_client: MakeClient, renewal_log: Callable[[str], LogWaiter]
) -> None:
    server.authorization = {"project_id": "test", "expires_at": time.time() - 100}
    past_due = real_jwt(time.time() - 100)  # every renewed token is already expired too
    server.jwt_tokens.add(past_due)
    renewed = renewal_log("re-authenticated with a new JWT")
    client = make_client(project=None, token=None, jwt_token="test-jwt", jwt_refresher=lambda: past_due)
    assert renewed.seen.wait(5)  # the first renewal comes at once: the login already said "expired"
    next_in = client.stats()["jwt_renewal_in"]
    assert MIN_RENEWAL_INTERVAL >= 10
    assert next_in is not None and next_in > 5  # not at once again: at least MIN_RENEWAL_INTERVAL later
    assert len(server.requests("signalwire.reauthenticate")) == 1


def test_project_and_token_mint_the_new_jwt_over_rest(
    server: RelayTestServer, make_client: MakeClient, renewal_log: Callable[[str], LogWaiter]
) -> None:
    expiring_in(server, 0.5)
    minted = real_jwt(time.time() + 3600)  # its exp claim sets the next renewal an hour out
    server.jwt_tokens.add(minted)
    renewed = renewal_log("re-authenticated with a new JWT")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            f"http://{server.relay_host}/api/relay/rest/jwt",
            json={"jwt_token": minted, "refresh_token": "refresh-1"},
        )
        client = make_client(jwt_token="test-jwt")  # project and token from the server's kwargs
        frame = server.wait_for_request("signalwire.reauthenticate", timeout=2)
        assert renewed.seen.wait(2)
    assert frame["params"] == {"authentication": {"jwt_token": minted}}
    renewal_in = client.stats()["jwt_renewal_in"]
    assert renewal_in is not None and renewal_in > 3000
    # The minted token is the one later reconnects log in with.
    server.session().drop()
    server.wait_for_session(2, timeout=2)
    assert server.requests("signalwire.connect")[1]["params"]["authentication"] == {"jwt_token": minted}


def test_a_failed_refresh_is_retried_before_expiry(
    server: RelayTestServer, make_client: MakeClient, renewal_log: Callable[[str], LogWaiter]
) -> None:
    expiring_in(server, 1.0)
    server.jwt_tokens.add("second-try")
    attempts: list[float] = []

    def flaky() -> str:
        attempts.append(time.time())
        if len(attempts) == 1:
            raise ConnectionError("token service down")
        return "second-try"

    renewed = renewal_log("re-authenticated with a new JWT")
    make_client(project=None, token=None, jwt_token="test-jwt", jwt_refresher=flaky)
    assert renewed.seen.wait(2)
    assert len(attempts) == 2
    assert server.wait_for_request("signalwire.reauthenticate")["params"]["authentication"]["jwt_token"] == "second-try"


def test_without_a_way_to_refresh_a_warning_comes_ahead_of_expiry(
    server: RelayTestServer, make_client: MakeClient, renewal_log: Callable[[str], LogWaiter]
) -> None:
    expires_at = expiring_in(server, 0.4)
    warned = renewal_log("cannot be renewed")
    make_client(project=None, token=None, jwt_token="test-jwt")
    assert warned.seen.wait(2)
    assert time.time() < expires_at
    assert server.requests("signalwire.reauthenticate") == []


def test_a_project_and_token_login_schedules_no_renewal(server: RelayTestServer, make_client: MakeClient) -> None:
    expiring_in(server, 0.3)
    client = make_client()
    assert client.stats()["jwt_renewal_in"] is None


def test_refresh_delay_leaves_a_minute_or_half_the_remaining_time() -> None:
    assert refresh_delay(1000.0 + 900, now=1000.0) == 840.0
    assert refresh_delay(1000.0 + 60, now=1000.0) == 30.0
    assert refresh_delay(1000.0 + 1, now=1000.0) == 0.5
    assert refresh_delay(999.0, now=1000.0) == 0.0


def test_jwt_expiry_reads_the_exp_claim_of_a_jwt_only() -> None:
    assert jwt_expiry(real_jwt(1700000000)) == 1700000000.0
    assert jwt_expiry("test-jwt") is None
    assert jwt_expiry("a.!!!.c") is None
    assert jwt_expiry("a." + base64.urlsafe_b64encode(b"[1]").decode() + ".c") is None
