"""Property-based fuzzing of the frame handler through a live socket.

The test server pushes arbitrary JSON values, JSON-RPC-shaped frames with
wrong-typed fields, events of every type with garbage params, byte strings
(binary, and text frames that are not UTF-8), fragmented messages, huge and
deeply nested frames. After each example the I/O thread must still be alive:
it answered every server request it had to (event ACKs, pings), and a new
request completes. Nothing may reach relay_sync's catch-all error logs, and
user handlers must be able to read every property of what they were given.

The default run takes a small derandomized sample; ``pytest -m fuzz`` runs
10,000 random cases per property.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_sync import Call, Message, RelayClient, RelayError
from relay_sync.events import TaskEvent
from relay_sync.testing import RelayTestServer, ServerSession

from ..fast_clients import FAST, relay_threads
from .support import STEP, current_session, outcome_of, run_in_thread

SAMPLE = 120  # examples per property in the default run
FUZZ = 10_000  # examples per property under -m fuzz

# -- strategies ---------------------------------------------------------------------

# Any string, lone surrogates included: json.dumps writes them as \u escapes, as a server may.
text = st.text(max_size=40)
wire_text = st.text(st.characters(codec="utf-8"), max_size=40)  # what a text frame can carry as is
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5), max_leaves=25
)

EVENT_TYPES = [
    "calling.call.receive", "calling.call.state", "calling.call.play", "calling.call.record",
    "calling.call.collect", "calling.call.detect", "calling.call.dial", "calling.call.connect",
    "calling.call.fax", "calling.call.tap", "calling.call.stream", "calling.call.pay",
    "calling.call.transcribe", "calling.call.send_digits", "calling.call.refer", "calling.call.denoise",
    "calling.call.queue", "calling.call.echo", "calling.call.hold", "calling.conference", "calling.error",
    "messaging.receive", "messaging.state", "queuing.relay.tasks", "signalwire.authorization.state",
]  # fmt: skip
FIELDS = [
    "call_id", "node_id", "control_id", "tag", "context", "call_state", "state", "direction", "device",
    "end_reason", "segment_id", "project_id", "call", "dial_state", "connect_state", "peer", "result",
    "final", "detect", "fax", "url", "duration", "size", "message_id", "message_state", "body", "media",
    "tags", "segments", "reason", "from_number", "to_number", "message", "code", "authorization_state",
]  # fmt: skip
CALL_IDS = ["c-1", "c-2", "c-3"]  # few, so events for a call that was offered reach it

field_values = json_values | st.sampled_from(CALL_IDS) | st.sampled_from(["ended", "answered", "finished", "delivered"])
event_params = st.dictionaries(st.sampled_from(FIELDS) | text, field_values, max_size=8) | json_values
event_envelopes = st.fixed_dictionaries(
    {"event_type": st.sampled_from(EVENT_TYPES) | json_values},
    optional={"params": event_params, "timestamp": json_values, "event_channel": json_values, "context": json_values,
              "message": json_values},
)  # fmt: skip
request_ids = st.uuids().map(str) | json_values
server_requests = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0") | json_values,
        "id": request_ids,
        "method": st.sampled_from(["signalwire.event", "signalwire.event", "signalwire.ping", "calling.call"]) | text,
    },
    optional={"params": event_envelopes | json_values},
)
responses = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "id": request_ids}, optional={"result": json_values, "error": json_values}
)


@dataclass(frozen=True)
class Push:
    """One thing the server sends: ``data`` as a text frame (str), a binary frame
    (bytes), bytes in a text frame (``as_text``), or a list of fragments."""

    data: Any
    as_text: bool = False


def _json_push(value: Any) -> Push:
    return Push(json.dumps(value))


pushes = st.one_of(
    server_requests.map(_json_push),
    st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": request_ids, "method": st.just("signalwire.event"),
                           "params": event_envelopes}).map(_json_push),
    responses.map(_json_push),
    json_values.map(_json_push),
    wire_text.map(Push),
    st.binary(max_size=300).map(Push),
    st.binary(max_size=300).map(lambda data: Push(data, as_text=True)),
    st.lists(st.binary(min_size=1, max_size=50), min_size=2, max_size=4).map(Push),
)  # fmt: skip


# -- the rig: a server, a client, and what must hold after each push ------------------


class _Collector(logging.Handler):
    """Formats every relay_sync record (as an application's handler would) and keeps the errors."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.ERROR and not record.name.startswith("relay_sync.testing"):
            self.errors.append(text)


@contextmanager
def relay_logs(level: int) -> Iterator[_Collector]:
    """relay_sync's records at ``level`` go to a collector only (not to pytest's capture,
    which would keep every frame of a 10,000-case run)."""
    logger = logging.getLogger("relay_sync")
    collector = _Collector()
    saved = logger.level, logger.propagate
    logger.addHandler(collector)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield collector
    finally:
        logger.removeHandler(collector)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


@dataclass
class Rig:
    server: RelayTestServer
    client: RelayClient
    session: ServerSession
    problems: list[str] = field(default_factory=list)
    ids_seen: set[str] = field(default_factory=set)

    def push(self, push: Push) -> None:
        connection = self.session.connection
        if isinstance(push.data, list):
            connection.send(push.data)  # fragments of one binary message
        elif push.as_text:
            connection.send(push.data, text=True)  # whatever the bytes are, in a text frame
        else:
            self.session.send(push.data)

    def must_answer(self, push: Push) -> str | None:
        """The id of a server request the client has to answer (one the server can track)."""
        if not isinstance(push.data, str):
            return None
        try:
            frame = json.loads(push.data)
        except (ValueError, RecursionError):
            return None
        request_id = frame.get("id") if isinstance(frame, dict) else None
        if not isinstance(request_id, str) or request_id in self.ids_seen:
            return None  # the server keeps one answer per id: only a fresh id can be checked
        self.ids_seen.add(request_id)
        return request_id if frame.get("method") in ("signalwire.event", "signalwire.ping") else None

    def check_alive(self, answer_to: str | None) -> None:
        if answer_to is not None:
            answer = self.session.wait_answer(answer_to, timeout=STEP)
            assert answer.get("result") == {}, answer  # an ACK, whatever the request carried
        # The I/O thread still reads: a request completes (on a new session if the push ended this one).
        self.session = current_session(self.client, self.server)

    def handle_call(self, call: Call) -> None:
        self._touch(call, ("call_id", "node_id", "project_id", "context", "tag", "direction", "device", "state",
                           "segment_id"))  # fmt: skip
        try:
            call.pass_()  # gives the call back: fuzzed calls must not pile up in the table
        except RelayError:
            pass  # the link may be going down under a fuzzed disconnect

    def handle_message(self, message: Message) -> None:
        self._touch(message, ("message_id", "context", "direction", "from_number", "to_number", "body", "media",
                              "segments", "state", "reason", "tags", "is_done", "result"))  # fmt: skip

    def handle_task(self, task: TaskEvent) -> None:
        self._touch(task, ("context", "message", "timestamp", "call_id", "state", "tag"))

    def _touch(self, thing: Any, names: tuple[str, ...]) -> None:
        try:
            for name in names:
                getattr(thing, name)
            repr(thing)
        except Exception:  # noqa: BLE001 - any failure here is an SDK bug, reported by the test
            self.problems.append(traceback.format_exc())


@contextmanager
def live_rig(level: int = logging.WARNING) -> Iterator[Rig]:
    # A short journal: the checks look only at the latest frames, and scanning a
    # 10,000-example journal for each of them would make the run quadratic.
    with relay_logs(level) as logs, RelayTestServer(max_journal=2000) as server:
        client = RelayClient(**server.client_kwargs(contexts=["office"], **FAST))
        rig = Rig(server, client, session=server.session() if server.sessions else None)  # type: ignore[arg-type]
        client.on_call(rig.handle_call)
        client.on_message(rig.handle_message)
        client.on_task(rig.handle_task)
        try:
            client.connect()
            rig.session = server.wait_for_session(1)
            yield rig
        finally:
            client.disconnect()
        assert relay_threads() == []
        assert rig.problems == []
        assert logs.errors == []  # nothing reached a catch-all: every frame was handled or dropped on purpose


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=examples <= SAMPLE,  # the default run is the same sample every time
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# -- the properties -------------------------------------------------------------------


def frames_never_break_the_client(examples: int, level: int) -> None:
    with live_rig(level) as rig:

        @fuzz_settings(examples)
        @given(push=pushes)
        def check(push: Push) -> None:
            answer_to = rig.must_answer(push)
            rig.push(push)
            rig.check_alive(answer_to)

        check()
        assert rig.client.stats()["active_calls"] == 0  # every fuzzed call was passed back


def answers_are_a_result_or_a_relay_error(examples: int) -> None:
    markers = itertools.count()
    with live_rig() as rig:
        rig.server.respond("fuzz.target", silent=True)

        @fuzz_settings(examples)
        @given(answer=st.fixed_dictionaries({}, optional={"result": json_values, "error": json_values}),
               echo_jsonrpc=st.booleans())  # fmt: skip
        def check(answer: dict[str, Any], echo_jsonrpc: bool) -> None:
            marker = next(markers)
            caller = run_in_thread(lambda: rig.client.execute("fuzz.target", {"n": marker}, timeout=STEP))
            request = rig.server.wait_for_request("fuzz.target", lambda params: params.get("n") == marker)
            frame = {"id": request["id"], **answer}
            if echo_jsonrpc:
                frame["jsonrpc"] = "2.0"
            rig.session.send(frame)
            outcome = outcome_of(caller)
            assert isinstance(outcome, (dict, RelayError)), repr(outcome)
            assert not isinstance(outcome, TimeoutError)  # the answer was taken, whatever it held
            assert isinstance(getattr(outcome, "message", ""), str)

        check()


def messaging_send_results_are_checked(examples: int) -> None:
    markers = itertools.count()
    with live_rig() as rig:
        rig.server.respond("messaging.send", silent=True)

        @fuzz_settings(examples)
        @given(result=json_values)
        def check(result: Any) -> None:
            marker = str(next(markers))
            caller = run_in_thread(
                lambda: rig.client.send_message(to_number="+15551110000", from_number="+15552220000", body=marker)
            )
            request = rig.server.wait_for_request("messaging.send", lambda params: params.get("body") == marker)
            rig.session.send({"jsonrpc": "2.0", "id": request["id"], "result": result})
            outcome = outcome_of(caller)
            assert isinstance(outcome, (Message, RelayError)), repr(outcome)
            if isinstance(outcome, Message):
                assert isinstance(outcome.message_id, str) and outcome.message_id

        check()
        assert rig.client.stats()["messages_pending"] <= examples


@pytest.mark.parametrize("level", [logging.WARNING, logging.DEBUG], ids=["quiet", "debug"])
def test_frames_never_break_the_client(level: int) -> None:
    frames_never_break_the_client(SAMPLE, level)


def test_answers_are_a_result_or_a_relay_error() -> None:
    answers_are_a_result_or_a_relay_error(SAMPLE // 2)


def test_messaging_send_results_are_checked() -> None:
    messaging_send_results_are_checked(SAMPLE // 4)


@pytest.mark.fuzz
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("level", [logging.WARNING, logging.DEBUG], ids=["quiet", "debug"])
def test_fuzz_frames_never_break_the_client(level: int) -> None:
    frames_never_break_the_client(FUZZ, level)


@pytest.mark.fuzz
@pytest.mark.timeout(1800)
def test_fuzz_answers_are_a_result_or_a_relay_error() -> None:
    answers_are_a_result_or_a_relay_error(FUZZ)


@pytest.mark.fuzz
@pytest.mark.timeout(1800)
def test_fuzz_messaging_send_results_are_checked() -> None:
    messaging_send_results_are_checked(FUZZ)


# -- the extremes, every run -----------------------------------------------------------


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


EXTREMES = {
    "huge text frame": Push(json.dumps({"jsonrpc": "2.0", "id": "huge", "method": "signalwire.event",
                                        "params": {"event_type": "calling.call.state",
                                                   "params": {"call_id": "x" * (3 << 20)}}})),
    "huge binary frame": Push(b"\xff" * (2 << 20)),
    "nesting past the parser's limit": Push("[" * 200_000 + "]" * 200_000),
    "deep but parseable nesting": Push('{"jsonrpc":"2.0","id":"deep","method":"signalwire.event","params":'
                                       '{"event_type":"calling.call.state","params":' + nested(600) + "}}"),
    "deep request id": Push('{"jsonrpc":"2.0","method":"signalwire.ping","id":' + "[" * 600 + "]" * 600 + "}"),
    "not UTF-8 in a text frame": Push(b'{"jsonrpc":"2.0","id":"\xc3\x28","method":"signalwire.ping"}', as_text=True),
    "truncated UTF-8 sequence": Push(b"\xe2\x82", as_text=True),
    "fragmented text": Push(['{"jsonrpc":"2.0","id":"frag",', '"method":"signalwire.ping"}']),
    "NaN and Infinity": Push('{"jsonrpc":"2.0","id":NaN,"method":"signalwire.event","params":{"timestamp":Infinity}}'),
    "lone surrogate in a request id": Push('{"jsonrpc":"2.0","id":"\\ud800","method":"signalwire.ping"}'),
    "lone surrogate in an event": Push('{"jsonrpc":"2.0","id":"sur","method":"signalwire.event","params":'
                                       '{"event_type":"messaging.receive","params":{"body":"\\udfff","message_id":"m"}}}'),
    "empty text frame": Push(""),
    "empty binary frame": Push(b""),
}  # fmt: skip


@pytest.mark.parametrize("level", [logging.WARNING, logging.DEBUG], ids=["quiet", "debug"])
@pytest.mark.parametrize("name", list(EXTREMES))
def test_extreme_frames(name: str, level: int) -> None:
    push = EXTREMES[name]
    with live_rig(level) as rig:
        answer_to = "frag" if name == "fragmented text" else rig.must_answer(push)
        rig.push(push)
        rig.check_alive(answer_to)
        if name == "huge text frame":
            assert rig.session.wait_answer("huge", timeout=STEP)["result"] == {}


class _NoisyLoginServer(RelayTestServer):
    """Sends ``noise`` (frames of any kind) on each connection before answering its login."""

    noise: tuple[Push, ...] = ()

    def _login(self, session: ServerSession, request_id: Any, params: dict[str, Any]) -> None:
        for push in self.noise:
            if push.as_text:
                session.connection.send(push.data, text=True)
            else:
                session.send(push.data)
        super()._login(session, request_id, params)


@pytest.mark.parametrize("name", ["not UTF-8 in a text frame", "huge binary frame", "nesting past the parser's limit",
                                  "deep request id", "empty text frame"])  # fmt: skip
def test_garbage_during_the_login(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _NoisyLoginServer, "noise", (EXTREMES[name], Push('{"jsonrpc":"2.0","id":"p1","method":"signalwire.ping"}'))
    )
    with relay_logs(logging.DEBUG) as logs, _NoisyLoginServer() as server:
        client = RelayClient(**server.client_kwargs(**FAST))
        try:
            client.connect()  # the first login
            assert server.session(0).wait_answer("p1")["result"] == {}  # answered even mid-login
            server.session(0).drop()
            server.wait_for_session(2)  # the reconnect's login, in the I/O thread
            assert server.session(1).wait_answer("p1")["result"] == {}
            assert client.execute("after.noise", {})["code"] == "200"
        finally:
            client.disconnect()
    assert relay_threads() == []
    assert logs.errors == []


def test_wire_strings_utf8_cannot_carry_go_back_escaped() -> None:
    """A call id holding a lone surrogate (valid JSON, no UTF-8 form) is sent back in
    the call's commands as a \\u escape, not failed with UnicodeEncodeError."""
    with live_rig() as rig:
        receive = {"event_type": "calling.call.receive", "params": {"call_id": "\ud800", "context": "office"}}
        rig.session.send(json.dumps({"jsonrpc": "2.0", "id": "sur", "method": "signalwire.event", "params": receive}))
        rig.server.wait_for_request("calling.pass", lambda params: params.get("call_id") == "\ud800")
        rig.check_alive("sur")


def test_a_storm_of_disconnect_requests_with_arbitrary_params() -> None:
    with live_rig() as rig:

        @fuzz_settings(20)
        @given(params=json_values | st.fixed_dictionaries({"restart": json_values}))
        def check(params: Any) -> None:
            request_id = rig.session.request("signalwire.disconnect", params)
            assert rig.session.wait_answer(request_id, timeout=STEP)["result"] == {}
            rig.check_alive(None)  # reconnected, and serving

        check()


def test_frames_pushed_from_many_threads_at_once() -> None:
    """The same junk from eight server threads at once: ACKs and answers still pair up."""
    with live_rig() as rig:
        session = rig.session

        def blast(worker: int) -> list[str]:
            ids = []
            for n in range(50):
                session.send(b"\x00\xff" * n)
                session.send("[" * n)
                ids.append(session.push_event("calling.call.state", {"call_id": f"w{worker}-{n}", "call_state": n}))
                ids.append(session.ping())
            return ids

        blasters = [run_in_thread(partial(blast, w)) for w in range(8)]
        for blaster in blasters:
            for request_id in outcome_of(blaster):
                assert session.wait_answer(request_id, timeout=STEP)["result"] == {}
        rig.check_alive(None)
        assert threading.active_count() < 100
