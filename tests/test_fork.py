"""A client created before os.fork() (gunicorn --preload, Celery prefork):
the child connects afresh on first use and never touches the parent's socket;
the parent keeps working."""

from __future__ import annotations

import json
import os
import queue
import select
import threading
from typing import Callable

import pytest

from relay_sync import Message, RelayClient, RelayError
from relay_sync.rpc import JSONDict
from relay_sync.testing import RelayTestServer, ServerSession

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def run_in_child(work: Callable[[], dict]) -> dict:
    """Fork; run ``work`` in the child and return what it reported (JSON over a pipe)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running pytest's teardown
        os.close(read_end)
        try:
            report = work()
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            report = {"error": repr(error)}
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 15)
        assert ready, "the child reported nothing within 15 s"
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def frames_of(server: RelayTestServer, session: int) -> list[str]:
    return [
        e.frame.get("method", "<answer>")
        for e in server.journal
        if e.session == session and e.direction == "recv" and isinstance(e.frame, dict)
    ]


def test_child_connects_afresh_and_parent_keeps_its_session(
    server: RelayTestServer, make_client: Callable[..., RelayClient]
) -> None:
    client = make_client(contexts=["office"])
    parent_protocol = client.relay_protocol
    parent_frames_before = len(frames_of(server, 0))

    def child() -> dict:
        threads_at_start = [t for t in threading.enumerate() if t.name.startswith("relay_sync")]
        result = client.execute("from.child", {})
        report = {
            "threads_at_start": len(threads_at_start),
            "result": result,
            "protocol": client.relay_protocol,
            "connected": client.connected,
        }
        client.disconnect()
        return report

    report = run_in_child(child)
    assert "error" not in report, report
    assert report["threads_at_start"] == 0  # none of the parent's threads exist in the child
    assert report["result"]["code"] == "200"
    assert report["connected"] is True
    assert report["protocol"] != parent_protocol  # its own session, not the parent's

    # the child logged in on a new socket with the same contexts, and sent nothing on the parent's
    child_session = server.wait_for_session(2)
    assert "from.child" in frames_of(server, child_session.number)
    assert server.requests("signalwire.connect")[1]["params"]["contexts"] == ["office"]
    assert len(frames_of(server, 0)) == parent_frames_before
    assert not server.session(0).closed.is_set()

    # the parent goes on as before, on its own session
    assert client.execute("from.parent", {})["code"] == "200"
    assert "from.parent" in frames_of(server, 0)
    assert client.relay_protocol == parent_protocol


def test_handlers_survive_the_fork(server: RelayTestServer, make_client: Callable[..., RelayClient]) -> None:
    client = make_client(contexts=["office"])
    received: queue.Queue[str] = queue.Queue()

    @client.on_message
    def on_message(message: Message) -> None:
        """Registered in the parent before the fork; in the child it runs on the child's copy of the queue."""
        received.put(message.body or "")

    def push_a_message(session: ServerSession, params: JSONDict, result: JSONDict) -> None:
        session.push_event(
            "messaging.receive",
            {"message_id": "in-child", "context": "office", "direction": "inbound", "body": "to the child"},
        )

    server.respond("child.wants.a.message", after=push_a_message)

    def child() -> dict:
        client.execute("child.wants.a.message", {})  # the child's own session, so the message is the child's
        try:
            bodies = [received.get(timeout=10)]
        finally:
            client.disconnect()
        return {"bodies": bodies}

    assert run_in_child(child) == {"bodies": ["to the child"]}


def test_unconnected_client_stays_unconnected_in_the_child(make_client: Callable[..., RelayClient]) -> None:
    client = make_client(connect=False)

    def child() -> dict:
        try:
            client.execute("x", {})
        except Exception as error:  # noqa: BLE001 - reported to the parent
            return {"raised": type(error).__name__, "message": str(error)}
        return {"raised": None}

    report = run_in_child(child)
    assert report["raised"] == "NotConnectedError" and "connect()" in report["message"]


def test_a_forked_child_counts_its_own_connection_and_runs_the_hooks(
    server: RelayTestServer, make_client: Callable[..., RelayClient]
) -> None:
    client = make_client(connect=False)
    connected = threading.Event()
    client.on_connected(lambda resumed: connected.set())
    client.connect()
    client.execute("in.parent", {})
    assert connected.wait(timeout=5)

    def child() -> dict:
        connected.clear()
        before = client.stats()
        client.execute("from.child", {})
        report = {
            "before": [before["state"], before["connects"], before["requests_sent"]],
            "after": [client.state, client.stats()["connects"], client.stats()["requests_sent"]],
            "hook_ran": connected.wait(timeout=5),
        }
        client.disconnect()
        return report

    report = run_in_child(child)
    assert "error" not in report, report
    assert report["before"] == ["disconnected", 0, 0]  # nothing of the parent's counts
    assert report["after"] == ["connected", 1, 1]
    assert report["hook_ran"] is True
    assert client.stats()["connects"] == 1 and client.healthy()  # the parent is untouched


def test_a_forked_child_renews_the_video_subscriptions_and_hears_the_room(monkeypatch: pytest.MonkeyPatch) -> None:
    from relay_sync.testing import RelayEmulator

    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "4")
    with RelayEmulator(time_factor=0.01) as emulator:
        client = emulator.client(request_timeout=5.0)
        client.connect()
        try:
            room_session_id = emulator.video.start_room("town-hall")
            room = client.video.get_room_session(room_session_id)
            joined: queue.Queue[str] = queue.Queue()
            room.listen(on_member_joined=lambda member: joined.put(member.name or ""))

            def someone_joins_once_the_child_subscribed() -> None:
                emulator.wait_for_request("signalwire.subscribe", count=2, timeout=15)  # the parent's, the child's
                emulator.video.join(room_session_id, "alice")

            world = threading.Thread(target=someone_joins_once_the_child_subscribed)
            world.start()

            def child() -> dict:
                client.video.get_room_sessions()  # first use: a new session, which renews the subscription
                report = {"joined": joined.get(timeout=10), "protocol": client.relay_protocol}
                client.disconnect()
                return report

            report = run_in_child(child)
            world.join(timeout=15)

            assert "error" not in report, report
            assert report["joined"] == "alice"  # the handler registered in the parent, run by the child
            assert report["protocol"] != client.relay_protocol
            assert joined.get(timeout=10) == "alice"  # the parent hears the room too
        finally:
            client.disconnect()


def test_a_forked_childs_first_dial_connects_and_settles(
    server: RelayTestServer, make_client: Callable[..., RelayClient]
) -> None:
    """The child's first dial connects afresh; the new session's start must not fail it."""
    device = {"type": "phone", "params": {"to_number": "+15550000001", "from_number": "+15559999999"}}

    def answered(session: ServerSession, params: JSONDict, result: JSONDict) -> None:
        leg = {"call_id": f"leg-of-{params['tag']}", "node_id": "node-1", "tag": params["tag"]}
        session.push_event("calling.call.state", dict(leg, call_state="answered"))
        session.push_event("calling.call.dial", {"tag": params["tag"], "dial_state": "answered", "call": leg})

    server.respond("calling.dial", after=answered)
    client = make_client()

    def child() -> dict:
        try:
            call = client.dial_future([[device]], tag="forked").result(timeout=5)
            report = {"call_id": call.call_id, "active_calls": client.stats()["active_calls"]}
        except RelayError as error:
            report = {"dial_failed": repr(error)}
        client.disconnect()
        return report

    report = run_in_child(child)
    assert report == {"call_id": "leg-of-forked", "active_calls": 1}
    assert [frame["params"]["tag"] for frame in server.requests("calling.dial")] == ["forked"]
    assert server.requests("calling.end") == []


def test_a_forked_childs_first_message_goes_out_on_its_own_session(
    server: RelayTestServer, make_client: Callable[..., RelayClient]
) -> None:
    client = make_client()
    parent_protocol = client.relay_protocol

    def child() -> dict:
        message = client.send_message(to_number="+15551110000", from_number="+15552220000", body="from the child")
        report = {"context": message.context, "protocol": client.relay_protocol}
        client.disconnect()
        return report

    report = run_in_child(child)
    assert "error" not in report, report
    (sent,) = server.requests("messaging.send")
    # the child's own protocol, learnt by the login its first request made: not null, not the parent's
    assert sent["params"]["context"] == report["context"] == report["protocol"]
    assert report["protocol"] not in (None, parent_protocol)
