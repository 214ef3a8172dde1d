"""The error family: every kind a user can meet is a RelayError subclass with
its .code and .message, so code catches kinds instead of comparing strings."""

from __future__ import annotations

from typing import Any, Callable

import pytest

import relay_sync
from relay_sync import (
    BacklogFullError,
    CallEndedError,
    CallPassedError,
    ClientClosedError,
    ConnectFailedError,
    ConnectionLostError,
    DialFailedError,
    NotConnectedError,
    RelayClient,
    RelayError,
    SessionLostError,
)
from relay_sync.testing import RelayTestServer

KINDS: list[tuple[type[RelayError], Callable[[], RelayError], str]] = [
    (SessionLostError, lambda: SessionLostError(), "session_lost"),
    (NotConnectedError, lambda: NotConnectedError(), "not_connected"),
    (BacklogFullError, lambda: BacklogFullError("full"), "backlog_full"),
    (ConnectFailedError, lambda: ConnectFailedError("no route"), "connect_failed"),
    (ConnectFailedError, lambda: ConnectFailedError("gave up", code="reconnect_failed"), "reconnect_failed"),
    (CallPassedError, lambda: CallPassedError("passed back"), "passed"),
    (DialFailedError, lambda: DialFailedError("busy"), "dial_failed"),
    (CallEndedError, lambda: CallEndedError("over"), "call_ended"),
    (ClientClosedError, lambda: ClientClosedError(), "closed"),
]


@pytest.mark.parametrize(("kind", "make", "code"), KINDS)
def test_each_kind_keeps_its_code_and_message(
    kind: type[RelayError], make: Callable[[], RelayError], code: str
) -> None:
    error = make()
    assert isinstance(error, kind) and isinstance(error, RelayError)
    assert error.code == code and error.message and str(error) == f"{code}: {error.message}"
    assert kind.__name__ in relay_sync.__all__


def test_a_lost_session_is_a_lost_connection() -> None:
    assert isinstance(SessionLostError(), ConnectionLostError)


def test_a_request_before_connect_raises_not_connected(server: RelayTestServer, make_client: Any) -> None:
    client: RelayClient = make_client(connect=False)
    with pytest.raises(NotConnectedError) as caught:
        client.execute("signalwire.ping", {})
    assert caught.value.code == "not_connected" and "connect()" in caught.value.message
    assert server.requests("signalwire.ping") == []
