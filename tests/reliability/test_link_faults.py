"""The fault matrix, link rows: the socket drops (mid-call, mid-login, with
requests queued or in flight), the server goes silent, asks the client to
reconnect, refuses it, or answers slowly and out of order, while real traffic
runs. Each test ends by checking that nothing was lost or left behind and that
the client serves again."""

from __future__ import annotations

import queue
import random
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any, Callable

import pytest

from relay_sync import (
    AuthenticationError,
    Call,
    ConnectFailedError,
    ConnectionLostError,
    RelayClient,
    RelayError,
    RelayTimeoutError,
    SessionLostError,
)
from relay_sync.actions import PlayAction
from relay_sync.testing import RelayTestServer, ServerSession

from ..calling_support import push_inbound, script_call_lifecycle
from ..fast_clients import relay_threads
from ..polling import read_until
from .support import (
    STEP,
    CallDesk,
    assert_serves,
    assert_tables_settled,
    end_call,
    finish_play,
    outcome_of,
    run_in_thread,
    woken_with_error,
)

MakeClient = Callable[..., RelayClient]
PROMPT = [{"type": "tts", "params": {"text": "please hold"}}]


def login_session(server: RelayTestServer, attempt: int) -> ServerSession:
    """The server's side of the connection that sent the ``attempt``-th login (1-based)."""
    entry = server.wait_for_journal(
        lambda e: e.direction == "recv" and isinstance(e.frame, dict) and e.frame.get("method") == "signalwire.connect",
        count=attempt,
        timeout=STEP,
    )
    return next(s for s in server.sessions if s.number == entry.session)


def calls_in_progress(client: RelayClient, server: RelayTestServer, count: int) -> list[tuple[Call, PlayAction]]:
    """``count`` inbound calls, answered, each with a prompt still playing."""
    handed_over: queue.Queue[Call] = queue.Queue()
    client.on_call(handed_over.put)
    for _ in range(count):
        push_inbound(server.session())
    running = []
    for _ in range(count):
        call = handed_over.get(timeout=STEP)
        call.answer()
        running.append((call, call.play(PROMPT)))
    assert client.stats()["active_calls"] == count
    assert not any(action.is_done for _, action in running)
    return running


def finish_calls(session: ServerSession, running: list[tuple[Call, PlayAction]]) -> None:
    """The server finishes every prompt, then the far ends hang up; all of it must reach the client."""
    for call, action in running:
        finish_play(session, call.call_id, action.control_id)
    for call, action in running:
        assert action.wait(timeout=STEP).state == "finished"
        assert action.completed
        end_call(session, call.call_id)
    for call, _ in running:
        assert call.wait_for_ended(timeout=STEP).state == "ended"


# -- the socket drops --------------------------------------------------------------


def test_drop_mid_call_while_actions_run(server: RelayTestServer, make_client: MakeClient) -> None:
    script_call_lifecycle(server, play_finishes=False)
    server.respond("calling.hold", silent=True)  # a command the drop catches on the wire
    client = make_client(contexts=["office"])
    protocol = client.relay_protocol
    running = calls_in_progress(client, server, 3)
    (first, _), (second, _), _ = running

    in_flight = run_in_thread(first.hold)
    server.wait_for_request("calling.hold")
    server.pause_logins()
    server.session().drop()
    login_session(server, 2)  # the client is logging in again
    assert isinstance(outcome_of(in_flight), ConnectionLostError)  # failed fast, never resent

    during_outage = run_in_thread(second.unhold)  # waits for the link, then goes out
    server.resume_logins()
    resumed = server.wait_for_session(2)
    assert outcome_of(during_outage) == {"code": "200", "message": "OK"}
    assert client.relay_protocol == protocol  # the session was resumed: the calls are still ours
    assert client.stats()["active_calls"] == 3

    finish_calls(resumed, running)
    assert len(server.requests("calling.hold")) == 1
    assert_tables_settled(client)
    assert_serves(client, server)


def test_drop_during_the_first_connect(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False, contexts=["office"])
    server.pause_logins()
    connecting = run_in_thread(client.connect)
    login_session(server, 1).drop()
    error = outcome_of(connecting)
    assert isinstance(error, ConnectFailedError) and error.code == "connect_failed"
    assert not client.connected
    assert relay_threads() == []  # a failed connect() leaves nothing running

    server.resume_logins()
    client.connect()  # not closed: connecting again works
    desk = CallDesk(client)
    script_call_lifecycle(server)
    assert_tables_settled(client)
    assert_serves(client, server, desk)


def test_a_chatty_server_cannot_stretch_the_login_timeout(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(connect=False, request_timeout=0.5)  # connect_timeout follows it
    server.pause_logins()  # the login is never answered...
    started = time.monotonic()
    connecting = run_in_thread(client.connect)
    session = login_session(server, 1)
    # ...but the server keeps talking: a ping every 50 ms until connect() gives up.
    error: BaseException | None = None
    while time.monotonic() - started < STEP:
        try:
            error = connecting.exception(timeout=0.05)
            break
        except FutureTimeout:
            session.ping()
    assert isinstance(error, RelayTimeoutError), error
    assert time.monotonic() - started < 2.0  # one deadline for the whole login
    assert relay_threads() == []


def test_drop_during_a_reconnect_login(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(contexts=["office"])
    server.pause_logins()
    server.session().drop()
    login_session(server, 2)
    waiting = run_in_thread(lambda: client.execute("made.while.down", {}))
    login_session(server, 2).drop()  # the login itself is cut off
    login_session(server, 3)  # ...and the client tries again
    assert not waiting.done()  # the request still waits for a session: it was never sent
    server.resume_logins()
    assert outcome_of(waiting)["code"] == "200"
    assert len(server.requests("made.while.down")) == 1
    desk = CallDesk(client)
    script_call_lifecycle(server)
    assert_tables_settled(client)
    assert_serves(client, server, desk)


def test_drop_while_200_requests_are_queued(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(request_timeout=STEP)
    server.pause_logins()
    server.session().drop()
    login_session(server, 2)
    # A generous timeout: these wait through two reconnects on a possibly busy machine.
    queued = [client.execute_future("queued.method", {"n": n}, timeout=60) for n in range(200)]
    assert client.stats()["backlog"] == 200

    login_session(server, 2).drop()  # the link fails again with all 200 waiting
    login_session(server, 3)
    assert not any(future.done() for future in queued)
    server.resume_logins()

    for future in queued:
        assert future.result(timeout=STEP)["code"] == "200"
    sent = server.requests("queued.method")
    assert [f["params"]["n"] for f in sent] == list(range(200))  # each once, in order
    assert_tables_settled(client)
    assert_serves(client, server)


def test_drop_with_200_requests_in_flight(server: RelayTestServer, make_client: MakeClient) -> None:
    server.respond("never.answered", silent=True)
    client = make_client(request_timeout=30)  # only the drop can end these waits in time
    with_callers = [run_in_thread(partial(client.execute, "never.answered", {"n": n})) for n in range(200)]
    server.wait_for_request("never.answered", count=200)
    assert client.stats()["in_flight"] >= 200

    server.session().drop()
    for caller in with_callers:
        assert isinstance(outcome_of(caller), ConnectionLostError)
    server.wait_for_session(2)
    assert len(server.requests("never.answered")) == 200  # none was resent on the new session
    assert_tables_settled(client)
    assert_serves(client, server)


# -- silence, server disconnects, refused logins -----------------------------------


def test_half_open_link_during_calls(server: RelayTestServer, make_client: MakeClient) -> None:
    script_call_lifecycle(server, play_finishes=False)
    client = make_client(contexts=["office"], ping_interval=0.2, request_timeout=0.5)
    running = calls_in_progress(client, server, 2)
    server.session().go_silent()

    callers = [run_in_thread(partial(client.execute, "into.the.void", {"n": n})) for n in range(20)]
    for caller in callers:  # each ends within its timeout: no answer, or the link was closed under it
        assert isinstance(outcome_of(caller, timeout=2.0), (RelayTimeoutError, ConnectionLostError))
    resumed = server.wait_for_session(2, timeout=STEP)
    silent_pings = server.wait_for_journal(
        lambda e: e.session == 0 and isinstance(e.frame, dict) and e.frame.get("method") == "signalwire.ping"
    )
    assert silent_pings, "the silence was noticed by keepalive pings"

    finish_calls(resumed, running)  # the session was resumed: the calls and their actions live on
    assert_tables_settled(client)
    assert_serves(client, server)


@pytest.mark.parametrize("restart", [False, True], ids=["resume", "restart"])
def test_server_disconnect_during_active_calls(server: RelayTestServer, make_client: MakeClient, restart: bool) -> None:
    script_call_lifecycle(server, play_finishes=False)
    client = make_client(contexts=["office"])
    protocol = client.relay_protocol
    running = calls_in_progress(client, server, 3)
    waiting_for_digits = run_in_thread(lambda: running[0][0].wait_for("calling.call.collect", timeout=STEP))

    server.session().send_disconnect(restart=restart)
    second = server.wait_for_session(2)
    assert_serves(client, server)

    if restart:
        # A new session: the old one's calls will never report again. Everything
        # that waited on them fails now rather than hanging.
        assert client.relay_protocol != protocol
        assert client.stats()["active_calls"] == 0
        for call, action in running:
            assert isinstance(woken_with_error(partial(action.wait, timeout=STEP)), SessionLostError)
            assert isinstance(woken_with_error(partial(call.wait_for_ended, timeout=STEP)), SessionLostError)
        assert isinstance(woken_with_error(lambda: waiting_for_digits.result(STEP)), SessionLostError)
    else:
        assert client.relay_protocol == protocol
        finish_calls(second, running)
        assert woken_with_error(lambda: waiting_for_digits.result(STEP)).code == "call_ended"
    assert_tables_settled(client)


def test_messages_in_flight_across_a_restart_disconnect(server: RelayTestServer, make_client: MakeClient) -> None:
    # The server accepts messages but reports no state yet.
    client = make_client(contexts=["office"])
    on_protocol = client.send_message(to_number="+15551110000", from_number="+15552220000", body="one")
    on_context = client.send_message(to_number="+15551110000", from_number="+15552220000", body="two", context="office")
    assert client.stats()["messages_pending"] == 2

    server.session().send_disconnect(restart=True)
    second = server.wait_for_session(2)
    assert_serves(client, server)
    # Sent on the old session's protocol: its states can no longer reach this client.
    assert isinstance(woken_with_error(lambda: on_protocol.wait(timeout=STEP)), SessionLostError)
    # Sent on a context the client still receives: its states still come.
    second.push_event("messaging.state", {"message_id": on_context.message_id, "message_state": "delivered"})
    assert on_context.wait(timeout=STEP).state == "delivered"
    assert_tables_settled(client)


def test_a_message_sent_while_a_restarted_session_logs_in_goes_out_on_the_new_one(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    client = make_client(request_timeout=STEP)
    server.pause_logins()
    server.session().send_disconnect(restart=True)  # the old protocol is gone; the new one is not known yet
    server.wait_for_request("signalwire.connect", count=2)
    sending = run_in_thread(
        lambda: client.send_message(to_number="+15551110000", from_number="+15552220000", body="between")
    )
    read_until(client.stats, lambda stats: stats["backlog"] == 1, STEP, "the message queued")
    server.resume_logins()
    second = server.wait_for_session(2)
    message = outcome_of(sending)
    (sent,) = server.requests("messaging.send")
    # The new session's protocol, filled in as the frame went out: never null, never the lost one.
    assert sent["params"]["context"] == client.relay_protocol == message.context
    second.push_event("messaging.state", {"message_id": message.message_id, "message_state": "delivered"})
    assert message.wait(timeout=STEP).state == "delivered"
    assert_tables_settled(client)


def test_a_restart_right_behind_the_send_answer_fails_the_message_sent_on_the_old_protocol(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    # The restart notice follows the messaging.send answer in the same burst: however late the
    # caller's thread wakes, the message keeps the protocol its frame carried, which is gone.
    server.respond(
        "messaging.send",
        result={"code": "200", "message_id": "behind-1"},
        after=lambda session, params, result: session.request("signalwire.disconnect", {"restart": True}),
    )
    client = make_client()
    old_protocol = client.relay_protocol
    message = client.send_message(to_number="+15551110000", from_number="+15552220000", body="hi")
    assert message.context == old_protocol
    assert isinstance(woken_with_error(lambda: message.wait(timeout=STEP)), SessionLostError)
    server.wait_for_session(2)
    assert_serves(client, server)
    assert_tables_settled(client)


def test_credentials_refused_on_reconnect_fail_everything_and_end_run(
    server: RelayTestServer, make_client: MakeClient
) -> None:
    script_call_lifecycle(server, play_finishes=False)
    client = make_client(connect=False, contexts=["office"])
    handed_over: queue.Queue[Call] = queue.Queue()
    outcomes: queue.Queue[Any] = queue.Queue()

    @client.on_call
    def handle(call: Call) -> None:
        handed_over.put(call)
        try:
            call.play(PROMPT).wait(timeout=STEP * 2)
        except RelayError as error:
            outcomes.put(error)

    running = run_in_thread(client.run, name="test-run")
    server.wait_for_session(1)
    push_inbound(server.session())
    call = handed_over.get(timeout=STEP)
    server.wait_for_request("calling.play")
    message = client.send_message(to_number="+15551110000", from_number="+15552220000", body="hi", context="office")

    server.pause_logins()
    server.reject_logins = True
    server.session().drop()
    login_session(server, 2)
    queued = run_in_thread(lambda: client.execute("made.while.down", {}))
    server.resume_logins()

    error = outcome_of(running, timeout=STEP * 2)
    assert isinstance(error, AuthenticationError)
    assert "3 times" in error.message
    assert len(server.requests("signalwire.connect")) == 1 + 3  # bounded retries
    assert relay_threads() == []  # run() disconnected before raising
    # The error run() raised, for every waiter: the same failure, each in its own instance.
    waiters_saw = [
        woken_with_error(lambda: queued.result(STEP)),
        outcomes.get(timeout=STEP),  # the handler's action wait ended
        woken_with_error(lambda: message.wait(timeout=STEP)),
        woken_with_error(lambda: call.wait_for_ended(timeout=STEP)),
        woken_with_error(lambda: client.execute("after.the.end", {})),
    ]
    assert [(type(seen), str(seen)) for seen in waiters_saw] == [(type(error), str(error))] * len(waiters_saw)
    assert all(seen is not error for seen in waiters_saw)
    assert client.stats()["active_calls"] == 0
    assert client.stats()["messages_pending"] == 0


# -- slow and out-of-order answers ------------------------------------------------


class SlowServer:
    """Answers each ``method`` request after its own delay, so answers overtake each other
    and some come after the client stopped waiting (the server's slowness, not the test's)."""

    def __init__(self, server: RelayTestServer, method: str, delays: list[float]) -> None:
        self.delays = delays
        self.timers: list[threading.Timer] = []
        server.respond(method, silent=True)
        self._thread = threading.Thread(target=self._answer_all, args=(server, method), daemon=True)
        self._thread.start()

    def _answer_all(self, server: RelayTestServer, method: str) -> None:
        for count in range(1, len(self.delays) + 1):
            frame = server.wait_for_request(method, count=count, timeout=STEP)
            n = frame["params"]["n"]
            session = server.live_sessions()[-1]
            answer = {"jsonrpc": "2.0", "id": frame["id"], "result": {"code": "200", "n": n}}
            timer = threading.Timer(self.delays[n], session.send, args=(answer,))
            timer.daemon = True
            self.timers.append(timer)
            timer.start()

    def join(self) -> None:
        self._thread.join(timeout=STEP)
        for timer in self.timers:
            timer.join(timeout=STEP)


def test_slow_out_of_order_answers_reach_their_own_callers(server: RelayTestServer, make_client: MakeClient) -> None:
    timeout = 1.0
    client = make_client(request_timeout=timeout, ping_interval=60)
    # 30 answers between 0.1x and 2x request_timeout, in shuffled order.
    delays = [timeout * (0.1 + 1.9 * i / 29) for i in range(30)]
    random.Random(8).shuffle(delays)
    slow = SlowServer(server, "slow.method", delays)

    callers = [run_in_thread(partial(client.execute, "slow.method", {"n": n})) for n in range(30)]
    results = [outcome_of(caller, timeout=STEP) for caller in callers]
    slow.join()

    # Half a timeout of margin either way: starting 30 threads on a busy machine takes time.
    for n, (delay, result) in enumerate(zip(delays, results)):
        if delay < timeout * 0.5:
            assert result == {"code": "200", "n": n}  # its own answer, whatever the order
        elif delay > timeout * 1.5:
            assert isinstance(result, RelayTimeoutError)
        else:
            assert result == {"code": "200", "n": n} or isinstance(result, RelayTimeoutError)
    # Late answers were dropped; a timeout made the link suspect, a ping proved it alive.
    assert len(server.sessions) == 1
    assert_tables_settled(client)
    assert_serves(client, server)


def test_a_slow_messaging_server_near_the_timeout(server: RelayTestServer, make_client: MakeClient) -> None:
    client = make_client(request_timeout=1.0)
    server.respond("messaging.send", delay=0.7, result={"code": "200", "message_id": "slow-1"})
    message = client.send_message(to_number="+15551110000", from_number="+15552220000", body="slow")
    assert message.message_id == "slow-1"
    server.session().push_event("messaging.state", {"message_id": "slow-1", "message_state": "delivered"})
    assert message.wait(timeout=STEP).state == "delivered"
    assert_tables_settled(client)
