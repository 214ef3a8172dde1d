"""Secrets never leave the client through its logs, errors or reprs, and
what the wire sends is never used as a log format.

One whole session runs at DEBUG (every frame logged): logins with project and
token and with a JWT (renewed mid-session), inbound and dialed calls, actions,
messages both ways, a task, authorization_state updates, reconnects that
resend it, a refused login, a refusal on reconnect, a timeout, refused
requests, a REST failure and a proxy that wants a password. Every log record
relay_sync wrote (with its traceback), every exception the user saw and the
repr() of every public object must be free of the project id, the token, the
JWTs, the authorization_state values and the proxy password.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import pytest

from relay_sync import Call, Message, RelayClient, RelayError, RestError, parse_event
from relay_sync.events import TaskEvent
from relay_sync.testing import RelayTestServer

from ..calling_support import push_inbound, script_call_lifecycle
from ..config_support import config_from
from ..fast_clients import FAST, relay_threads
from ..netutil import ConnectProxy
from .support import STEP, current_session, outcome_of, phone, run_in_thread, script_dial, script_messaging

PROJECT = "proj-5ecret-4a1f"
TOKEN = "PTtok-5ecret-93bd"
JWT = "eyJhbGciOi.jwt-5ecret-one.c2ln"
RENEWED_JWT = "eyJhbGciOi.jwt-5ecret-two.c2ln"
STATES = ("auth-5tate-first", "auth-5tate-second")
PROXY_PASSWORD = "prx-5ecret-pw"
SECRETS = (PROJECT, TOKEN, JWT, RENEWED_JWT, *STATES, PROXY_PASSWORD)


class Evidence(logging.Handler):
    """Everything the session left where a secret could show: formatted log
    records (tracebacks included), exception texts and reprs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.logs: list[str] = []  # formatted records
        self.warnings: list[str] = []  # those at WARNING and above
        self.seen: list[str] = []  # reprs and exception texts
        self.broken_records: list[str] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as error:  # noqa: BLE001 - a record that cannot be formatted is the finding
            self.broken_records.append(f"{record.name}: {record.msg!r} {record.args!r}: {error!r}")
            return
        with self._changed:
            self.logs.append(text)
            if record.levelno >= logging.WARNING:
                self.warnings.append(text)
            self._changed.notify_all()

    def saw(self, thing: Any) -> Any:
        """Keep ``repr(thing)`` (and for exceptions ``str`` and args too); returns ``thing``."""
        self.seen.append(repr(thing))
        if isinstance(thing, BaseException):
            self.seen.append(str(thing))
            self.seen.extend(repr(arg) for arg in thing.args)
        return thing

    @property
    def texts(self) -> list[str]:
        return self.logs + self.seen

    def error_from(self, attempt: Callable[[], Any]) -> BaseException:
        try:
            attempt()
        except Exception as error:  # noqa: BLE001 - whatever it is, its text must be clean
            self.saw(error)
            return error
        raise AssertionError("expected an error")

    def wait_for_log(self, text: str, timeout: float = STEP) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: any(text in t for t in self.logs), timeout):
                raise TimeoutError(f"no log record containing {text!r}")


@contextmanager
def debug_evidence() -> Iterator[Evidence]:
    logger = logging.getLogger("relay_sync")
    evidence = Evidence()
    saved = logger.level
    logger.addHandler(evidence)
    logger.setLevel(logging.DEBUG)
    try:
        yield evidence
    finally:
        logger.removeHandler(evidence)
        logger.setLevel(saved)


def test_a_whole_session_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "8")
    with debug_evidence() as evidence, RelayTestServer(project=PROJECT, token=TOKEN, jwt_tokens=[JWT]) as server:
        server.authorization = {"project_id": PROJECT, "scopes": ["calling", "messaging"]}
        server.authorization_state_after_connect = STATES[0]
        script_call_lifecycle(server)
        script_dial(server)
        script_messaging(server)
        server.respond("calling.hold", code="403", message="not allowed for this project")
        server.respond("slow.method", silent=True)

        client = evidence.saw(RelayClient(**server.client_kwargs(contexts=["office"], **FAST)))
        calls: queue.Queue[Call] = queue.Queue()
        inbound: queue.Queue[Message] = queue.Queue()
        tasks: queue.Queue[TaskEvent] = queue.Queue()
        client.on_call(calls.put)
        client.on_message(inbound.put)
        client.on_task(tasks.put)
        try:
            client.connect()
            evidence.saw(client)
            session = server.session()

            # An inbound call, answered, played to, refused a command, hung up.
            push_inbound(session, project_id=PROJECT)
            call = evidence.saw(calls.get(timeout=STEP))
            call.answer()
            action = evidence.saw(call.play([{"type": "tts", "params": {"text": "hi"}}]))
            evidence.saw(action.wait(timeout=STEP))
            evidence.error_from(call.hold)
            call.hangup()
            evidence.saw(call.wait_for_ended(timeout=STEP))
            evidence.saw(call)

            # A dialed call.
            dialed = evidence.saw(client.dial([[phone("+15553334444")]], dial_timeout=STEP))
            dialed.hangup()

            # Messages both ways, and a task.
            sent = evidence.saw(client.send_message(to_number="+15551110000", from_number="+15552220000", body="hi"))
            evidence.saw(sent.wait(timeout=STEP))
            session.push_event("messaging.receive", {"message_id": "m-in", "body": "yo", "project_id": PROJECT,
                                                     "message_state": "received", "context": "office"})  # fmt: skip
            evidence.saw(evidence.saw(inbound.get(timeout=STEP)).result)
            session.push_envelope({"event_type": "queuing.relay.tasks", "context": "office", "project_id": PROJECT,
                                   "message": {"job": 1}, "timestamp": time.time()})  # fmt: skip
            evidence.saw(tasks.get(timeout=STEP))

            # A timeout, and a REST failure (the plain test server has no REST routes).
            evidence.error_from(lambda: client.execute("slow.method", {}, timeout=0.2))
            error = evidence.error_from(lambda: client.deliver_task("office", {"job": 2}))
            assert isinstance(error, RestError)
            evidence.saw((error.url, error.body, error.method))

            # A new authorization_state, then a reconnect that sends it back.
            session.wait_answer(session.push_authorization_state(STATES[1]))
            session.drop()
            server.wait_for_session(2)
            assert server.requests("signalwire.connect")[1]["params"]["authorization_state"] == STATES[1]
            current_session(client, server)

            # The server refuses the credentials on reconnect: run()'s error, and every waiter's.
            server.reject_logins = True
            server.session().drop()
            evidence.wait_for_log("giving up on the connection")
            evidence.error_from(lambda: client.execute("after.refusal", {}))
            evidence.error_from(client.run)
            evidence.saw(client)
        finally:
            client.disconnect()
        server.reject_logins = False

        # A refused first login.
        wrong = RelayClient(**server.client_kwargs(token="wrong-token", **FAST))
        evidence.error_from(wrong.connect)

        # A JWT login, renewed on the socket before it expires.
        server.authorization = {"project_id": PROJECT, "expires_at": time.time() + 0.5}
        server.jwt_tokens.add(RENEWED_JWT)
        jwt_kwargs = {"jwt_token": JWT, **_no_credentials(server)}
        with RelayClient(jwt_refresher=lambda: RENEWED_JWT, **jwt_kwargs) as jwt_client:
            evidence.wait_for_log("re-authenticated with a new JWT")
            evidence.saw(jwt_client)
            evidence.saw(config_from(**jwt_kwargs))

        # A proxy that wants a password: once given, once not.
        with ConnectProxy(credentials=("alice", PROXY_PASSWORD)) as proxy:
            url = proxy.url.replace("http://", f"http://alice:{PROXY_PASSWORD}@")
            proxied_kwargs = server.client_kwargs(proxy=url, **FAST)
            with RelayClient(**proxied_kwargs) as proxied:
                evidence.saw(proxied)
                evidence.saw(config_from(**proxied_kwargs))
            refused = RelayClient(**server.client_kwargs(proxy=proxy.url.replace("http://", "http://alice:nope@")))
            evidence.error_from(refused.connect)

        # Every event the server sent, as the user would see it.
        for envelope in server.events():
            evidence.saw(parse_event(envelope))

    assert relay_threads() == []
    assert evidence.broken_records == []
    # Frames were logged (masked), so the check below had something to look at.
    assert any("signalwire.connect" in text and "***" in text for text in evidence.logs)
    leaks = [(secret, text[:300]) for text in evidence.texts for secret in SECRETS if secret in text]
    assert leaks == []


def _no_credentials(server: RelayTestServer) -> dict[str, Any]:
    kwargs = server.client_kwargs(**FAST)
    kwargs.pop("project")
    kwargs.pop("token")
    return kwargs


HOSTILE_TEXT = "%s %d %(name)s {} {0} {name} %% \r\nFAKE ERROR relay_sync: forged line"


def test_wire_text_is_never_a_log_format(server: RelayTestServer, make_client: Callable[..., RelayClient]) -> None:
    """Ids, codes and messages from the wire carrying format directives and line
    breaks are logged as data: every record formats, and no warning or error
    line can be forged by them (DEBUG output quotes ids as they came)."""
    script_call_lifecycle(server)
    server.respond("calling.hold", code="500", message=HOSTILE_TEXT)
    server.respond("calling.pass", code="500", message=HOSTILE_TEXT)
    server.respond("refused", silent=True)
    with debug_evidence() as evidence:
        client = make_client(contexts=["office"], max_active_calls=1)
        calls: queue.Queue[Call] = queue.Queue()
        crash_now = threading.Event()

        @client.on_call
        def crash(call: Call) -> None:
            calls.put(call)
            crash_now.wait(STEP * 2)  # holds the only slot until the test is done with the call
            raise RuntimeError("handler bug")

        session = server.session()
        push_inbound(session, HOSTILE_TEXT, tag=HOSTILE_TEXT, context=HOSTILE_TEXT)
        call = calls.get(timeout=STEP)
        assert call.call_id == HOSTILE_TEXT
        push_inbound(session, HOSTILE_TEXT + "2")  # over capacity: passed back, and the pass fails
        server.wait_for_request("calling.pass")
        evidence.error_from(call.hold)
        for event_type in (HOSTILE_TEXT, "calling.error", "calling.call.play", "messaging.state", "messaging.receive"):
            session.push_event(event_type, {"call_id": HOSTILE_TEXT, "message_id": HOSTILE_TEXT, "code": HOSTILE_TEXT,
                                            "message": HOSTILE_TEXT, "control_id": HOSTILE_TEXT})  # fmt: skip
        session.push_event("calling.error", {"code": HOSTILE_TEXT, "message": HOSTILE_TEXT})
        session.wait_answer(session.request(HOSTILE_TEXT, {"x": HOSTILE_TEXT}))
        session.send({"jsonrpc": "2.0", "id": HOSTILE_TEXT, "result": {"code": HOSTILE_TEXT}})
        session.send(HOSTILE_TEXT)
        failing = run_in_thread(lambda: client.execute("refused", {}))
        request = server.wait_for_request("refused")
        session.send({"jsonrpc": "2.0", "id": request["id"], "error": {"code": HOSTILE_TEXT, "message": HOSTILE_TEXT}})
        assert isinstance(outcome_of(failing), RelayError)
        call.hangup()
        call.wait_for_ended(timeout=STEP)
        crash_now.set()
        evidence.wait_for_log("raised for call")
        assert client.execute("still.fine", {})["code"] == "200"
        evidence.wait_for_log("calling.pass for call")
    assert evidence.broken_records == []  # no "%s" from the wire was taken as a format
    assert any("FAKE ERROR" in text for text in evidence.warnings)  # the hostile text was logged...
    forged = [text for text in evidence.warnings for line in text.splitlines() if line.startswith("FAKE ERROR")]
    assert forged == []  # ...but never as a line of its own
