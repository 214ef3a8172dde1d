"""The emulator's calling commands as data: which events each one produces,
how long simulated media lasts, and how the transcript describes it.

``media.py`` runs these tables (``MediaOperations`` reads ``FLOWS``); the
commands with real simulation behind them (play, record, collect, detect,
connect, dial) have their own code in media.py and calling.py and only borrow
the timings from here. No threads, no state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..constants import (
    EVENT_CALL_DENOISE,
    EVENT_CALL_ECHO,
    EVENT_CALL_FAX,
    EVENT_CALL_HOLD,
    EVENT_CALL_PAY,
    EVENT_CALL_QUEUE,
    EVENT_CALL_REFER,
    EVENT_CALL_SEND_DIGITS,
    EVENT_CALL_STREAM,
    EVENT_CALL_TAP,
    EVENT_CALL_TRANSCRIBE,
    EVENT_CONFERENCE,
)
from ..rpc import JSONDict

# Simulated timings, in simulated seconds (scaled by the emulator's time factor).
SPEAKING_RATE = 2.5  # words per second, for TTS prompts and simulated speech
MIN_TTS_SECONDS = 1.0
AUDIO_FILE_SECONDS = 4.0  # an audio URL's length is unknown: assume a short clip
RINGTONE_SECONDS = 3.0
SECONDS_PER_DIGIT = 0.3  # a caller pressing keys
INPUT_DELAY = 0.5  # before the caller starts pressing or speaking
DEFAULT_INITIAL_TIMEOUT = 5.0  # collect/record with no input
DETECT_SECONDS = 2.0
GREETING_SECONDS = 3.0  # an answering machine's greeting, from its MACHINE verdict to its beep
DEFAULT_DETECT_TIMEOUT = 30.0
DEFAULT_RING_TIMEOUT = 30.0


@dataclass(frozen=True)
class Flow:
    """A long-running command driven only by time and ``.stop``.

    ``started`` is sent right after the answer; ``finished`` ends it, either
    after ``runs_for`` simulated seconds or when the client sends
    ``<method>.stop``. ``copy`` names request fields echoed into every event.
    """

    event_type: str
    started: JSONDict | None
    finished: JSONDict
    runs_for: float | None = None
    copy: tuple[str, ...] = ()


def _fax_done(direction: str) -> JSONDict:
    params = {"direction": direction, "success": True, "pages": 1, "result": "1231", "result_text": ""}
    return {"fax": {"type": "finished", "params": params}}


# fmt: off
FLOWS: Mapping[str, Flow] = MappingProxyType({
    "calling.tap":         Flow(EVENT_CALL_TAP,        {"state": "tapping"},      {"state": "finished"}, copy=("tap", "device")),
    "calling.stream":      Flow(EVENT_CALL_STREAM,     {"state": "streaming"},    {"state": "finished"}, copy=("url", "name")),
    "calling.transcribe":  Flow(EVENT_CALL_TRANSCRIBE, {"state": "transcribing"}, {"state": "finished"}),
    "calling.ai":          Flow("calling.call.ai",     {"state": "started"},      {"state": "finished"}),
    "calling.pay":         Flow(EVENT_CALL_PAY,        {"state": "collecting"},
                                {"state": "finished", "result": "success", "payment_result": {"status": "success"}}, runs_for=8.0),
    "calling.send_fax":    Flow(EVENT_CALL_FAX,        {"fax": {"type": "page", "params": {"direction": "send", "pages": 1}}},
                                _fax_done("send"),
                                runs_for=10.0, copy=("document", "identity")),
    "calling.receive_fax": Flow(EVENT_CALL_FAX,        {"fax": {"type": "page", "params": {"direction": "receive", "pages": 1}}},
                                _fax_done("receive"),
                                runs_for=10.0),
})
# fmt: on


@dataclass(frozen=True)
class Notice:
    """A command answered with 200 and followed by one event at once."""

    event_type: str
    fields: JSONDict
    copy: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)  # event field -> request field


# fmt: off
NOTICES: Mapping[str, Notice] = MappingProxyType({
    "calling.hold":             Notice(EVENT_CALL_HOLD,     {"state": "hold"}),
    "calling.unhold":           Notice(EVENT_CALL_HOLD,     {"state": "unhold"}),
    "calling.denoise":          Notice(EVENT_CALL_DENOISE,  {"denoised": True}),
    "calling.denoise.stop":     Notice(EVENT_CALL_DENOISE,  {"denoised": False}),
    "calling.echo":             Notice(EVENT_CALL_ECHO,     {"state": "finished"}),
    "calling.refer":            Notice(EVENT_CALL_REFER,    {"state": "success", "sip_refer_response_code": "202",
                                                             "sip_notify_response_code": "200"}, copy=("device",)),
    "calling.join_conference":  Notice(EVENT_CONFERENCE,    {"status": "joined"}, copy=("name",)),
    "calling.leave_conference": Notice(EVENT_CONFERENCE,    {"status": "left"}, copy=("conference_id",)),
    "calling.queue.enter":      Notice(EVENT_CALL_QUEUE,    {"status": "entered", "position": 1}, copy=("queue_name", "queue_id")),
    "calling.queue.leave":      Notice(EVENT_CALL_QUEUE,    {"status": "left"}, copy=("queue_name", "queue_id")),
    "calling.send_digits":      Notice(EVENT_CALL_SEND_DIGITS, {"state": "finished"}, copy=("digits",)),
})
# fmt: on

# Fields the server refuses a command without (besides node_id/call_id), with a 400.
# fmt: off
REQUIRED: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "calling.connect":          ("devices",),
    "calling.send_digits":      ("digits",),
    "calling.refer":            ("device",),
    "calling.transfer":         ("dest",),
    "calling.join_conference":  ("name",),
    "calling.leave_conference": ("conference_id",),
    "calling.live_transcribe":  ("action",),
    "calling.live_translate":   ("action",),
    "calling.join_room":        ("name",),
    "calling.queue.enter":      ("queue_name",),
    "calling.queue.leave":      ("queue_name",),
    "calling.bind_digit":       ("digits", "bind_method"),
    "calling.play":             ("play",),
    "calling.record":           ("record",),
    "calling.play_and_collect": ("play", "collect"),
    "calling.detect":           ("detect",),
    "calling.tap":              ("tap", "device"),
    "calling.stream":           ("url",),
    "calling.pay":              ("payment_connector_url",),
    "calling.send_fax":         ("document",),
})
# fmt: on

# Fields the server checks the form of: method -> (field, pattern, what it must be).
PATTERNS: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "calling.send_digits": ("digits", r"[0-9*#A-DwW]+", "DTMF keys (0-9 * # A-D, w/W to pause)"),
    }
)

# How the transcript names what the app did, for commands without their own wording.
VERBS: Mapping[str, str] = MappingProxyType(
    {
        "calling.hold": "put the call on hold",
        "calling.unhold": "took the call off hold",
        "calling.denoise": "turned noise reduction on",
        "calling.denoise.stop": "turned noise reduction off",
        "calling.tap": "started tapping the media",
        "calling.stream": "started streaming the media",
        "calling.transcribe": "started transcribing",
        "calling.ai": "started an AI agent",
        "calling.pay": "started collecting a payment",
        "calling.send_fax": "started sending a fax",
        "calling.receive_fax": "started receiving a fax",
        "calling.send_digits": "sent digits",
        "calling.refer": "referred the call",
        "calling.join_conference": "joined a conference",
        "calling.leave_conference": "left a conference",
        "calling.queue.enter": "put the call in a queue",
        "calling.queue.leave": "took the call out of a queue",
        "calling.echo": "ran an echo test",
    }
)


def media_seconds(media: Any) -> float:
    """How long a ``play`` list lasts, in simulated seconds."""
    total = 0.0
    for item in media if isinstance(media, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        params = _params(item)
        if kind == "tts":
            words = len(str(params.get("text", "")).split())
            total += max(MIN_TTS_SECONDS, words / SPEAKING_RATE)
        elif kind == "silence":
            total += _seconds(params.get("duration"), 1.0)
        elif kind == "ringtone":
            total += _seconds(params.get("duration"), RINGTONE_SECONDS)
        else:
            total += AUDIO_FILE_SECONDS
    return total


def describe_media(media: Any) -> str:
    """``tts "Welcome to Acme"`` style text for the transcript."""
    parts = []
    for item in media if isinstance(media, list) else []:
        if not isinstance(item, dict):
            continue
        params = _params(item)
        kind = item.get("type")
        if kind == "tts":
            parts.append(f'"{params.get("text", "")}"')
        elif kind == "audio":
            parts.append(f"audio {params.get('url', '?')}")
        elif kind == "silence":
            parts.append(f"{_seconds(params.get('duration'), 1.0):g} s of silence")
        else:
            parts.append(str(kind))
    return ", ".join(parts) or "nothing"


def tts_texts(media: Any) -> list[str]:
    """The texts of the TTS items of a ``play`` list."""
    return [
        str(item["params"].get("text", ""))
        for item in (media if isinstance(media, list) else [])
        if isinstance(item, dict) and item.get("type") == "tts" and isinstance(item.get("params"), dict)
    ]


def speaking_seconds(text: str) -> float:
    return INPUT_DELAY + len(text.split()) / SPEAKING_RATE


def pressing_seconds(digits: str) -> float:
    return INPUT_DELAY + SECONDS_PER_DIGIT * len(digits)


def _params(item: JSONDict) -> JSONDict:
    params = item.get("params")
    return params if isinstance(params, dict) else {}


def _seconds(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return default
    return float(value)
