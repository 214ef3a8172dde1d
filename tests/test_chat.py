"""Chat and PubSub through the real transport against the emulator: clients
talking on channels, history pages, members and their state, unsubscribing,
the order handlers run in, renewal after a dropped socket, bad input and
server errors."""

from __future__ import annotations

import logging
import os
import queue
import select
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

from relay_sync import (
    ChatMember,
    ChatMessage,
    ChatMessages,
    ConnectionState,
    PubSubMessage,
    RelayClient,
    RelayError,
    Subscription,
)
from relay_sync.testing import RelayEmulator

from .emulator_support import Connect
from .polling import wait_until

WAIT = 5.0  # seconds any one awaited thing may take


class Inbox:
    """What handlers received, in the order they ran."""

    def __init__(self) -> None:
        self.items: queue.Queue[Any] = queue.Queue()

    def __call__(self, item: Any) -> None:
        self.items.put(item)

    def next(self) -> Any:
        return self.items.get(timeout=WAIT)

    def take(self, count: int) -> list[Any]:
        return [self.next() for _ in range(count)]


def own_member_id(client: RelayClient, channel: str) -> str:
    """The member id the server gave ``client``: the one member of a channel only it joined."""
    with client.chat.listen([channel], on_message=Inbox()):
        (member,) = client.chat.get_members(channel)
    return member.id


def chat_requests(emulator: RelayEmulator) -> list[dict[str, Any]]:
    return [frame for frame in emulator.requests() if str(frame.get("method", "")).startswith("chat.")]


# -- talking on a channel -------------------------------------------------------------


def test_two_clients_talk_on_a_chat_channel(emulator: RelayEmulator, connect: Connect) -> None:
    alice, bob = connect(), connect()
    alice_inbox, bob_inbox = Inbox(), Inbox()
    alice.chat.listen(["general"], on_message=alice_inbox)
    bob.chat.listen(["general"], on_message=bob_inbox)
    bob_id = own_member_id(bob, "bob-only")

    bob.chat.publish("general", {"text": "hi"}, meta={"lang": "en"})

    for inbox in (alice_inbox, bob_inbox):  # the publisher receives its own message too
        message = inbox.next()
        assert isinstance(message, ChatMessage)
        assert message.channel == "general"
        assert message.content == {"text": "hi"}
        assert message.meta == {"lang": "en"}
        assert isinstance(message.member, ChatMember) and message.member.id == bob_id
        assert message.published_at is not None and message.published_at.tzinfo is not None
        assert abs((datetime.now(timezone.utc) - message.published_at).total_seconds()) < 60
    sent = emulator.wait_for_request("chat.publish")["params"]
    assert sent == {"channel": "general", "content": {"text": "hi"}, "meta": {"lang": "en"}}


def test_listen_asks_for_the_events_it_has_handlers_for(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    client.chat.listen(["general", "random"], on_message=Inbox(), on_member_left=Inbox())
    params = emulator.wait_for_request("chat.subscribe")["params"]
    assert params["channels"] == [{"name": "general"}, {"name": "random"}]
    assert sorted(params["events"]) == ["chat.member.left", "chat.message"]


def test_pubsub_messages_carry_no_member(emulator: RelayEmulator, connect: Connect) -> None:
    publisher, listener = connect(), connect()
    inbox = Inbox()
    with listener.pubsub.listen(["alerts"], on_message=inbox) as subscription:
        assert isinstance(subscription, Subscription)
        assert emulator.wait_for_request("chat.subscribe")["params"]["events"] == ["chat.message"]
        publisher.pubsub.publish("alerts", "disk full")
        publisher.pubsub.publish("alerts", {"level": "warn"}, meta={"host": "db1"})
        first, second = inbox.take(2)
    assert isinstance(first, PubSubMessage) and not hasattr(first, "member")
    assert (first.channel, first.content, first.meta) == ("alerts", "disk full", None)
    assert (second.content, second.meta) == ({"level": "warn"}, {"host": "db1"})
    assert second.published_at is not None and second.published_at.tzinfo is not None


def test_the_server_sends_only_the_events_asked_for(emulator: RelayEmulator, connect: Connect) -> None:
    listener = connect()
    messages = Inbox()
    listener.pubsub.listen(["general"], on_message=messages)  # asks for chat.message only
    listener_session = emulator.session().number
    watcher = connect()
    joined = Inbox()
    watcher.chat.listen(["general"], on_member_joined=joined)
    assert joined.next().channel == "general"  # the watcher's own join, sent to the watcher

    emulator.chat_publish("general", "hello")
    assert messages.next().content == "hello"
    assert emulator.events("chat.member.joined", session=listener_session) == []


def test_messages_from_the_emulator_reach_listeners(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    inbox = Inbox()
    client.chat.listen(["support"], on_message=inbox)
    message_id = emulator.chat_publish("support", "anyone there?", member_id="visitor-1")
    message = inbox.next()
    assert (message.id, message.content, message.member.id) == (message_id, "anyone there?", "visitor-1")


# -- history, members, state --------------------------------------------------------------


def test_history_comes_in_pages_newest_first(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    for number in range(25):
        client.chat.publish("general", f"message {number}")

    first = client.chat.get_messages("general")
    assert isinstance(first, ChatMessages)
    assert [m.content for m in first.messages] == [f"message {n}" for n in range(24, 4, -1)]
    assert first.has_more
    assert first.cursor is not None

    older = client.chat.get_messages("general", cursor={"after": first.cursor["after"]})
    assert [m.content for m in older.messages] == [f"message {n}" for n in range(4, -1, -1)]
    assert not older.has_more
    assert older.cursor is not None

    newer = client.chat.get_messages("general", cursor={"before": older.cursor["before"]})
    assert [m.content for m in newer.messages] == [m.content for m in first.messages]
    assert all(m.channel == "general" and m.published_at is not None for m in newer.messages)
    assert client.chat.get_messages("empty-channel").messages == []


def test_members_join_update_and_leave(emulator: RelayEmulator, connect: Connect) -> None:
    watcher, guest = connect(), connect()
    joined, updated, left = Inbox(), Inbox(), Inbox()
    watcher.chat.listen(["general"], on_member_joined=joined, on_member_updated=updated, on_member_left=left)
    watcher_id = joined.next().id  # the watcher sees itself join

    guest_subscription = guest.chat.listen(["general"], on_message=Inbox())
    guest_member = joined.next()
    assert isinstance(guest_member, ChatMember)
    assert guest_member.channel == "general" and guest_member.state == {}
    assert {m.id for m in watcher.chat.get_members("general")} == {watcher_id, guest_member.id}

    guest.chat.set_member_state(guest_member.id, ["general", "random"], {"typing": True})
    changed = updated.next()
    assert (changed.id, changed.channel, changed.state) == (guest_member.id, "general", {"typing": True})
    assert watcher.chat.get_member_state(guest_member.id, ["general", "random"]) == {
        "general": {"typing": True},
        "random": {"typing": True},
    }
    sent = emulator.wait_for_request("chat.member.set_state")["params"]
    assert sent["member_id"] == guest_member.id and sent["channels"] == [{"name": "general"}, {"name": "random"}]

    guest_subscription.close()
    assert left.next().id == guest_member.id
    assert [m.id for m in watcher.chat.get_members("general")] == [watcher_id]


# -- unsubscribing -------------------------------------------------------------------------


def test_close_unsubscribes_once_and_stops_the_handlers(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    closed_inbox, sentinel = Inbox(), Inbox()
    subscription = client.chat.listen(["general"], on_message=closed_inbox)
    client.pubsub.listen(["sentinel"], on_message=sentinel)

    subscription.close()
    subscription.close()  # idempotent
    assert subscription.closed
    assert [f["params"] for f in emulator.requests("chat.unsubscribe")] == [{"channels": [{"name": "general"}]}]
    emulator.chat.wait_for_members("general", 0)

    emulator.chat_publish("general", "after close")
    emulator.chat_publish("sentinel", "later")
    assert sentinel.next().content == "later"  # events are routed in order: "after close" came first
    assert closed_inbox.items.empty()


def test_a_channel_stays_subscribed_while_another_subscription_holds_it(
    emulator: RelayEmulator, connect: Connect
) -> None:
    client = connect()
    chat_inbox, pubsub_inbox = Inbox(), Inbox()
    chat_subscription = client.chat.listen(["general"], on_message=chat_inbox)
    with client.pubsub.listen(["general"], on_message=pubsub_inbox):
        emulator.chat_publish("general", "to both")
        assert isinstance(chat_inbox.next(), ChatMessage)
        assert isinstance(pubsub_inbox.next(), PubSubMessage)
    assert emulator.requests("chat.unsubscribe") == []  # the chat subscription still holds it

    emulator.chat_publish("general", "to chat")
    assert chat_inbox.next().content == "to chat"
    chat_subscription.close()
    emulator.wait_for_request("chat.unsubscribe")
    assert pubsub_inbox.items.empty()


def test_threads_listening_and_closing_at_once_leave_the_server_consistent(
    emulator: RelayEmulator, connect: Connect
) -> None:
    client = connect()
    inbox = Inbox()
    client.chat.listen(["general"], on_message=inbox)
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            for _ in range(10):
                with client.pubsub.listen(["general", "other"], on_message=Inbox()):
                    pass
        except BaseException as error:  # noqa: BLE001  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=churn) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
    assert errors == [] and not any(thread.is_alive() for thread in threads)

    # "general" stayed held throughout; "other" was given up by the last to leave it.
    assert len(emulator.chat.members("general")) == 1
    assert emulator.chat.members("other") == []
    assert all(f["params"]["channels"] == [{"name": "other"}] for f in emulator.requests("chat.unsubscribe"))
    emulator.chat_publish("general", "still listening")
    assert inbox.next().content == "still listening"


def test_closing_after_the_client_disconnected_only_stops_the_handlers(connect: Connect) -> None:
    client = connect()
    subscription = client.chat.listen(["general"], on_message=Inbox())
    client.disconnect()
    assert subscription.closed
    subscription.close()  # nothing to tell a closed session; no error


# -- order and the handler pool ------------------------------------------------------------


def test_handlers_run_one_at_a_time_in_order_per_channel(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    lock = threading.Lock()
    running = {"now": 0, "most": 0}
    seen: list[Any] = []
    done = threading.Event()

    def on_message(message: ChatMessage) -> None:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        with lock:
            seen.append(message.content)
            running["now"] -= 1
            if len(seen) == 200:
                done.set()

    client.chat.listen(["general"], on_message=on_message)
    for number in range(200):
        emulator.chat_publish("general", number)
    assert done.wait(WAIT * 2)
    assert seen == list(range(200))
    assert running["most"] == 1


def test_a_slow_handler_holds_up_only_its_own_channel(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    release = threading.Event()
    fast = Inbox()

    def slow(message: ChatMessage) -> None:
        release.wait(WAIT)

    client.chat.listen(["slow"], on_message=slow)
    client.chat.listen(["fast"], on_message=fast)
    emulator.chat_publish("slow", "blocks")
    emulator.chat_publish("fast", "one")
    emulator.chat_publish("fast", "two")
    assert [m.content for m in fast.take(2)] == ["one", "two"]
    release.set()


def test_what_a_handler_raises_is_logged_and_the_next_message_still_arrives(
    emulator: RelayEmulator, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect()
    inbox = Inbox()

    def handler(message: ChatMessage) -> None:
        if message.content == "boom":
            raise RuntimeError("handler failed")
        inbox(message)

    client.chat.listen(["general"], on_message=handler)
    with caplog.at_level(logging.ERROR, logger="relay_sync"):
        emulator.chat_publish("general", "boom")
        emulator.chat_publish("general", "fine")
        assert inbox.next().content == "fine"
    failures = [r for r in caplog.records if r.exc_info and "handler failed" in str(r.exc_info[1])]
    assert len(failures) == 1 and "general" in failures[0].getMessage()


# -- reconnects -------------------------------------------------------------------------------


def test_subscriptions_are_renewed_after_the_socket_drops(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    chat_inbox, pubsub_inbox = Inbox(), Inbox()
    client.chat.listen(["general"], on_message=chat_inbox, on_member_joined=Inbox())
    client.pubsub.listen(["alerts"], on_message=pubsub_inbox)
    emulator.chat.wait_for_members("general", 1)

    emulator.drop_sessions()  # the server forgets a socket's subscriptions with it
    emulator.chat.wait_for_members("general", 0)
    renewal = emulator.wait_for_request("chat.subscribe", count=3, timeout=WAIT)["params"]
    assert renewal["channels"] == [{"name": "general"}, {"name": "alerts"}]
    assert sorted(renewal["events"]) == ["chat.member.joined", "chat.message"]
    emulator.chat.wait_for_members("general", 1)
    emulator.chat.wait_for_members("alerts", 1)

    emulator.chat_publish("general", "welcome back")
    emulator.chat_publish("alerts", "still here")
    assert chat_inbox.next().content == "welcome back"
    assert pubsub_inbox.next().content == "still here"


def test_closing_while_the_link_is_down_sends_nothing_and_raises_nothing(
    emulator: RelayEmulator, connect: Connect
) -> None:
    client = connect(request_timeout=1.0)  # an unsubscribe left in the backlog would time out this soon
    kept = client.pubsub.listen(["alerts"], on_message=Inbox())
    closed = client.chat.listen(["general"], on_message=Inbox())
    emulator.pause_logins()
    emulator.drop_sessions()
    wait_until(lambda: client.state is ConnectionState.RECONNECTING, WAIT, "the client noticing the drop")

    closed.close()
    closed.close()  # still idempotent

    assert closed.closed and not kept.closed
    emulator.resume_logins()
    renewal = emulator.wait_for_request("chat.subscribe", count=3, timeout=WAIT)["params"]
    assert renewal["channels"] == [{"name": "alerts"}]  # the closed channel is not subscribed again
    assert emulator.requests("chat.unsubscribe") == []


def test_a_refused_renewal_is_tried_again(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    inbox = Inbox()
    client.chat.listen(["general"], on_message=inbox)
    refused: list[dict[str, Any]] = []

    def refuse_the_first_renewal(session: Any, params: dict[str, Any]) -> dict[str, Any]:
        if not refused:
            refused.append(params)
            return {"code": "503", "message": "try again later"}
        return emulator.chat.subscribe(session, params)

    emulator.respond("chat.subscribe", handler=refuse_the_first_renewal)
    emulator.disconnect_sessions(restart=True)  # the new session starts with no subscription

    emulator.wait_for_request("chat.subscribe", count=3, timeout=WAIT)  # the refused renewal, then its retry
    emulator.chat.wait_for_members("general", 1)
    emulator.chat_publish("general", "heard after all")
    assert inbox.next().content == "heard after all"
    assert refused[0]["channels"] == [{"name": "general"}]


def test_renewal_also_follows_a_fresh_login(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    inbox = Inbox()
    client.pubsub.listen(["alerts"], on_message=inbox)
    emulator.disconnect_sessions(restart=True)  # the client must log in from scratch
    emulator.wait_for_request("chat.subscribe", count=2, timeout=WAIT)
    emulator.chat.wait_for_members("alerts", 1)
    emulator.chat_publish("alerts", "after restart")
    assert inbox.next().content == "after restart"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_subscribes_again_on_its_own_session(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    inbox = Inbox()
    client.chat.listen(["general"], on_message=inbox)

    def publish_once_both_listen() -> None:  # in the parent: the child's emulator copy runs nothing
        emulator.chat.wait_for_members("general", 2, timeout=WAIT * 2)
        emulator.chat_publish("general", "to both")

    publisher = threading.Thread(target=publish_once_both_listen)
    publisher.start()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: first use logs in afresh, and the subscription follows
        os.close(read_end)
        try:
            client.chat.get_members("general")
            report = inbox.next().content
            client.disconnect()
        except BaseException as error:  # noqa: BLE001  # reported to the parent
            report = repr(error)
        os.write(write_end, report.encode())
        os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], WAIT * 3)
        assert ready, "the child reported nothing"
        child_report = os.read(read_end, 4096).decode()
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
        publisher.join(WAIT * 2)
    assert child_report == "to both"
    assert inbox.next().content == "to both"  # the parent's subscription is untouched


# -- bad input and server errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda c: c.chat.listen("general", on_message=print), "not the string"),
        (lambda c: c.pubsub.listen("alerts", on_message=print), "not the string"),
        (lambda c: c.chat.listen([], on_message=print), "at least one"),
        (lambda c: c.chat.listen(["general", ""], on_message=print), "non-empty"),
        (lambda c: c.chat.listen(["general"]), "at least one handler"),
        (lambda c: c.chat.listen(["general"], on_message="print"), "callable"),
        (lambda c: c.chat.publish("", "hi"), "non-empty"),
        (lambda c: c.chat.publish("  ", "hi"), "non-empty"),
        (lambda c: c.chat.publish("general", None), "content is required"),
        (lambda c: c.chat.publish("general", {"when": datetime.now()}), "JSON"),
        (lambda c: c.pubsub.publish("alerts", float("nan")), "JSON"),
        (lambda c: c.pubsub.publish("alerts", {1, 2}), "JSON"),
        (lambda c: c.pubsub.publish("alerts", "hi", meta="urgent"), "meta must be a dict"),
        (lambda c: c.chat.get_messages("general", cursor={"before": "a", "after": "b"}), "exactly one"),
        (lambda c: c.chat.get_messages("general", cursor="abc"), "cursor"),
        (lambda c: c.chat.get_members(""), "non-empty"),
        (lambda c: c.chat.set_member_state("m1", "general", {"typing": True}), "not the string"),
        (lambda c: c.chat.set_member_state("m1", ["general"], ["typing"]), "state must be a dict"),
        (lambda c: c.chat.get_member_state("", ["general"]), "member_id"),
    ],
)
def test_bad_input_is_a_value_error_and_sends_nothing(
    emulator: RelayEmulator, connect: Connect, call: Any, words: str
) -> None:
    client = connect()
    with pytest.raises(ValueError, match=words):
        call(client)
    assert chat_requests(emulator) == []
    client.pubsub.publish("alerts", "still working")  # nothing was lost
    emulator.wait_for_request("chat.publish")


def test_server_errors_are_relay_errors(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    with pytest.raises(RelayError) as refused:
        client.chat.get_messages("general", cursor={"after": "no-such-message"})
    assert refused.value.code == "400"

    emulator.respond("chat.publish", code="403", message="not allowed on this channel")
    with pytest.raises(RelayError, match="not allowed") as forbidden:
        client.pubsub.publish("alerts", "hi")
    assert forbidden.value.code == "403"


def test_a_refused_subscription_leaves_no_handler_behind(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    refused_inbox, sentinel = Inbox(), Inbox()

    def private_is_forbidden(session: Any, params: dict[str, Any]) -> dict[str, Any]:
        if {"name": "private"} in params["channels"]:
            return {"code": "403", "message": "forbidden"}
        return emulator.chat.subscribe(session, params)

    emulator.respond("chat.subscribe", handler=private_is_forbidden)
    with pytest.raises(RelayError, match="forbidden"):
        client.chat.listen(["private"], on_message=refused_inbox)
    client.chat.listen(["sentinel"], on_message=sentinel)
    # A message the server sends anyway on the refused channel finds no handler.
    emulator.session().push_event("chat.channel.message", {"channel": "private", "message": {"id": "m1"}})
    emulator.chat_publish("sentinel", "later")
    assert sentinel.next().content == "later"
    assert refused_inbox.items.empty()


def test_malformed_chat_events_are_dropped(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    inbox = Inbox()
    client.chat.listen(["general"], on_message=inbox, on_member_joined=inbox)
    assert isinstance(inbox.next(), ChatMember)  # our own join
    session = emulator.session()
    session.push_event("chat.channel.message", {"channel": "general", "message": "not an object"})
    session.push_event("chat.channel.message", {"message": {"id": "x"}})
    session.push_event("chat.member.joined", {"channel": "general", "member": {"state": {}}})
    session.push_event("chat.channel.message", {"channel": "general", "message": {"id": "ok", "published_at": "bad"}})
    message = inbox.next()
    assert (message.id, message.published_at, message.member) == ("ok", None, None)
    assert client.connected
