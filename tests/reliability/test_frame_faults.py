"""The fault matrix, frame-size rows: a message over the 16 MiB cap, and a
message cut into tens of thousands of fragments. Each is read past, logged
and dropped; the session stays up (no reconnect) and keeps answering.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest

from relay_sync import RelayClient
from relay_sync.framing import MAX_FRAGMENTS, MAX_MESSAGE_SIZE
from relay_sync.testing import RelayTestServer, ServerSession

from .netfaults import LogWatch
from .support import STEP


@pytest.fixture
def session(server: RelayTestServer, make_client: Callable[..., RelayClient]) -> ServerSession:
    make_client()
    return server.wait_for_session(1)


@pytest.fixture
def logs() -> Iterator[LogWatch]:
    with LogWatch() as watch:
        yield watch


def ping_text(request_id: str, padding: int = 0) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "signalwire.ping", "params": {"pad": "x" * padding}}
    )


def assert_same_session_answers(server: RelayTestServer, session: ServerSession) -> None:
    """The session survived: a ping is answered on it, and no second session was opened."""
    assert session.wait_answer(session.ping(), timeout=STEP)["result"] == {}
    assert session.live
    assert len(server.sessions) == 1


def test_an_oversize_message_is_dropped_and_the_session_kept(
    server: RelayTestServer, session: ServerSession, logs: LogWatch
) -> None:
    session.send(ping_text("too-big", padding=MAX_MESSAGE_SIZE + 1024))
    logs.wait_for(logging.WARNING, f"over the {MAX_MESSAGE_SIZE}-byte limit", timeout=STEP * 2)
    assert_same_session_answers(server, session)
    # Answers go out in order: had the big ping been read, it would have been answered first.
    assert not session.acked("too-big")


def test_a_message_in_30000_fragments_is_dropped_and_the_session_kept(
    server: RelayTestServer, session: ServerSession, logs: LogWatch
) -> None:
    text = ping_text("shredded", padding=30_000)
    session.connection.send(iter(text))  # one frame per character
    logs.wait_for(logging.WARNING, "fragmented message over the limit", timeout=STEP * 4)
    assert_same_session_answers(server, session)


def test_a_message_in_many_fragments_under_the_cap_is_joined(server: RelayTestServer, session: ServerSession) -> None:
    text = ping_text("pieces", padding=MAX_FRAGMENTS)
    size = len(text) // (MAX_FRAGMENTS - 1) + 1
    session.connection.send(text[i : i + size] for i in range(0, len(text), size))
    assert session.wait_answer("pieces", timeout=STEP)["result"] == {}
    assert_same_session_answers(server, session)
