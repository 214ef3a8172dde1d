"""``relay-sync demo``: a complete IVR run end to end against an in-process
emulator, printed as a timestamped transcript.

Two callers ring the IVR. It answers, plays a menu and collects a digit;
caller one presses 1 and is connected to an agent, caller two presses 2
and leaves a voicemail, which is recorded and downloaded over REST. Each
caller gets a confirmation SMS whose delivery is awaited. Finally a task is
delivered over REST to the running client. Everything the app does is plain
relay_sync code, the same as against a real SignalWire space.

The app's handlers run on the client's handler pool; the demo's own thread
places the calls and waits for each step.
"""

from __future__ import annotations

import secrets
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TextIO

from .. import rest
from ..client import RelayClient
from ..events import TaskEvent
from .emulator import RelayEmulator
from .legs import TranscriptEntry

CONTEXT = "ivr"
IVR_NUMBER = "+15550100"
SALES_CALLER = "+15550111"
VOICEMAIL_CALLER = "+15550122"
AGENT = "+15550199"

MENU = "Thanks for calling Acme. Press 1 for sales, or 2 to leave a message."
STEP_TIMEOUT = 10.0  # real seconds any one step may take before the demo gives up


class DemoError(RuntimeError):
    """A step of the demo did not happen as it should."""


class Printer:
    """Timestamped lines on ``out``, from any thread."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._started = time.monotonic()

    def line(self, actor: str, text: str) -> None:
        with self._lock:
            self._out.write(f"[{time.monotonic() - self._started:7.3f}] {actor:<8} {text}\n")
            self._out.flush()

    def entry(self, entry: TranscriptEntry) -> None:
        self.line(entry.actor, entry.text)

    def plain(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()


@dataclass
class Tally:
    """What the IVR got done, for the closing summary."""

    calls: int = 0
    connected: int = 0
    voicemails: int = 0
    sms_delivered: int = 0
    tasks: list[Any] = field(default_factory=list)


class AcmeIvr:
    """The demo app: an IVR written against the public relay_sync API."""

    def __init__(self, client: RelayClient, emulator: RelayEmulator, printer: Printer) -> None:
        self.client = client
        self.emulator = emulator
        self.say = printer.line
        self.tally = Tally()
        self.task_arrived = threading.Event()
        self._outcomes: list[Future[None]] = []
        self._outcomes_changed = threading.Condition()
        client.on_call(self.on_call)
        client.on_task(self.on_task)

    # -- handlers (the client's handler pool) -----------------------------------

    def on_call(self, call: Any) -> None:
        outcome: Future[None] = Future()
        with self._outcomes_changed:
            self._outcomes.append(outcome)
            self._outcomes_changed.notify_all()
        try:
            self.handle(call)
            outcome.set_result(None)
        except BaseException as error:  # noqa: BLE001  # re-raised on the demo's thread by outcome()
            outcome.set_exception(error)

    def handle(self, call: Any) -> None:
        caller = call.device["params"]["from_number"]
        self.say("ivr", f"incoming call from {caller}")
        call.answer()
        self.tally.calls += 1
        menu = call.play_and_collect(
            [{"type": "tts", "params": {"text": MENU}}], {"digits": {"max": 1, "digit_timeout": 5}}
        ).wait(STEP_TIMEOUT)
        digits = menu.result.get("params", {}).get("digits") if menu.result_type == "digit" else None
        self.say("ivr", f"caller chose {digits!r}")
        if digits == "1":
            self.to_sales(call)
            body = "Thanks for calling Acme. Our sales team will email you a quote today."
        else:
            self.take_message(call)
            body = "Thanks for your message. Acme will call you back within one business day."
        call.hangup()
        self.confirm_by_sms(caller, body)

    def to_sales(self, call: Any) -> None:
        call.play([{"type": "tts", "params": {"text": "Connecting you to sales."}}]).wait(STEP_TIMEOUT)
        call.connect([[{"type": "phone", "params": {"to_number": AGENT, "from_number": IVR_NUMBER}}]])
        call.wait_for("calling.call.connect", lambda e: e.connect_state == "connected", STEP_TIMEOUT)
        self.say("ivr", f"caller is talking to the agent at {AGENT}")
        self.tally.connected += 1
        call.wait_for("calling.call.connect", lambda e: e.connect_state == "disconnected", STEP_TIMEOUT)
        self.say("ivr", "the agent finished the call")

    def take_message(self, call: Any) -> None:
        call.play([{"type": "tts", "params": {"text": "Please leave a message after the tone."}}]).wait(STEP_TIMEOUT)
        recording = call.record({"beep": True, "end_silence_timeout": 2}).wait(STEP_TIMEOUT)
        if recording.state != "finished" or not recording.url:
            raise DemoError(f"the voicemail was not recorded (state {recording.state})")
        audio = rest.download_recording(recording.url, project=self.emulator.project, token=self.emulator.token)
        self.say("ivr", f"voicemail saved: {recording.duration:g} s, {len(audio)} bytes of WAV audio")
        self.tally.voicemails += 1
        call.play([{"type": "tts", "params": {"text": "Thank you. Goodbye."}}]).wait(STEP_TIMEOUT)

    def confirm_by_sms(self, caller: str, body: str) -> None:
        message = self.client.send_message(to_number=caller, from_number=IVR_NUMBER, body=body, context=CONTEXT)
        final = message.wait(STEP_TIMEOUT)
        self.say("ivr", f"confirmation SMS to {caller}: {final.state}")
        if final.state != "delivered":
            raise DemoError(f"the confirmation SMS to {caller} was {final.state}")
        self.tally.sms_delivered += 1

    def on_task(self, task: TaskEvent) -> None:
        self.say("ivr", f"task received on context {task.context!r}: {task.message}")
        self.tally.tasks.append(task.message)
        self.task_arrived.set()

    # -- the demo's thread ----------------------------------------------------------

    def outcome(self, index: int) -> None:
        """Wait for the ``index``-th call's handler to finish; re-raise what it raised."""
        with self._outcomes_changed:
            if not self._outcomes_changed.wait_for(lambda: len(self._outcomes) > index, STEP_TIMEOUT):
                raise DemoError("the call never reached the IVR")
            outcome = self._outcomes[index]
        outcome.result(STEP_TIMEOUT)


def run(out: TextIO = sys.stdout, *, time_factor: float = 0.05) -> int:
    """Run the demo, printing its transcript on ``out``; returns the exit status (0: every step worked)."""
    printer = Printer(out)
    speedup = f"{1 / time_factor:g}x faster" if time_factor < 1 else "in real time"
    printer.plain(f"relay-sync demo: an IVR against a local RELAY emulator (simulated time runs {speedup})")
    with RelayEmulator(project="demo", token=secrets.token_urlsafe(12), time_factor=time_factor) as emulator:
        printer.plain("(phone, network: the simulated world; app: the commands the app sent; ivr: the app's own log)")
        printer.line("emulator", f"listening on {emulator.relay_host} (WebSocket and REST)")
        emulator.phone(SALES_CALLER, digits="1", context=CONTEXT)
        emulator.phone(VOICEMAIL_CALLER, digits="2", message_seconds=4)
        emulator.phone(AGENT, after=2, hangup_after=6)
        emulator.on_transcript(printer.entry)
        with emulator.client(contexts=[CONTEXT]) as client:
            ivr = AcmeIvr(client, emulator, printer)
            printer.line("ivr", f"connected; taking calls on context {CONTEXT!r}")
            for index, caller in enumerate((SALES_CALLER, VOICEMAIL_CALLER)):
                call = emulator.place_call(IVR_NUMBER, caller, context=CONTEXT)
                reason = call.wait_ended(STEP_TIMEOUT)
                ivr.outcome(index)
                if reason != "hangup":
                    raise DemoError(f"the call from {caller} ended with {reason}")
            printer.line("ivr", "posting a task over REST for the running client")
            rest.deliver_task(
                CONTEXT,
                {"action": "call_back", "number": VOICEMAIL_CALLER},
                project=emulator.project,
                token=emulator.token,
                host=emulator.relay_host,
                scheme="http",
            )
            if not ivr.task_arrived.wait(STEP_TIMEOUT):
                raise DemoError("the task never reached the client")
        tally = ivr.tally
    printer.plain(
        f"Demo complete: {tally.calls} calls answered, {tally.connected} connected to sales, "
        f"{tally.voicemails} voicemail recorded, {tally.sms_delivered} SMS delivered, {len(tally.tasks)} task received."
    )
    return 0
