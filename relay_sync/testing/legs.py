"""The emulator's record of calls: ``Leg`` (one call leg and what runs on
it), ``Transcript`` (readable lines about what happened), and
``CallHandle``, the user's view of an inbound call from ``place_call``.

Legs are changed only under the network lock (``calling.py``); handles read
them and block on their events.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..rpc import JSONDict
from .clock import Scheduled
from .phones import PhoneLine

# Actors in the transcript.
APP = "app"  # the SDK, through its commands
PHONE = "phone"  # a simulated phone: presses, speaks, hangs up
NETWORK = "network"  # routing, ringing, delivery

MAX_TRANSCRIPT = 10_000


@dataclass(frozen=True)
class TranscriptEntry:
    """One line of a transcript: ``at`` seconds after the emulator started, which
    ``actor`` (``app``, ``phone`` or ``network``) did what (``text``).

    Not a ``str``: ``str(entry)`` is the readable line, for example
    ``[  1.250] phone   pressed 1``. Print a whole transcript with
    ``print("\\n".join(map(str, emulator.transcript)))``.
    """

    at: float
    actor: str
    text: str
    call_id: str | None = None
    kind: str = ""  # the command or happening ("calling.play", "sms", ...)
    spoken: tuple[str, ...] = ()  # TTS texts of a play

    def __str__(self) -> str:
        return f"[{self.at:7.3f}] {self.actor:<7} {self.text}"


class Transcript:
    """A bounded, thread-safe list of entries, with listeners (run in the writer's thread)."""

    def __init__(self, started: float) -> None:
        self._started = started
        self._lock = threading.Lock()
        self._entries: deque[TranscriptEntry] = deque(maxlen=MAX_TRANSCRIPT)
        self._listeners: list[Callable[[TranscriptEntry], None]] = []

    def add(
        self, actor: str, text: str, call_id: str | None = None, *, kind: str = "", spoken: tuple[str, ...] = ()
    ) -> TranscriptEntry:
        entry = TranscriptEntry(time.monotonic() - self._started, actor, text, call_id, kind, spoken)
        with self._lock:
            self._entries.append(entry)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(entry)
        return entry

    def listen(self, listener: Callable[[TranscriptEntry], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def entries(self, call_id: str | None = None) -> list[TranscriptEntry]:
        with self._lock:
            return [e for e in self._entries if call_id is None or e.call_id == call_id]


@dataclass
class Operation:
    """A running play, record, collect, detect or flow on a leg, by control_id."""

    control_id: str
    method: str
    params: JSONDict
    timer: Scheduled | None = None
    state: str = "started"
    due: float = 0.0  # monotonic time its timer fires
    remaining: float = 0.0  # simulated seconds left while paused
    started: float = field(default_factory=time.monotonic)
    waiting_for_timers: bool = False  # a collect started with start_input_timers=False
    on_due: Callable[[], None] | None = None  # what its timer does (kept for pause/resume)
    on_stop: Callable[[], None] | None = None  # sends its final event when stopped
    finish_on_hangup: bool = False  # a recording still reports its result when the call ends

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass
class DigitBinding:
    """A ``calling.bind_digit``: pressing ``digits`` runs ``method`` with ``params``."""

    digits: str
    method: str
    params: JSONDict
    realm: str | None = None
    triggers_left: int | None = None  # None: no limit


@dataclass
class Leg:
    """One call leg as the simulated network sees it."""

    direction: str  # "inbound" or "outbound"
    line: PhoneLine  # the far end: the caller, or the phone dialed
    device: JSONDict
    context: str | None = None
    tag: str | None = None
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    node_id: str = field(default_factory=lambda: f"emulator-node-{uuid.uuid4().hex[:8]}")
    segment_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "created"
    owner: str | None = None  # the protocol controlling it
    passed_by: set[str] = field(default_factory=set)
    operations: dict[str, Operation] = field(default_factory=dict)
    peer: Leg | None = None  # the leg it is connected to
    timers: list[Scheduled] = field(default_factory=list)
    end_reason: str | None = None
    answered: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    silent: bool = False  # a ringing peer leg of calling.connect: no events of its own yet
    connected_party: bool = False  # dialed by calling.connect: when it leaves, the call goes on
    bindings: list[DigitBinding] = field(default_factory=list)
    room: str | None = None  # the video room it joined
    agent: str | None = None  # the AI agent running on it ("ai", "amazon_bedrock"), if any
    agent_on_hold: bool = False
    live: set[str] = field(default_factory=set)  # live_transcribe / live_translate running

    @property
    def gone(self) -> bool:
        return self.state in ("ending", "ended")

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        for operation in self.operations.values():
            operation.cancel_timer()

    def state_params(self) -> JSONDict:
        params: JSONDict = {
            "call_id": self.call_id,
            "node_id": self.node_id,
            "tag": self.tag,
            "device": self.device,
            "direction": self.direction,
            "call_state": self.state,
            "segment_id": self.segment_id,
        }
        if self.context is not None:
            params["context"] = self.context
        if self.end_reason is not None and self.state == "ended":
            params["end_reason"] = self.end_reason
        return params


class CallHandle:
    """An inbound call placed with ``emulator.place_call()``, as the caller sees it.

    ``transcript`` lists what happened on the call (what the app played and
    collected, what the phone pressed...); ``wait_ended()`` blocks until the
    call is over and returns its end reason.
    """

    def __init__(
        self,
        leg: Leg,
        transcript: Transcript,
        hang_up: Callable[[Leg], None],
        press: Callable[[Leg, str], None],
    ) -> None:
        self._leg = leg
        self._transcript = transcript
        self._hang_up = hang_up
        self._press = press

    @property
    def call_id(self) -> str:
        return self._leg.call_id

    @property
    def state(self) -> str:
        return self._leg.state

    @property
    def end_reason(self) -> str | None:
        return self._leg.end_reason

    @property
    def context(self) -> str | None:
        return self._leg.context

    @property
    def from_number(self) -> str:
        return str(self._leg.device["params"].get("from_number"))

    @property
    def to_number(self) -> str:
        return str(self._leg.device["params"].get("to_number"))

    @property
    def transcript(self) -> list[TranscriptEntry]:
        return self._transcript.entries(self._leg.call_id)

    def lines(self) -> list[str]:
        """The transcript as text lines (without times)."""
        return [f"{e.actor}: {e.text}" for e in self.transcript]

    def said(self) -> list[str]:
        """The TTS texts the app played on this call, in order."""
        return [text for e in self.transcript for text in e.spoken]

    def wait_answered(self, timeout: float | None = None) -> None:
        if not self._leg.answered.wait(timeout):
            raise TimeoutError(f"call {self.call_id} was not answered within {timeout} s")

    def wait_ended(self, timeout: float | None = None) -> str:
        """Block until the call ended; returns the end reason (``hangup``, ``noAnswer``...)."""
        if not self._leg.ended.wait(timeout):
            raise TimeoutError(f"call {self.call_id} did not end within {timeout} s (state {self.state})")
        return self._leg.end_reason or "hangup"

    def hangup(self) -> None:
        """The caller hangs up."""
        self._hang_up(self._leg)

    def press(self, digits: str) -> None:
        """The caller presses ``digits`` now; a ``bind_digit`` binding for them runs its method."""
        self._press(self._leg, digits)

    def __repr__(self) -> str:
        return f"<CallHandle {self.call_id} {self.from_number} -> {self.to_number} {self.state}>"
