"""Typed events: parse_event picks the class for each event type, the typed
properties read the well-known fields, and nothing the wire sends can make
parsing or a property raise (it runs on the I/O thread)."""

from __future__ import annotations

import inspect
import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_sync import constants
from relay_sync.events import (
    EVENT_CLASSES,
    CallingErrorEvent,
    CallReceiveEvent,
    CallStateEvent,
    CollectEvent,
    ConferenceEvent,
    ConnectEvent,
    DenoiseEvent,
    DetectEvent,
    DialEvent,
    EchoEvent,
    FaxEvent,
    HoldEvent,
    MessageReceiveEvent,
    MessageStateEvent,
    PayEvent,
    PlayEvent,
    QueueEvent,
    RecordEvent,
    ReferEvent,
    RelayEvent,
    SendDigitsEvent,
    StreamEvent,
    TapEvent,
    TaskEvent,
    TranscribeEvent,
    parse_event,
)

# Written out independently of EVENT_CLASSES, so a wrong table row fails here.
EXPECTED_CLASSES = [
    ("calling.call.state", CallStateEvent),
    ("calling.call.receive", CallReceiveEvent),
    ("calling.call.play", PlayEvent),
    ("calling.call.record", RecordEvent),
    ("calling.call.collect", CollectEvent),
    ("calling.call.connect", ConnectEvent),
    ("calling.call.detect", DetectEvent),
    ("calling.call.fax", FaxEvent),
    ("calling.call.tap", TapEvent),
    ("calling.call.stream", StreamEvent),
    ("calling.call.send_digits", SendDigitsEvent),
    ("calling.call.dial", DialEvent),
    ("calling.call.refer", ReferEvent),
    ("calling.call.denoise", DenoiseEvent),
    ("calling.call.pay", PayEvent),
    ("calling.call.queue", QueueEvent),
    ("calling.call.echo", EchoEvent),
    ("calling.call.transcribe", TranscribeEvent),
    ("calling.call.hold", HoldEvent),
    ("calling.conference", ConferenceEvent),
    ("calling.error", CallingErrorEvent),
    ("messaging.receive", MessageReceiveEvent),
    ("messaging.state", MessageStateEvent),
    ("queuing.relay.tasks", TaskEvent),
]
ALL_CLASSES = [RelayEvent] + [event_class for _, event_class in EXPECTED_CLASSES]


def envelope(event_type: str, params: Any, **extra: Any) -> dict[str, Any]:
    return {"event_type": event_type, "params": params, **extra}


def properties_of(event_class: type[RelayEvent]) -> list[str]:
    return [name for name, _ in inspect.getmembers(event_class, lambda m: isinstance(m, property))]


@pytest.mark.parametrize(("event_type", "event_class"), EXPECTED_CLASSES)
def test_each_event_type_gets_its_class(event_type: str, event_class: type[RelayEvent]) -> None:
    params = {"call_id": "call-1", "node_id": "node-1", "control_id": "ctl-1"}
    payload = {"event_type": event_type, "params": params, "timestamp": 1700000000.5}

    event = parse_event(payload)

    assert type(event) is event_class
    assert event.event_type == event_type
    assert event.timestamp == 1700000000.5
    if event_class is not TaskEvent:
        assert event.params is params  # no copy on the hot path
        assert (event.call_id, event.node_id, event.control_id) == ("call-1", "node-1", "ctl-1")


def test_the_table_covers_exactly_the_typed_event_types() -> None:
    assert dict(EVENT_CLASSES) == dict(EXPECTED_CLASSES)


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        EVENT_CLASSES["calling.call.new"] = RelayEvent  # type: ignore[index]


def test_event_type_constants_match_the_wire_names() -> None:
    assert constants.EVENT_CALL_STATE == "calling.call.state"
    assert constants.EVENT_CALL_HOLD == "calling.call.hold"
    assert constants.EVENT_CONFERENCE == "calling.conference"
    assert constants.EVENT_CALLING_ERROR == "calling.error"
    assert constants.EVENT_TASK == "queuing.relay.tasks"
    assert constants.EVENT_AUTHORIZATION_STATE == "signalwire.authorization.state"
    assert constants.CALL_STATES == ("created", "ringing", "answered", "ending", "ended")
    assert constants.MESSAGE_TERMINAL_STATES == ("delivered", "undelivered", "failed")
    assert constants.END_REASON_NO_ANSWER == "noAnswer"


@pytest.mark.parametrize("event_class", ALL_CLASSES)
def test_events_carry_no_instance_dict(event_class: type[RelayEvent]) -> None:
    # One is built per event: every class in the family must keep __slots__.
    event = event_class("x", {})
    assert not hasattr(event, "__dict__")


def test_unknown_event_type_gives_a_plain_relay_event() -> None:
    event = parse_event(envelope("calling.call.something_new", {"call_id": "c", "state": "on"}))

    assert type(event) is RelayEvent
    assert event.event_type == "calling.call.something_new"
    assert event.call_id == "c"
    assert event.state == "on"


def test_call_state_event() -> None:
    event = parse_event(
        envelope(
            "calling.call.state",
            {
                "call_id": "c1",
                "node_id": "n1",
                "tag": "t1",
                "call_state": "ended",
                "end_reason": "busy",
                "direction": "outbound",
                "device": {"type": "phone", "params": {"to_number": "+15551230000"}},
            },
        )
    )

    assert isinstance(event, CallStateEvent)
    assert event.call_state == event.state == constants.CALL_STATE_ENDED
    assert event.end_reason == constants.END_REASON_BUSY
    assert event.direction == "outbound"
    assert event.device["params"]["to_number"] == "+15551230000"
    assert event.tag == "t1"


def test_call_receive_event() -> None:
    event = parse_event(
        envelope(
            "calling.call.receive",
            {
                "call_id": "c1",
                "node_id": "n1",
                "context": "office",
                "call_state": "created",
                "direction": "inbound",
                "device": {"type": "phone", "params": {"from_number": "+1555", "to_number": "+1666"}},
                "segment_id": "seg-1",
            },
        )
    )

    assert isinstance(event, CallReceiveEvent)
    assert (event.context, event.call_state, event.direction) == ("office", "created", "inbound")
    assert event.device["params"]["from_number"] == "+1555"
    assert event.segment_id == "seg-1"


def test_record_event() -> None:
    event = parse_event(
        envelope(
            "calling.call.record",
            {"control_id": "r1", "state": "finished", "url": "https://x/r.mp3", "duration": 4, "size": 2048},
        )
    )

    assert isinstance(event, RecordEvent)
    assert event.state == "finished"
    assert event.url == "https://x/r.mp3"
    assert event.duration == 4.0 and isinstance(event.duration, float)
    assert event.size == 2048


def test_collect_event() -> None:
    result = {"type": "digit", "params": {"digits": "12", "terminator": "#"}}
    event = parse_event(envelope("calling.call.collect", {"control_id": "k", "result": result, "final": False}))

    assert isinstance(event, CollectEvent)
    assert event.result == result
    assert event.result_type == "digit"
    assert event.final is False


def test_connect_event() -> None:
    peer = {"call_id": "peer-call", "node_id": "peer-node"}
    event = parse_event(envelope("calling.call.connect", {"call_id": "c", "connect_state": "connected", "peer": peer}))

    assert isinstance(event, ConnectEvent)
    assert event.connect_state == event.state == "connected"
    assert event.peer == peer


def test_detect_event() -> None:
    detect = {"type": "machine", "params": {"event": "HUMAN"}}
    event = parse_event(envelope("calling.call.detect", {"control_id": "d", "detect": detect}))

    assert isinstance(event, DetectEvent)
    assert event.detect == detect
    assert (event.detect_type, event.detect_event) == ("machine", "HUMAN")


def test_dial_event_takes_the_call_from_the_winning_leg() -> None:
    call = {"call_id": "won", "node_id": "won-node", "tag": "dial-tag", "dial_winner": True}
    event = parse_event(envelope("calling.call.dial", {"tag": "dial-tag", "dial_state": "answered", "call": call}))

    assert isinstance(event, DialEvent)
    assert event.dial_state == event.state == constants.DIAL_STATE_ANSWERED
    assert event.call == call
    assert (event.call_id, event.node_id, event.tag) == ("won", "won-node", "dial-tag")


def test_a_failed_dial_has_no_call() -> None:
    event = parse_event(envelope("calling.call.dial", {"tag": "t", "dial_state": "failed"}))

    assert isinstance(event, DialEvent)
    assert event.call == {}
    assert event.call_id is None


def test_smaller_call_events() -> None:
    fax = parse_event(envelope("calling.call.fax", {"fax": {"type": "finished", "params": {"pages": 2}}}))
    tap = parse_event(envelope("calling.call.tap", {"tap": {"type": "audio"}, "device": {"type": "rtp"}}))
    stream = parse_event(envelope("calling.call.stream", {"url": "wss://s", "name": "st"}))
    refer = parse_event(envelope("calling.call.refer", {"sip_refer_to": "sip:b@x", "sip_refer_response_code": 202}))
    denoise = parse_event(envelope("calling.call.denoise", {"denoised": True}))
    queue = parse_event(envelope("calling.call.queue", {"queue_id": "q1", "queue_name": "sales", "position": 3}))
    transcribe = parse_event(envelope("calling.call.transcribe", {"state": "finished", "url": "https://t"}))
    conference = parse_event(envelope("calling.conference", {"conference_id": "cf", "name": "standup"}))
    error = parse_event(envelope("calling.error", {"code": "500", "message": "boom"}))

    assert isinstance(fax, FaxEvent) and fax.fax["params"]["pages"] == 2
    assert isinstance(tap, TapEvent) and (tap.tap, tap.device) == ({"type": "audio"}, {"type": "rtp"})
    assert isinstance(stream, StreamEvent) and (stream.url, stream.name) == ("wss://s", "st")
    assert isinstance(refer, ReferEvent)
    assert (refer.sip_refer_to, refer.sip_refer_response_code) == ("sip:b@x", "202")
    assert refer.sip_notify_response_code is None
    assert isinstance(denoise, DenoiseEvent) and denoise.denoised is True
    assert isinstance(queue, QueueEvent) and (queue.queue_id, queue.queue_name, queue.position) == ("q1", "sales", 3)
    assert isinstance(transcribe, TranscribeEvent) and transcribe.url == "https://t"
    assert isinstance(conference, ConferenceEvent) and (conference.conference_id, conference.name) == ("cf", "standup")
    assert isinstance(error, CallingErrorEvent) and (error.code, error.message) == ("500", "boom")


def test_message_receive_event() -> None:
    event = parse_event(
        envelope(
            "messaging.receive",
            {
                "message_id": "m1",
                "context": "office",
                "direction": "inbound",
                "from_number": "+1555",
                "to_number": "+1666",
                "body": "hi",
                "media": ["https://m/1.png", 7],
                "segments": 1,
                "message_state": "received",
                "tags": ["a"],
            },
        )
    )

    assert isinstance(event, MessageReceiveEvent)
    assert (event.message_id, event.context, event.direction) == ("m1", "office", "inbound")
    assert (event.from_number, event.to_number, event.body) == ("+1555", "+1666", "hi")
    assert event.media == ["https://m/1.png"]  # the non-string entry is dropped
    assert event.segments == 1
    assert event.message_state == event.state == constants.MESSAGE_STATE_RECEIVED
    assert event.tags == ["a"]


def test_message_state_event() -> None:
    event = parse_event(
        envelope("messaging.state", {"message_id": "m1", "message_state": "undelivered", "reason": "carrier"})
    )

    assert isinstance(event, MessageStateEvent)
    assert event.message_id == "m1"
    assert event.message_state in constants.MESSAGE_TERMINAL_STATES
    assert event.reason == "carrier"


def test_task_event_reads_the_flat_envelope() -> None:
    payload = {
        "event_type": "queuing.relay.tasks",
        "context": "office",
        "message": {"job": 42},
        "timestamp": 1700000000,
        "project_id": "secret-project",
        "space_id": "space",
    }

    event = parse_event(payload)

    assert isinstance(event, TaskEvent)
    assert event.context == "office"
    assert event.message == {"job": 42}
    assert event.timestamp == 1700000000.0
    assert "secret-project" not in repr(event)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "playing", "call_state": "answered"}, "playing"),
        ({"call_state": "answered"}, "answered"),
        ({"message_state": "sent"}, "sent"),
        ({"dial_state": "dialing"}, "dialing"),
        ({"connect_state": "failed"}, "failed"),
        ({"state": 3, "call_state": "ringing"}, "ringing"),
        ({}, None),
    ],
)
def test_state_reads_whichever_state_key_is_present(params: dict[str, Any], expected: str | None) -> None:
    assert RelayEvent("x", params).state == expected


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "calling.call.play",
        42,
        {},
        {"event_type": 5},
        {"event_type": ["calling.call.play"]},
        {"event_type": {"unhashable": True}},
        {"event_type": None, "params": None},
    ],
)
def test_malformed_envelopes_give_an_empty_plain_event(payload: Any) -> None:
    event = parse_event(payload)

    assert type(event) is RelayEvent
    assert event.event_type == ""
    assert event.params == {}


@pytest.mark.parametrize("params", [None, "text", 3, ["call_id", "c"], True])
@pytest.mark.parametrize(("event_type", "event_class"), EXPECTED_CLASSES[:-1])
def test_non_dict_params_become_empty(event_type: str, event_class: type[RelayEvent], params: Any) -> None:
    event = parse_event(envelope(event_type, params))

    assert type(event) is event_class
    assert event.params == {}


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1700000000.25, 1700000000.25),
        (1700000000, 1700000000.0),
        ("1700000000.5", 1700000000.5),
        ("soon", None),
        (True, None),
        (None, None),
        ([1], None),
        (10**400, None),
        ("nan", None),
        ("1e999", None),
    ],
)
def test_timestamp_is_a_finite_float_or_none(timestamp: Any, expected: float | None) -> None:
    event = parse_event(envelope("calling.call.play", {}, timestamp=timestamp))

    assert event.timestamp == expected
    assert event.timestamp is None or math.isfinite(event.timestamp)


# Every field a property reads, each holding a value of the wrong type.
FIELD_NAMES = [
    "call_id",
    "node_id",
    "control_id",
    "tag",
    "state",
    "call_state",
    "end_reason",
    "direction",
    "device",
    "context",
    "segment_id",
    "url",
    "duration",
    "size",
    "result",
    "final",
    "connect_state",
    "peer",
    "detect",
    "fax",
    "tap",
    "name",
    "dial_state",
    "call",
    "sip_refer_to",
    "sip_refer_response_code",
    "sip_notify_response_code",
    "denoised",
    "queue_id",
    "queue_name",
    "position",
    "conference_id",
    "code",
    "message",
    "message_id",
    "message_state",
    "from_number",
    "to_number",
    "body",
    "media",
    "segments",
    "tags",
    "reason",
]
WRONG_VALUES = [1, [], {}, 2.5, True, None, ["x"], {"a": 1}, "str", 0, False, 7]
WRONG_TYPED_PARAMS = dict(zip(FIELD_NAMES, itertools.cycle(WRONG_VALUES)))


@pytest.mark.parametrize("event_class", ALL_CLASSES)
def test_properties_of_wrong_typed_fields_never_raise(event_class: type[RelayEvent]) -> None:
    event = event_class("x", dict(WRONG_TYPED_PARAMS))

    for name in properties_of(event_class):
        value = getattr(event, name)
        assert value is None or isinstance(value, (str, int, float, bool, dict, list)), name
    assert event.call_id is None and event.node_id is None and event.control_id is None


@pytest.mark.parametrize("event_class", ALL_CLASSES)
def test_properties_of_empty_params(event_class: type[RelayEvent]) -> None:
    event = event_class("x", {})

    for name in properties_of(event_class):
        assert getattr(event, name) in (None, {}, []), name


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    event_type=st.sampled_from([t for t, _ in EXPECTED_CLASSES] + ["other"]) | json_values,
    params=json_values | st.dictionaries(st.sampled_from(FIELD_NAMES), json_values),
    timestamp=json_values,
)
def test_parse_event_never_raises_on_any_json(event_type: Any, params: Any, timestamp: Any) -> None:
    event = parse_event({"event_type": event_type, "params": params, "timestamp": timestamp})

    for name in properties_of(type(event)):
        getattr(event, name)
    repr(event)


def test_repr_is_readable_and_masks_secrets() -> None:
    auth = parse_event(envelope("signalwire.authorization.state", {"authorization_state": "opaque-secret-blob"}))
    nested = parse_event(
        envelope("calling.call.play", {"call_id": "c1", "state": "playing", "extra": [{"token": "tok-secret"}]})
    )

    assert "opaque-secret-blob" not in repr(auth)
    assert "tok-secret" not in repr(nested)
    assert repr(nested).startswith("PlayEvent(event_type='calling.call.play', params={'call_id': 'c1'")
    assert "'state': 'playing'" in repr(nested)


def test_events_compare_by_value() -> None:
    first = parse_event(envelope("calling.call.play", {"control_id": "p", "state": "finished"}, timestamp=1))
    same = PlayEvent("calling.call.play", {"control_id": "p", "state": "finished"}, 1.0)
    later = PlayEvent("calling.call.play", {"control_id": "p", "state": "finished"}, 2.0)

    assert first == same
    assert first != later
    assert first != RelayEvent("calling.call.record", first.params, 1.0)
    assert first != {"control_id": "p", "state": "finished"}
    with pytest.raises(TypeError):
        hash(first)


def test_a_relay_event_can_be_built_without_params() -> None:
    event = RelayEvent("calling.call.hold")

    assert event.params == {}
    assert event.timestamp is None


# -- parity with the async SDK's event classes -----------------------------------------


@pytest.mark.parametrize("event_class", ALL_CLASSES)
def test_every_class_has_from_payload_giving_that_class(event_class: type[RelayEvent]) -> None:
    params = {"call_id": "call-1", "control_id": "ctl-1"}
    event = event_class.from_payload({"event_type": "x.y", "params": params, "timestamp": 12.5})
    assert type(event) is event_class and event.event_type == "x.y" and event.timestamp == 12.5
    if event_class is not TaskEvent:
        assert event.params is params and event.call_id == "call-1"
    assert type(event_class.from_payload("garbage")) is event_class  # type: ignore[arg-type]


def test_the_events_own_timestamp_wins_over_the_envelopes() -> None:
    event = parse_event(envelope("calling.call.play", {"state": "playing", "timestamp": 1700000001.25}, timestamp=9.0))
    assert event.timestamp == 1700000001.25
    assert parse_event(envelope("calling.call.play", {"timestamp": "soon"}, timestamp=9.0)).timestamp == 9.0


def test_record_event_reads_the_nested_record_first() -> None:
    record = {"audio": {"format": "mp3"}, "url": "https://x/nested.mp3", "duration": 7.5, "size": 4096}
    params = {"control_id": "r1", "state": "finished", "record": record, "url": "https://x/top.mp3", "duration": 1}
    event = parse_event(envelope("calling.call.record", params))
    assert isinstance(event, RecordEvent)
    assert event.record == record
    assert (event.url, event.duration, event.size) == ("https://x/nested.mp3", 7.5, 4096)
    flat = parse_event(envelope("calling.call.record", {"record": {"audio": {}}, "url": "https://x/top.mp3"}))
    assert isinstance(flat, RecordEvent) and flat.url == "https://x/top.mp3" and flat.duration is None


def test_the_async_sdks_extra_fields() -> None:
    receive = parse_event(envelope("calling.call.receive", {"call_id": "c", "project_id": "p-1"}))
    assert isinstance(receive, CallReceiveEvent) and receive.project_id == "p-1"
    queue_event = parse_event(
        envelope("calling.call.queue", {"status": "entered", "id": "q-9", "name": "support", "position": 2, "size": 5})
    )
    assert isinstance(queue_event, QueueEvent)
    assert (queue_event.status, queue_event.queue_id, queue_event.queue_name) == ("entered", "q-9", "support")
    assert (queue_event.position, queue_event.size) == (2, 5)
    named = parse_event(envelope("calling.call.queue", {"queue_id": "q-1", "queue_name": "sales"}))
    assert isinstance(named, QueueEvent) and (named.queue_id, named.queue_name) == ("q-1", "sales")
    transcribe = parse_event(
        envelope("calling.call.transcribe", {"state": "finished", "recording_id": "rec-1", "duration": 3, "size": 10})
    )
    assert isinstance(transcribe, TranscribeEvent)
    assert (transcribe.recording_id, transcribe.duration, transcribe.size) == ("rec-1", 3.0, 10)
    conference = parse_event(envelope("calling.conference", {"status": "joined", "name": "standup"}))
    assert isinstance(conference, ConferenceEvent) and conference.status == "joined"
