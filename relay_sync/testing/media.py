"""Operations on an up call, as the emulator runs them: play, record,
play_and_collect, collect, detect, and the time-driven flows of
``flows.FLOWS`` (tap, stream, pay, fax...), with their pause/resume/stop.

Each handler runs on a connection thread under the network lock, registers
the operation under its ``control_id`` and returns a ``Reply`` whose
``then`` sends the first event and arms the timer for the next, so a
leg's events always leave in order. Timers fire on the network thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..constants import (
    EVENT_CALL_COLLECT,
    EVENT_CALL_DETECT,
    EVENT_CALL_PLAY,
    EVENT_CALL_RECORD,
)
from ..rpc import JSONDict
from . import flows
from .flows import FLOWS, Flow
from .legs import APP, NETWORK, PHONE, Leg, Operation
from .network import Network
from .recordings import RecordingStore, wav_size
from .server import Reply

log = logging.getLogger(__name__)

Handler = Callable[[Leg, JSONDict], "Reply | JSONDict"]

CONFIDENCE = 0.93  # of every simulated speech result
PAUSE_BEHAVIORS = frozenset({"silence", "skip"})


def ok(message: str = "OK", **fields: Any) -> JSONDict:
    return {"code": "200", "message": message, **fields}


def refuse(code: str, message: str) -> JSONDict:
    return {"code": code, "message": message}


class MediaOperations:
    """The play/record/collect/detect/flow commands, keyed by method (see :meth:`handlers`)."""

    def __init__(self, net: Network, recordings: RecordingStore, base_url: Callable[[], str]) -> None:
        self.net = net
        self.recordings = recordings
        self._base_url = base_url

    def handlers(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "calling.play": self.play,
            "calling.record": self.record,
            "calling.play_and_collect": self.play_and_collect,
            "calling.collect": self.collect,
            "calling.detect": self.detect,
            "calling.collect.start_input_timers": self.start_input_timers,
        }
        for method in ("calling.play", "calling.record", "calling.play_and_collect"):
            table[f"{method}.pause"] = self.pause
            table[f"{method}.resume"] = self.resume
        for method in ("calling.play", "calling.play_and_collect"):
            table[f"{method}.volume"] = self.volume
        stoppable = ("calling.play", "calling.record", "calling.play_and_collect", "calling.collect", "calling.detect")
        for method in stoppable:
            table[f"{method}.stop"] = self.stop
        for method, flow in FLOWS.items():
            table[method] = self._flow_starter(flow)
            table[f"{method}.stop"] = self.stop
        return table

    # -- plumbing -------------------------------------------------------------

    def _begin(self, leg: Leg, method: str, params: JSONDict) -> Operation | JSONDict:
        control_id = params.get("control_id")
        if not isinstance(control_id, str) or not control_id:
            return refuse("400", f"{method} needs a control_id")
        operation = Operation(control_id, method, params)
        leg.operations[control_id] = operation
        return operation

    def _emit(self, leg: Leg, operation: Operation, event_type: str, fields: JSONDict) -> None:
        self.net.emit(leg, event_type, {"control_id": operation.control_id, **fields})

    def _while_up(self, leg: Leg, work: Callable[[], None]) -> Callable[[], None]:
        """``work`` to run after the answer went out, under the lock, unless the call ended
        meanwhile (its ``ended`` went out first: no ``playing`` or ``recording`` may follow it)."""

        def run() -> None:
            with self.net.lock:
                if not leg.gone:
                    work()

        return run

    def _arm(self, leg: Leg, operation: Operation, simulated_seconds: float, work: Callable[[], None]) -> None:
        """Run ``work`` (under the lock) after ``simulated_seconds``, unless the operation or leg ended first."""

        def fire() -> None:
            with self.net.lock:
                if leg.operations.get(operation.control_id) is operation and not leg.gone:
                    operation.timer = None
                    work()

        operation.cancel_timer()
        operation.on_due = work
        operation.due = time.monotonic() + self.net.scheduler.real(simulated_seconds)
        operation.timer = self.net.scheduler.after(simulated_seconds, fire)

    def _end(self, leg: Leg, operation: Operation) -> None:
        operation.cancel_timer()
        if leg.operations.get(operation.control_id) is operation:
            del leg.operations[operation.control_id]

    def _operation(self, leg: Leg, params: JSONDict) -> Operation | None:
        control_id = params.get("control_id")
        return leg.operations.get(control_id) if isinstance(control_id, str) else None

    # -- shared sub-commands --------------------------------------------------------

    def stop(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        operation = self._operation(leg, params)
        if operation is None:
            return refuse("409", "no running operation with this control_id")
        self._end(leg, operation)
        self.net.note(APP, f"stopped {operation.method.split('.', 1)[1]}", leg)
        return Reply(ok("Stopped"), self._while_up(leg, operation.on_stop or (lambda: None)))

    def pause(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        operation = self._operation(leg, params)
        if operation is None:
            return refuse("409", "no running operation with this control_id")
        behavior = params.get("behavior")
        if behavior is not None and behavior not in PAUSE_BEHAVIORS:
            return refuse("400", f"pause behavior must be one of {sorted(PAUSE_BEHAVIORS)}, not {behavior!r}")
        if operation.state == "paused":
            return ok("Paused")
        if operation.method == "calling.play_and_collect" and operation.state != "playing":
            return ok("Paused")  # the prompt is over: only the collect runs, and it has nothing to pause
        remaining = max(0.0, operation.due - time.monotonic()) / self.net.scheduler.time_factor
        operation.cancel_timer()
        operation.remaining = remaining
        operation.state = "paused"
        event_type = EVENT_CALL_RECORD if operation.method == "calling.record" else EVENT_CALL_PLAY
        return Reply(
            ok("Paused"), self._while_up(leg, lambda: self._emit(leg, operation, event_type, {"state": "paused"}))
        )

    def resume(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        operation = self._operation(leg, params)
        if operation is None:
            return refuse("409", "no running operation with this control_id")
        if operation.state != "paused":
            return ok("Resumed")
        playing = operation.method != "calling.record"
        operation.state = "playing" if playing else "recording"
        event_type = EVENT_CALL_PLAY if playing else EVENT_CALL_RECORD

        def resume() -> None:
            self._emit(leg, operation, event_type, {"state": operation.state})
            if operation.on_due is not None:
                self._arm(leg, operation, operation.remaining, operation.on_due)

        return Reply(ok("Resumed"), self._while_up(leg, resume))

    def volume(self, leg: Leg, params: JSONDict) -> JSONDict:
        if self._operation(leg, params) is None:
            return refuse("409", "no running operation with this control_id")
        return ok("Volume changed")

    # -- play -------------------------------------------------------------------

    def play(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        media = params.get("play")
        if not isinstance(media, list) or not media:
            return refuse("400", "calling.play needs a non-empty play list")
        operation = self._begin(leg, "calling.play", params)
        if isinstance(operation, dict):
            return operation
        loop = params.get("loop")
        forever = loop == 0
        seconds = flows.media_seconds(media) * (loop if isinstance(loop, int) and loop > 1 else 1)
        self.net.note(
            APP, f"played {flows.describe_media(media)}", leg, kind="calling.play", spoken=tuple(flows.tts_texts(media))
        )

        def finished() -> None:
            self._end(leg, operation)
            self._emit(leg, operation, EVENT_CALL_PLAY, {"state": "finished"})

        def start() -> None:
            operation.state = "playing"
            self._emit(leg, operation, EVENT_CALL_PLAY, {"state": "playing"})
            if not forever:
                self._arm(leg, operation, seconds, finished)

        operation.on_stop = lambda: self._emit(leg, operation, EVENT_CALL_PLAY, {"state": "finished"})
        return Reply(ok("Playing"), self._while_up(leg, start))

    # -- record -------------------------------------------------------------------

    def record(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        record = params.get("record")
        if not isinstance(record, dict):
            return refuse("400", "calling.record needs a record object such as {'audio': {}}")
        operation = self._begin(leg, "calling.record", params)
        if isinstance(operation, dict):
            return operation
        audio = record.get("audio")
        audio = audio if isinstance(audio, dict) else {}
        speaks = leg.line.phone.message_seconds
        initial_timeout = _seconds(audio.get("initial_timeout"), flows.DEFAULT_INITIAL_TIMEOUT)
        operation.finish_on_hangup = True
        self.net.note(APP, "started recording", leg, kind="calling.record")

        def result(seconds: float) -> JSONDict:
            recording_id = self.recordings.add(seconds)
            url = f"{self._base_url()}/recordings/{recording_id}.wav"
            self.net.note(NETWORK, f"recorded {seconds:.1f} s: {url}", leg, kind="recording")
            return {
                "state": "finished",
                "url": url,
                "duration": round(seconds, 2),
                "size": wav_size(seconds),
                "record": record,
            }

        def elapsed() -> float:
            simulated = (time.monotonic() - operation.started) / self.net.scheduler.time_factor
            return min(speaks, simulated) if speaks > 0 else 0.0

        def finished() -> None:
            self._end(leg, operation)
            self._emit(leg, operation, EVENT_CALL_RECORD, result(speaks))

        def no_input() -> None:
            self._end(leg, operation)
            self.net.note(NETWORK, "recording heard nothing (no_input)", leg)
            self._emit(leg, operation, EVENT_CALL_RECORD, {"state": "no_input", "record": record})

        def start() -> None:
            operation.state = "recording"
            operation.started = time.monotonic()
            self._emit(leg, operation, EVENT_CALL_RECORD, {"state": "recording", "record": record})
            if speaks > 0:
                self.net.note(PHONE, f"speaks for {speaks:g} s", leg)
                self._arm(leg, operation, speaks, finished)
            else:
                self._arm(leg, operation, initial_timeout, no_input)

        operation.on_stop = lambda: self._emit(leg, operation, EVENT_CALL_RECORD, result(elapsed()))
        return Reply(ok("Recording"), self._while_up(leg, start))

    # -- collect ---------------------------------------------------------------

    def play_and_collect(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        media, collect = params.get("play"), params.get("collect")
        if not isinstance(media, list) or not media or not isinstance(collect, dict):
            return refuse("400", "calling.play_and_collect needs a play list and a collect object")
        operation = self._begin(leg, "calling.play_and_collect", params)
        if isinstance(operation, dict):
            return operation
        self.net.note(
            APP,
            f"played {flows.describe_media(media)} and waits for input",
            leg,
            kind="calling.play_and_collect",
            spoken=tuple(flows.tts_texts(media)),
        )
        initial_timeout = _seconds(collect.get("initial_timeout"), flows.DEFAULT_INITIAL_TIMEOUT)

        def prompt_done() -> None:
            operation.state = "collecting"
            self._emit(leg, operation, EVENT_CALL_PLAY, {"state": "finished"})
            self._gather(leg, operation, collect, initial_timeout, continuous=False)

        def start() -> None:
            operation.state = "playing"
            self._emit(leg, operation, EVENT_CALL_PLAY, {"state": "playing"})
            self._arm(leg, operation, flows.media_seconds(media), prompt_done)

        operation.on_stop = lambda: self._emit(leg, operation, EVENT_CALL_COLLECT, {"state": "finished", "final": True})
        return Reply(ok("Playing and collecting"), self._while_up(leg, start))

    def collect(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        if not isinstance(params.get("digits"), dict) and not isinstance(params.get("speech"), dict):
            return refuse("400", "calling.collect needs digits and/or speech settings")
        operation = self._begin(leg, "calling.collect", params)
        if isinstance(operation, dict):
            return operation
        operation.waiting_for_timers = params.get("start_input_timers") is False
        initial_timeout = _seconds(params.get("initial_timeout"), flows.DEFAULT_INITIAL_TIMEOUT)
        self.net.note(APP, "waits for input", leg, kind="calling.collect")

        def start() -> None:
            operation.state = "collecting"
            self._gather(leg, operation, params, initial_timeout, continuous=params.get("continuous") is True)

        operation.on_stop = lambda: self._emit(leg, operation, EVENT_CALL_COLLECT, {"state": "finished", "final": True})
        return Reply(ok("Collecting"), self._while_up(leg, start))

    def start_input_timers(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        operation = self._operation(leg, params)
        if operation is None:
            return refuse("409", "no running collect with this control_id")
        if not operation.waiting_for_timers:
            return ok("Timers started")
        operation.waiting_for_timers = False
        if operation.timer is not None or operation.on_due is None:
            return ok("Timers started")  # input is already on its way
        no_input = operation.on_due
        return Reply(
            ok("Timers started"),
            self._while_up(leg, lambda: self._arm(leg, operation, operation.remaining, no_input)),
        )

    def _gather(
        self, leg: Leg, operation: Operation, settings: JSONDict, initial_timeout: float, *, continuous: bool
    ) -> None:
        """What the phone presses or says next, sent as collect events (network lock held)."""
        result, seconds, action = self._take_input(leg, settings)
        collecting = {"state": "collecting"}

        def no_input() -> None:
            self._end(leg, operation)
            self.net.note(PHONE, "gave no input", leg)
            self._emit(
                leg, operation, EVENT_CALL_COLLECT, {"state": "no_input", "final": True, "result": {"type": "no_input"}}
            )

        if result is None:
            if continuous:
                return  # keeps listening until stopped or the call ends
            if operation.waiting_for_timers:
                operation.on_due, operation.remaining = no_input, initial_timeout
                return
            self._arm(leg, operation, initial_timeout, no_input)
            return

        if settings.get("send_start_of_input") is True:
            self._emit(
                leg, operation, EVENT_CALL_COLLECT, {**collecting, "final": False, "result": {"type": "start_of_input"}}
            )

        def heard() -> None:
            self.net.note(PHONE, action, leg, kind="input")
            if continuous:
                self._emit(leg, operation, EVENT_CALL_COLLECT, {**collecting, "final": True, "result": result})
                self._gather(leg, operation, settings, initial_timeout, continuous=True)
                return
            self._end(leg, operation)
            self._emit(leg, operation, EVENT_CALL_COLLECT, {"state": "finished", "final": True, "result": result})

        self._arm(leg, operation, seconds, heard)

    def _take_input(self, leg: Leg, settings: JSONDict) -> tuple[JSONDict | None, float, str]:
        digits_settings, speech_settings = settings.get("digits"), settings.get("speech")
        if isinstance(digits_settings, dict):
            pressed = leg.line.next_digits()
            if pressed is not None:
                return _digit_result(pressed, digits_settings), flows.pressing_seconds(pressed), f"pressed {pressed}"
        if isinstance(speech_settings, dict):
            said = leg.line.next_speech()
            if said is not None:
                result = {"type": "speech", "params": {"text": said, "confidence": CONFIDENCE}}
                return result, flows.speaking_seconds(said), f'said "{said}"'
        return None, 0.0, ""

    # -- detect ---------------------------------------------------------------

    def detect(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        detect = params.get("detect")
        kind = detect.get("type") if isinstance(detect, dict) else None
        if kind not in ("machine", "fax", "digit"):
            return refuse("400", "calling.detect needs detect.type machine, fax or digit")
        operation = self._begin(leg, "calling.detect", params)
        if isinstance(operation, dict):
            return operation
        timeout = _seconds(params.get("timeout"), flows.DEFAULT_DETECT_TIMEOUT)
        phone = leg.line.phone
        self.net.note(APP, f"started {kind} detection", leg, kind="calling.detect")

        def report(event: str, then: Callable[[], None] | None = None, **details: Any) -> Callable[[], None]:
            def send() -> None:
                if then is None:
                    self._end(leg, operation)
                self.net.note(NETWORK, f"{kind} detector: {event}", leg)
                verdict = {"type": kind, "params": {"event": event, **details}}
                self._emit(leg, operation, EVENT_CALL_DETECT, {"detect": verdict})
                if then is not None:
                    self._arm(leg, operation, flows.GREETING_SECONDS, then)

            return send

        def start() -> None:
            if kind == "machine" and phone.machine:
                # A machine plays its greeting, then beeps: READY with beep=true is when a message can start.
                beeped = report("READY", beep=True)
                self._arm(leg, operation, flows.DETECT_SECONDS, report("MACHINE", then=beeped))
            elif kind == "machine":
                self._arm(leg, operation, flows.DETECT_SECONDS, report("HUMAN"))
            elif kind == "fax" and phone.fax:
                self._arm(leg, operation, flows.DETECT_SECONDS, report("CED"))
            elif kind == "digit" and leg.line.digits:
                pressed = leg.line.next_digits() or ""
                self._arm(leg, operation, flows.pressing_seconds(pressed[:1]), report(pressed[:1]))
            else:
                self._arm(leg, operation, timeout, report("finished"))

        operation.on_stop = lambda: self._emit(
            leg, operation, EVENT_CALL_DETECT, {"detect": {"type": kind, "params": {"event": "finished"}}}
        )
        return Reply(ok("Detecting"), self._while_up(leg, start))

    # -- time-driven flows ------------------------------------------------------------

    def _flow_starter(self, flow: Flow) -> Handler:
        def start_flow(leg: Leg, params: JSONDict) -> Reply | JSONDict:
            method = next(m for m, f in FLOWS.items() if f is flow)
            operation = self._begin(leg, method, params)
            if isinstance(operation, dict):
                return operation
            echoed = {name: params[name] for name in flow.copy if name in params}
            self.net.note(APP, flows.VERBS.get(method, method), leg, kind=method)

            def finished() -> None:
                self._end(leg, operation)
                self._emit(leg, operation, flow.event_type, {**echoed, **flow.finished})

            def start() -> None:
                if flow.started is not None:
                    self._emit(leg, operation, flow.event_type, {**echoed, **flow.started})
                if flow.runs_for is not None:
                    self._arm(leg, operation, flow.runs_for, finished)

            operation.on_stop = lambda: self._emit(leg, operation, flow.event_type, {**echoed, **flow.finished})
            return Reply(ok("OK"), self._while_up(leg, start))

        return start_flow

    # -- the call ended -------------------------------------------------------------

    def call_ended(self, leg: Leg) -> None:
        """Stop what runs on ``leg``; a recording still reports what it captured (network lock held)."""
        for operation in list(leg.operations.values()):
            operation.cancel_timer()
            if operation.finish_on_hangup and operation.on_stop is not None:
                operation.on_stop()
        leg.operations.clear()


def _digit_result(pressed: str, settings: JSONDict) -> JSONDict:
    limit = settings.get("max")
    limit = limit if isinstance(limit, int) and limit > 0 else len(pressed)
    terminators = settings.get("terminators")
    terminators = terminators if isinstance(terminators, str) else ""
    digits, terminator = "", None
    for key in pressed:
        if key in terminators:
            terminator = key
            break
        digits += key
        if len(digits) >= limit:
            break
    params: JSONDict = {"digits": digits}
    if terminator is not None:
        params["terminator"] = terminator
    return {"type": "digit", "params": params}


def _seconds(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return default
    return float(value)
