"""SMS/MMS over the socket, through the real transport and the test server:
what send_message puts on the wire, how a Message follows messaging.state
events, inbound messages, and the race between a send's response and its
first state events."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from typing import Any, Callable

import pytest

from relay_sync import ClientClosedError, RelayClient, RelayError
from relay_sync import messaging as messaging_module
from relay_sync.events import MessageStateEvent, RelayEvent
from relay_sync.messaging import Message
from relay_sync.testing import RelayTestServer
from relay_sync.testing.server import ServerSession

MakeClient = Callable[..., RelayClient]
JSONDict = dict[str, Any]

TO, FROM = "+15552222222", "+15551111111"


def state_params(message_id: str, state: str, reason: str | None = None) -> JSONDict:
    params: JSONDict = {"message_id": message_id, "message_state": state, "direction": "outbound"}
    if reason is not None:
        params["reason"] = reason
    return params


def states_after_send(*states: str, reason: str | None = None) -> Callable[[ServerSession, JSONDict, JSONDict], None]:
    """An ``after`` hook: push these messaging.state events right behind the send response."""

    def after(session: ServerSession, params: JSONDict, result: JSONDict) -> None:
        for state in states:
            session.push_event("messaging.state", state_params(result["message_id"], state, reason))

    return after


def io_caught_up(client: RelayClient) -> None:
    """Return once the client handled every event the server pushed before now.

    The I/O thread handles frames in arrival order, and the answer to this
    request arrives behind those events."""
    client.execute("signalwire.ping")


def send(client: RelayClient, **overrides: Any) -> Message:
    options: JSONDict = {"to_number": TO, "from_number": FROM, "body": "Hello!"}
    options.update(overrides)
    return client.send_message(**options)


def sent_as(server: RelayTestServer, client: RelayClient, message_id: str) -> Message:
    """Send a message the server answers with ``message_id``."""
    server.respond("messaging.send", result={"code": "200", "message": "Message accepted", "message_id": message_id})
    return send(client)


# -- what goes on the wire --------------------------------------------------


def test_body_only_message_goes_out_on_the_sessions_protocol(server: RelayTestServer, client: RelayClient) -> None:
    message = send(client)
    params = server.requests("messaging.send")[0]["params"]
    assert params == {"context": client.relay_protocol, "to_number": TO, "from_number": FROM, "body": "Hello!"}
    assert message.state == "queued"
    assert message.direction == "outbound"
    assert (message.to_number, message.from_number, message.body) == (TO, FROM, "Hello!")
    assert message.context == client.relay_protocol
    assert message.media == [] and message.tags == []
    assert not message.is_done and message.result is None and message.reason is None


def test_media_only_message(server: RelayTestServer, client: RelayClient) -> None:
    message = send(client, body=None, media=["https://example.com/cat.jpg"])
    params = server.requests("messaging.send")[0]["params"]
    assert params["media"] == ["https://example.com/cat.jpg"]
    assert "body" not in params
    assert message.media == ["https://example.com/cat.jpg"] and message.body is None


def test_context_tags_and_region_are_sent(server: RelayTestServer, client: RelayClient) -> None:
    message = send(client, context="office", tags=["invoice", "vip"], region="us")
    params = server.requests("messaging.send")[0]["params"]
    assert params["context"] == "office"
    assert params["tags"] == ["invoice", "vip"]
    assert params["region"] == "us"
    assert message.context == "office" and message.tags == ["invoice", "vip"]


def test_the_message_id_comes_from_the_send_result(server: RelayTestServer, client: RelayClient) -> None:
    server.respond("messaging.send", result={"code": "200", "message": "Message accepted", "message_id": "m-42"})
    assert send(client).message_id == "m-42"


def test_neither_body_nor_media_is_a_value_error_and_sends_nothing(
    server: RelayTestServer, client: RelayClient
) -> None:
    with pytest.raises(ValueError, match="body"):
        client.send_message(to_number=TO, from_number=FROM)
    with pytest.raises(ValueError, match="body"):
        client.send_message(to_number=TO, from_number=FROM, body="", media=[])
    with pytest.raises(ValueError, match="to_number"):
        client.send_message(to_number="", from_number=FROM, body="hi")
    io_caught_up(client)
    assert server.requests("messaging.send") == []


def test_a_refused_message_raises_relay_error(server: RelayTestServer, client: RelayClient) -> None:
    server.respond("messaging.send", code="400", message="Invalid to_number")
    with pytest.raises(RelayError) as caught:
        send(client)
    assert caught.value.code == "400" and "Invalid to_number" in caught.value.message
    assert client.stats()["messages_pending"] == 0


def test_send_before_connect_raises(make_client: MakeClient) -> None:
    client = make_client(connect=False)
    with pytest.raises(RelayError, match="connect"):
        send(client)


# -- following the message's states -----------------------------------------


@pytest.mark.parametrize(
    ("terminal", "reason"), [("delivered", None), ("undelivered", "carrier rejected"), ("failed", "unreachable")]
)
def test_each_terminal_state_resolves_wait(
    server: RelayTestServer, client: RelayClient, terminal: str, reason: str | None
) -> None:
    server.respond("messaging.send", after=states_after_send("initiated", "sent", terminal, reason=reason))
    message = send(client)
    event = message.wait(timeout=2)
    assert isinstance(event, MessageStateEvent)
    assert event.message_id == message.message_id and event.message_state == terminal
    assert message.state == terminal and message.reason == reason
    assert message.is_done and message.result is event
    assert client.stats()["messages_pending"] == 0  # done messages leave the table


def test_intermediate_states_do_not_resolve_and_a_timed_out_wait_leaves_the_message_usable(
    server: RelayTestServer, client: RelayClient
) -> None:
    message = send(client)
    session = server.session()
    for state in ("initiated", "sent"):
        session.push_event("messaging.state", state_params(message.message_id, state))
    io_caught_up(client)
    assert message.state == "sent" and not message.is_done
    with pytest.raises(TimeoutError):
        message.wait(timeout=0.05)
    assert client.stats()["messages_pending"] == 1

    session.push_event("messaging.state", state_params(message.message_id, "delivered"))
    assert message.wait(timeout=2).state == "delivered"


def test_the_future_works_with_concurrent_futures_wait(server: RelayTestServer, client: RelayClient) -> None:
    server.respond("messaging.send", after=states_after_send("delivered"))
    messages = [send(client, body=f"n{i}") for i in range(5)]
    done, not_done = wait_all([m.future for m in messages], timeout=2)
    assert len(done) == 5 and not not_done


def test_listeners_run_in_order_on_the_handler_pool_then_on_completed(
    server: RelayTestServer, client: RelayClient
) -> None:
    calls: list[tuple[str, str]] = []
    threads: list[str] = []
    completed = threading.Event()
    completed_with: list[RelayEvent] = []

    def on_completed(event: RelayEvent) -> None:
        calls.append(("completed", event.state or ""))
        completed_with.append(event)
        completed.set()

    message = send(client, on_completed=on_completed)

    @message.on
    def first(event: RelayEvent) -> None:
        threads.append(threading.current_thread().name)
        calls.append(("first", event.state or ""))

    @message.on
    def second(event: RelayEvent) -> None:
        calls.append(("second", event.state or ""))

    session = server.session()
    for state in ("initiated", "sent", "delivered"):
        session.push_event("messaging.state", state_params(message.message_id, state))
    assert completed.wait(2)
    assert calls == [
        ("first", "initiated"),
        ("second", "initiated"),
        ("first", "sent"),
        ("second", "sent"),
        ("first", "delivered"),
        ("second", "delivered"),
        ("completed", "delivered"),
    ]
    # Like the async SDK, on_completed gets the terminal state event.
    assert completed_with == [message.result]
    assert isinstance(completed_with[0], MessageStateEvent) and completed_with[0].message_id == message.message_id
    assert all(name.startswith("relay_sync-handler") for name in threads)


def test_a_listener_that_raises_does_not_stop_the_others(server: RelayTestServer, client: RelayClient) -> None:
    seen = threading.Event()
    message = send(client)

    @message.on
    def broken(event: RelayEvent) -> None:
        raise RuntimeError("listener bug")

    message.on(lambda event: seen.set())
    server.session().push_event("messaging.state", state_params(message.message_id, "delivered"))
    assert seen.wait(2)
    assert message.wait(timeout=2).state == "delivered"


def test_disconnect_fails_a_pending_wait(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client()
    message = send(client)
    client.disconnect()
    with pytest.raises(ClientClosedError):
        message.wait(timeout=2)
    assert message.is_done and message.result is None


# -- the race between the send response and the first state events ----------


def test_states_right_behind_the_response_are_never_lost(server: RelayTestServer, client: RelayClient) -> None:
    completed: list[str] = []
    all_completed = threading.Event()

    def on_completed(event: RelayEvent) -> None:
        assert isinstance(event, MessageStateEvent) and event.message_id is not None
        completed.append(event.message_id)
        if len(completed) == 20:
            all_completed.set()

    server.respond("messaging.send", after=states_after_send("queued", "initiated", "sent", "delivered"))
    messages = [send(client, body=f"n{i}", on_completed=on_completed) for i in range(20)]
    for message in messages:
        assert message.wait(timeout=2).state == "delivered"
        assert message.state == "delivered"
    assert all_completed.wait(2)
    assert sorted(completed) == sorted(m.message_id for m in messages)
    assert client.stats()["messages_pending"] == 0


def test_states_that_arrive_ahead_of_the_response_are_applied(server: RelayTestServer, client: RelayClient) -> None:
    def accept_after_reporting(session: ServerSession, params: JSONDict) -> JSONDict:
        message_id = str(uuid.uuid4())
        session.push_event("messaging.state", state_params(message_id, "sent"))
        session.push_event("messaging.state", state_params(message_id, "failed", "spam"))
        return {"code": "200", "message": "Message accepted", "message_id": message_id}

    server.respond("messaging.send", handler=accept_after_reporting)
    completed = threading.Event()
    message = send(client, on_completed=lambda m: completed.set())
    assert message.is_done and message.state == "failed" and message.reason == "spam"
    assert message.wait(timeout=0).state == "failed"
    assert completed.wait(2)
    assert client.stats()["messages_pending"] == 0


def test_state_events_for_unknown_messages_are_bounded(
    server: RelayTestServer, client: RelayClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messaging_module, "EARLY_EVENT_MAX_IDS", 5)
    session = server.session()
    for n in range(12):
        session.push_event("messaging.state", state_params(f"stranger-{n}", "sent"))
    io_caught_up(client)
    assert client.stats()["early_message_ids"] == 5
    # The newest five are the ones kept: a send answered with such an id replays its "sent".
    assert sent_as(server, client, "stranger-6").state == "queued"
    assert sent_as(server, client, "stranger-7").state == "sent"
    assert client.stats()["early_message_ids"] == 4  # replayed, so no longer held

    monkeypatch.setattr(messaging_module, "EARLY_EVENT_MAX_AGE", 0.0)
    session.push_event("messaging.state", state_params("latecomer", "sent"))
    io_caught_up(client)
    assert client.stats()["early_message_ids"] == 1  # the old ones aged out
    assert sent_as(server, client, "stranger-11").state == "queued"
    assert sent_as(server, client, "latecomer").state == "sent"


def test_fifty_threads_of_twenty_messages_each_get_their_own_outcome(
    server: RelayTestServer, client: RelayClient
) -> None:
    outcomes = ("delivered", "undelivered", "failed")

    def outcome_for(body: str) -> str:
        return outcomes[int(body.rsplit("-", 1)[1]) % 3]

    def report(session: ServerSession, params: JSONDict, result: JSONDict) -> None:
        message_id = result["message_id"]
        session.push_event("messaging.state", state_params(message_id, "sent"))
        session.push_event("messaging.state", state_params(message_id, outcome_for(params["body"])))

    server.respond("messaging.send", after=report)
    start = threading.Barrier(50)

    def sender(thread: int) -> list[tuple[str, str]]:
        start.wait(timeout=5)
        messages = [send(client, body=f"t{thread}-{n}") for n in range(20)]
        results = []
        for message in messages:
            event = message.wait(timeout=10)
            assert event.message_id == message.message_id
            results.append((message.body or "", event.state or ""))
        return results

    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(sender, thread) for thread in range(50)]
        results = [pair for future in futures for pair in future.result(timeout=30)]
    assert len(results) == 1000
    assert all(state == outcome_for(body) for body, state in results)
    assert client.stats()["messages_pending"] == 0
    assert len(server.requests("messaging.send")) == 1000


# -- inbound messages ----------------------------------------------------------


def test_inbound_messages_reach_on_message_handlers_on_the_handler_pool(
    server: RelayTestServer, client: RelayClient
) -> None:
    received: list[Message] = []
    threads: list[str] = []
    arrived = threading.Event()

    @client.on_message
    def handle(message: Message) -> None:
        threads.append(threading.current_thread().name)
        received.append(message)
        arrived.set()

    server.session().push_event(
        "messaging.receive",
        {
            "message_id": "in-1",
            "context": "office",
            "direction": "inbound",
            "from_number": TO,
            "to_number": FROM,
            "body": "Hi there",
            "media": ["https://example.com/a.png"],
            "segments": 1,
            "message_state": "received",
            "tags": ["t"],
        },
    )
    assert arrived.wait(2)
    [message] = received
    assert message.message_id == "in-1" and message.context == "office"
    assert message.direction == "inbound" and message.state == "received"
    assert (message.from_number, message.to_number, message.body) == (TO, FROM, "Hi there")
    assert message.media == ["https://example.com/a.png"] and message.segments == 1 and message.tags == ["t"]
    assert message.is_done and message.wait(timeout=0).event_type == "messaging.receive"
    assert threads[0].startswith("relay_sync-handler")


def test_a_handler_can_reply_from_inside_the_handler(server: RelayTestServer, client: RelayClient) -> None:
    server.respond("messaging.send", after=states_after_send("delivered"))
    replies: list[Message] = []
    replied = threading.Event()

    @client.on_message
    def echo(message: Message) -> None:
        reply = client.send_message(to_number=message.from_number or "", from_number=FROM, body=f"re: {message.body}")
        reply.wait(timeout=2)
        replies.append(reply)
        replied.set()

    server.session().push_event(
        "messaging.receive",
        {
            "message_id": "in-2",
            "context": "office",
            "direction": "inbound",
            "from_number": TO,
            "to_number": FROM,
            "body": "ping",
            "message_state": "received",
        },
    )
    assert replied.wait(2)
    assert replies[0].state == "delivered"
    assert server.requests("messaging.send")[0]["params"]["body"] == "re: ping"
