"""Typed RELAY events: ``RelayEvent``, one subclass per event type, and
``parse_event`` which turns a ``signalwire.event`` envelope into one of them.

``parse_event`` runs on the I/O thread for every event, so it does the least
work it can (one table lookup, no copying) and never raises, whatever the
wire sent. Properties read ``params`` lazily and return ``None`` (or an empty
dict or list) when a field is missing or has the wrong type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .constants import (
    EVENT_CALL_COLLECT,
    EVENT_CALL_CONNECT,
    EVENT_CALL_DENOISE,
    EVENT_CALL_DETECT,
    EVENT_CALL_DIAL,
    EVENT_CALL_ECHO,
    EVENT_CALL_FAX,
    EVENT_CALL_HOLD,
    EVENT_CALL_PAY,
    EVENT_CALL_PLAY,
    EVENT_CALL_QUEUE,
    EVENT_CALL_RECEIVE,
    EVENT_CALL_RECORD,
    EVENT_CALL_REFER,
    EVENT_CALL_SEND_DIGITS,
    EVENT_CALL_STATE,
    EVENT_CALL_STREAM,
    EVENT_CALL_TAP,
    EVENT_CALL_TRANSCRIBE,
    EVENT_CALLING_ERROR,
    EVENT_CONFERENCE,
    EVENT_MESSAGING_RECEIVE,
    EVENT_MESSAGING_STATE,
    EVENT_TASK,
)
from .rpc import JSONDict, masked

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11


# Each event family names its state differently; the first key present wins.
_STATE_KEYS = ("state", "call_state", "message_state", "dial_state", "connect_state")


def text_field(params: Mapping[str, Any], key: str) -> str | None:
    """``params[key]`` when it is a string, else None: how every event and call field is read."""
    value = params.get(key)
    return value if isinstance(value, str) else None


def _object(params: JSONDict, key: str) -> JSONDict:
    value = params.get(key)
    return value if isinstance(value, dict) else {}


def _number(params: JSONDict, key: str) -> float | None:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _integer(params: JSONDict, key: str) -> int | None:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _flag(params: JSONDict, key: str) -> bool | None:
    value = params.get(key)
    return value if isinstance(value, bool) else None


def _texts(params: JSONDict, key: str) -> list[str]:
    value = params.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def _code(params: JSONDict, key: str) -> str | None:
    """A status code, which servers send as a string or as a number."""
    value = params.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _timestamp(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
    except (ValueError, OverflowError):  # "soon", or an int too big for a float
        return None
    return seconds if math.isfinite(seconds) else None


E = TypeVar("E", bound="RelayEvent")


class RelayEvent:
    """One event from the server: its ``event_type``, its ``params`` and the
    server's ``timestamp`` (epoch seconds, ``None`` when absent).

    Subclasses add typed properties for their event type's well-known fields;
    everything else is in ``params``.
    """

    __slots__ = ("event_type", "params", "timestamp")

    # True when the server puts the fields in the envelope itself instead of
    # under "params" (only tasks do).
    flat_envelope: ClassVar[bool] = False

    def __init__(self, event_type: str, params: JSONDict | None = None, timestamp: float | None = None) -> None:
        self.event_type = event_type
        self.params: JSONDict = params if params is not None else {}
        self.timestamp = timestamp

    @property
    def call_id(self) -> str | None:
        """The call this event is about (for a dial event, the answering leg)."""
        return self._call_field("call_id")

    @property
    def node_id(self) -> str | None:
        return self._call_field("node_id")

    @property
    def control_id(self) -> str | None:
        """The id of the operation (play, record, ...) this event reports on."""
        return text_field(self.params, "control_id")

    @property
    def tag(self) -> str | None:
        return text_field(self.params, "tag")

    @property
    def state(self) -> str | None:
        """The event's state, whichever name its family gives it
        (``state``, ``call_state``, ``message_state``, ``dial_state``, ``connect_state``)."""
        for key in _STATE_KEYS:
            value = self.params.get(key)
            if isinstance(value, str):
                return value
        return None

    @classmethod
    def from_payload(cls, payload: JSONDict) -> Self:
        """This class's event for the params of a ``signalwire.event`` request, like the
        async SDK's ``from_payload`` (``parse_event`` picks the class by ``event_type``).
        Never raises, whatever the payload holds."""
        return _build(cls, payload)

    def _call_field(self, key: str) -> str | None:
        value = self.params.get(key)
        if isinstance(value, str):
            return value
        # Dial events carry the winning leg under "call" instead of at the top.
        call = self.params.get("call")
        if isinstance(call, dict):
            nested = call.get(key)
            if isinstance(nested, str):
                return nested
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RelayEvent):
            return NotImplemented
        return self.event_type == other.event_type and self.params == other.params and self.timestamp == other.timestamp

    # Events hold a mutable params dict, so they compare by value and are not hashable.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(event_type={self.event_type!r}, "
            f"params={masked(self.params)!r}, timestamp={self.timestamp!r})"
        )


class CallStateEvent(RelayEvent):
    """``calling.call.state``: a call moved to ``created``, ``ringing``,
    ``answered``, ``ending`` or ``ended``."""

    __slots__ = ()

    @property
    def call_state(self) -> str | None:
        return text_field(self.params, "call_state")

    @property
    def end_reason(self) -> str | None:
        """Why the call ended (``hangup``, ``busy``, ``noAnswer``...); set on ``ended``."""
        return text_field(self.params, "end_reason")

    @property
    def direction(self) -> str | None:
        return text_field(self.params, "direction")

    @property
    def device(self) -> JSONDict:
        return _object(self.params, "device")


class CallReceiveEvent(RelayEvent):
    """``calling.call.receive``: an inbound call arrived on a subscribed context."""

    __slots__ = ()

    @property
    def project_id(self) -> str | None:
        return text_field(self.params, "project_id")

    @property
    def call_state(self) -> str | None:
        return text_field(self.params, "call_state")

    @property
    def context(self) -> str | None:
        return text_field(self.params, "context")

    @property
    def direction(self) -> str | None:
        return text_field(self.params, "direction")

    @property
    def device(self) -> JSONDict:
        """``{"type": "phone", "params": {"from_number": ..., "to_number": ...}}`` or a SIP device."""
        return _object(self.params, "device")

    @property
    def segment_id(self) -> str | None:
        return text_field(self.params, "segment_id")


class PlayEvent(RelayEvent):
    """``calling.call.play``: ``state`` is ``playing``, ``paused``, ``finished`` or ``error``."""

    __slots__ = ()


class RecordEvent(RelayEvent):
    """``calling.call.record``: ``state`` is ``recording``, ``paused``,
    ``finished`` or ``no_input``; a finished recording has a ``url``.

    The server nests the outcome under ``params.record``; ``url``,
    ``duration`` and ``size`` read it there first, then at the top level.
    """

    __slots__ = ()

    @property
    def record(self) -> JSONDict:
        """The ``record`` object: the settings sent, and the outcome once finished."""
        return _object(self.params, "record")

    @property
    def url(self) -> str | None:
        """Where the recording can be fetched (see ``relay_sync.rest.download_recording``)."""
        return text_field(self.record, "url") or text_field(self.params, "url")

    @property
    def duration(self) -> float | None:
        """Length of the recording in seconds."""
        nested = _number(self.record, "duration")
        return nested if nested is not None else _number(self.params, "duration")

    @property
    def size(self) -> int | None:
        """Size of the recording in bytes."""
        nested = _integer(self.record, "size")
        return nested if nested is not None else _integer(self.params, "size")


class CollectEvent(RelayEvent):
    """``calling.call.collect``: digits or speech gathered from the caller."""

    __slots__ = ()

    @property
    def result(self) -> JSONDict:
        """``{"type": "digit" | "speech" | "no_input" | "no_match" | "error" | "start_of_input", "params": {...}}``."""
        return _object(self.params, "result")

    @property
    def result_type(self) -> str | None:
        return text_field(self.result, "type")

    @property
    def final(self) -> bool | None:
        """False for a partial result; the collect goes on."""
        return _flag(self.params, "final")


class ConnectEvent(RelayEvent):
    """``calling.call.connect``: a bridge to another party changed state."""

    __slots__ = ()

    @property
    def connect_state(self) -> str | None:
        """``connecting``, ``connected``, ``disconnected`` or ``failed``."""
        return text_field(self.params, "connect_state")

    @property
    def peer(self) -> JSONDict:
        """The other leg (``call_id``, ``node_id``, ``device``...) once connected."""
        return _object(self.params, "peer")


class DetectEvent(RelayEvent):
    """``calling.call.detect``: a machine, fax or digit detector reported."""

    __slots__ = ()

    @property
    def detect(self) -> JSONDict:
        """``{"type": "machine" | "fax" | "digit", "params": {"event": ...}}``."""
        return _object(self.params, "detect")

    @property
    def detect_type(self) -> str | None:
        return text_field(self.detect, "type")

    @property
    def detect_event(self) -> str | None:
        """What was detected (``HUMAN``, ``MACHINE``, ``CED``, a digit, ``finished``...)."""
        return text_field(_object(self.detect, "params"), "event")


class FaxEvent(RelayEvent):
    """``calling.call.fax``: progress or outcome of a fax sent or received."""

    __slots__ = ()

    @property
    def fax(self) -> JSONDict:
        return _object(self.params, "fax")


class TapEvent(RelayEvent):
    """``calling.call.tap``: media tapping to a remote device changed state."""

    __slots__ = ()

    @property
    def tap(self) -> JSONDict:
        return _object(self.params, "tap")

    @property
    def device(self) -> JSONDict:
        return _object(self.params, "device")


class StreamEvent(RelayEvent):
    """``calling.call.stream``: a media stream to a WebSocket URL changed state."""

    __slots__ = ()

    @property
    def url(self) -> str | None:
        return text_field(self.params, "url")

    @property
    def name(self) -> str | None:
        return text_field(self.params, "name")


class SendDigitsEvent(RelayEvent):
    """``calling.call.send_digits``: ``state`` is ``finished`` once the digits were sent."""

    __slots__ = ()


class DialEvent(RelayEvent):
    """``calling.call.dial``: the outcome of ``calling.dial`` for its ``tag``."""

    __slots__ = ()

    @property
    def dial_state(self) -> str | None:
        """``dialing``, ``answered`` or ``failed``."""
        return text_field(self.params, "dial_state")

    @property
    def call(self) -> JSONDict:
        """The answering leg (``call_id``, ``node_id``, ``tag``, ``device``, ``dial_winner``)."""
        return _object(self.params, "call")


class ReferEvent(RelayEvent):
    """``calling.call.refer``: progress of a SIP REFER."""

    __slots__ = ()

    @property
    def sip_refer_to(self) -> str | None:
        return text_field(self.params, "sip_refer_to")

    @property
    def sip_refer_response_code(self) -> str | None:
        return _code(self.params, "sip_refer_response_code")

    @property
    def sip_notify_response_code(self) -> str | None:
        return _code(self.params, "sip_notify_response_code")


class DenoiseEvent(RelayEvent):
    """``calling.call.denoise``: noise reduction was switched on or off."""

    __slots__ = ()

    @property
    def denoised(self) -> bool | None:
        return _flag(self.params, "denoised")


class PayEvent(RelayEvent):
    """``calling.call.pay``: ``state`` ``finished`` or ``error`` ends the payment."""

    __slots__ = ()


class QueueEvent(RelayEvent):
    """``calling.call.queue``: the call entered, moved in or left a queue."""

    __slots__ = ()

    @property
    def status(self) -> str | None:
        """``entered``, ``left``..."""
        return text_field(self.params, "status")

    @property
    def queue_id(self) -> str | None:
        # The async SDK reads "id"; the queue commands' own name for it is "queue_id".
        return text_field(self.params, "id") or text_field(self.params, "queue_id")

    @property
    def queue_name(self) -> str | None:
        return text_field(self.params, "name") or text_field(self.params, "queue_name")

    @property
    def position(self) -> int | None:
        return _integer(self.params, "position")

    @property
    def size(self) -> int | None:
        """How many calls are in the queue."""
        return _integer(self.params, "size")


class EchoEvent(RelayEvent):
    """``calling.call.echo``: the echo test changed state."""

    __slots__ = ()


class TranscribeEvent(RelayEvent):
    """``calling.call.transcribe``: ``state`` ``finished`` ends the transcription."""

    __slots__ = ()

    @property
    def url(self) -> str | None:
        return text_field(self.params, "url")

    @property
    def recording_id(self) -> str | None:
        return text_field(self.params, "recording_id")

    @property
    def duration(self) -> float | None:
        return _number(self.params, "duration")

    @property
    def size(self) -> int | None:
        return _integer(self.params, "size")


class HoldEvent(RelayEvent):
    """``calling.call.hold``: the call was put on hold or taken off it."""

    __slots__ = ()


class ConferenceEvent(RelayEvent):
    """``calling.conference``: a conference the call is in changed."""

    __slots__ = ()

    @property
    def conference_id(self) -> str | None:
        return text_field(self.params, "conference_id")

    @property
    def name(self) -> str | None:
        return text_field(self.params, "name")

    @property
    def status(self) -> str | None:
        return text_field(self.params, "status")


class CallingErrorEvent(RelayEvent):
    """``calling.error``: the server reports a failure not tied to a request."""

    __slots__ = ()

    @property
    def code(self) -> str | None:
        return _code(self.params, "code")

    @property
    def message(self) -> str | None:
        return text_field(self.params, "message")


class _MessageEvent(RelayEvent):
    """The fields inbound messages and message state updates share."""

    __slots__ = ()

    @property
    def message_id(self) -> str | None:
        return text_field(self.params, "message_id")

    @property
    def message_state(self) -> str | None:
        return text_field(self.params, "message_state")

    @property
    def context(self) -> str | None:
        return text_field(self.params, "context")

    @property
    def direction(self) -> str | None:
        return text_field(self.params, "direction")

    @property
    def from_number(self) -> str | None:
        return text_field(self.params, "from_number")

    @property
    def to_number(self) -> str | None:
        return text_field(self.params, "to_number")

    @property
    def body(self) -> str | None:
        return text_field(self.params, "body")

    @property
    def media(self) -> list[str]:
        """URLs of the attached media (MMS)."""
        return _texts(self.params, "media")

    @property
    def segments(self) -> int | None:
        return _integer(self.params, "segments")

    @property
    def tags(self) -> list[str]:
        return _texts(self.params, "tags")


class MessageReceiveEvent(_MessageEvent):
    """``messaging.receive``: an inbound SMS/MMS."""

    __slots__ = ()


class MessageStateEvent(_MessageEvent):
    """``messaging.state``: an outbound message moved to ``queued``,
    ``initiated``, ``sent``, ``delivered``, ``undelivered`` or ``failed``."""

    __slots__ = ()

    @property
    def reason(self) -> str | None:
        """Why the message was not delivered, when the carrier said."""
        return text_field(self.params, "reason")


class TaskEvent(RelayEvent):
    """``queuing.relay.tasks``: a task sent with ``relay_sync.rest.deliver_task``.

    Its ``params`` are the whole envelope (``context``, ``message``,
    ``timestamp``, ...): the server does not nest them.
    """

    __slots__ = ()

    flat_envelope = True

    @property
    def context(self) -> str | None:
        return text_field(self.params, "context")

    @property
    def message(self) -> Any:
        """The JSON value the sender passed as ``message`` (normally a dict)."""
        return self.params.get("message")


# event_type → class; parse_event falls back to a plain RelayEvent.
EVENT_CLASSES: Mapping[str, type[RelayEvent]] = MappingProxyType(
    {
        EVENT_CALL_STATE: CallStateEvent,
        EVENT_CALL_RECEIVE: CallReceiveEvent,
        EVENT_CALL_PLAY: PlayEvent,
        EVENT_CALL_RECORD: RecordEvent,
        EVENT_CALL_COLLECT: CollectEvent,
        EVENT_CALL_CONNECT: ConnectEvent,
        EVENT_CALL_DETECT: DetectEvent,
        EVENT_CALL_FAX: FaxEvent,
        EVENT_CALL_TAP: TapEvent,
        EVENT_CALL_STREAM: StreamEvent,
        EVENT_CALL_SEND_DIGITS: SendDigitsEvent,
        EVENT_CALL_DIAL: DialEvent,
        EVENT_CALL_REFER: ReferEvent,
        EVENT_CALL_DENOISE: DenoiseEvent,
        EVENT_CALL_PAY: PayEvent,
        EVENT_CALL_QUEUE: QueueEvent,
        EVENT_CALL_ECHO: EchoEvent,
        EVENT_CALL_TRANSCRIBE: TranscribeEvent,
        EVENT_CALL_HOLD: HoldEvent,
        EVENT_CONFERENCE: ConferenceEvent,
        EVENT_CALLING_ERROR: CallingErrorEvent,
        EVENT_MESSAGING_RECEIVE: MessageReceiveEvent,
        EVENT_MESSAGING_STATE: MessageStateEvent,
        EVENT_TASK: TaskEvent,
    }
)


def parse_event(payload: JSONDict) -> RelayEvent:
    """Build the typed event for the params of a ``signalwire.event`` request:
    ``{"event_type": ..., "params": {...}, "timestamp": ...}``.

    Never raises: a payload that is not a dict gives ``RelayEvent("", {})``,
    a non-string ``event_type`` becomes ``""`` and non-dict ``params`` ``{}``.
    """
    event_type = payload.get("event_type") if isinstance(payload, dict) else None
    return _build(EVENT_CLASSES.get(event_type, RelayEvent) if isinstance(event_type, str) else RelayEvent, payload)


def _build(event_class: type[E], payload: Any) -> E:
    """``event_class`` over a payload; the timestamp is the event's own
    (``params.timestamp``) when it has one, else the envelope's."""
    if not isinstance(payload, dict):
        return event_class("", {})
    event_type = payload.get("event_type")
    if not isinstance(event_type, str):
        event_type = ""
    if event_class.flat_envelope:
        params: JSONDict = payload
    else:
        nested = payload.get("params")
        params = nested if isinstance(nested, dict) else {}
    timestamp = _timestamp(params.get("timestamp"))
    if timestamp is None:
        timestamp = _timestamp(payload.get("timestamp"))
    return event_class(event_type, params, timestamp)
