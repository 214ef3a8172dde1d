"""An IVR as a plain blocking script: answer, a menu, then an agent or voicemail.

Each inbound call runs ``handle_call`` on the client's handler pool, so the
code reads top to bottom and may block as long as it likes: play a menu and
collect one digit, then connect the caller to an agent (1) or record a
message (2), and hang up. ``client.run()`` serves until Ctrl-C or SIGTERM.

Against your space (the ``SIGNALWIRE_*`` variables are set)::

    python examples/ivr.py --context ivr --agent +15551230000

Without credentials it starts relay_sync's RELAY emulator in this process,
rings the IVR twice (one caller presses 1, the other 2), prints what
happened and exits. ``--calls N`` makes it exit after N calls in both modes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import Any

from emulated_world import client_from_environment, have_credentials, run_demo

from relay_sync import Call, RelayClient, RelayError

MENU = "Thanks for calling Acme. Press 1 to talk to an agent, or 2 to leave a message."
STEP_TIMEOUT = 60.0  # seconds any one step of a call may take
CONVERSATION_LIMIT = 4 * 3600.0  # seconds a caller may talk to the agent

# The demo's simulated world.
IVR_NUMBER = "+15550100"
AGENT_NUMBER = "+15550199"
CALLERS = {"+15550111": "1", "+15550122": "2"}  # caller -> the digit they press


def tts(text: str) -> list[dict[str, Any]]:
    return [{"type": "tts", "params": {"text": text}}]


class Ivr:
    """The app: ``handle_call`` for each inbound call; stops the client after ``calls`` calls (None: never)."""

    def __init__(self, client: RelayClient, agent: str, calls: int | None = None) -> None:
        self.client = client
        self.agent = agent
        self.calls_left = calls
        self._lock = threading.Lock()
        client.on_call(self.handle_call)

    def handle_call(self, call: Call) -> None:
        try:
            self.serve_caller(call)
        finally:
            self.call_done()

    def serve_caller(self, call: Call) -> None:
        caller = call.device.get("params", {}).get("from_number", "unknown")
        call.answer()
        menu = call.play_and_collect(tts(MENU), {"digits": {"max": 1, "digit_timeout": 5}}).wait(STEP_TIMEOUT)
        choice = menu.result.get("params", {}).get("digits") if menu.result_type == "digit" else None
        print(f"ivr: {caller} chose {choice!r}", flush=True)
        if choice == "1":
            self.connect_to_agent(call, caller)
        elif choice == "2":
            self.take_message(call, caller)
        else:
            call.play(tts("Sorry, I did not get that. Goodbye.")).wait(STEP_TIMEOUT)
        call.hangup()

    def connect_to_agent(self, call: Call, caller: str) -> None:
        call.play(tts("Connecting you to an agent.")).wait(STEP_TIMEOUT)
        our_number = call.device.get("params", {}).get("to_number")
        call.connect([[{"type": "phone", "params": {"to_number": self.agent, "from_number": our_number}}]])
        connected = call.wait_for("calling.call.connect", lambda e: e.connect_state != "connecting", STEP_TIMEOUT)
        if connected.connect_state != "connected":
            print(f"ivr: the agent did not pick up ({connected.connect_state})", flush=True)
            call.play(tts("Nobody is available. Please call again later.")).wait(STEP_TIMEOUT)
            return
        print(f"ivr: {caller} is talking to the agent", flush=True)
        # Until the agent hangs up; then the IVR has the call back. If the caller
        # hangs up first, wait_for raises RelayError: the call has ended.
        call.wait_for("calling.call.connect", lambda e: e.connect_state == "disconnected", CONVERSATION_LIMIT)
        print("ivr: the agent hung up", flush=True)

    def take_message(self, call: Call, caller: str) -> None:
        call.play(tts("Please leave a message after the tone.")).wait(STEP_TIMEOUT)
        recording = call.record({"beep": True, "end_silence_timeout": 2}).wait(STEP_TIMEOUT)
        print(f"ivr: message from {caller}: {recording.duration} s at {recording.url}", flush=True)
        call.play(tts("Thank you. Goodbye.")).wait(STEP_TIMEOUT)

    def call_done(self) -> None:
        with self._lock:
            if self.calls_left is None:
                return
            self.calls_left -= 1
            finished = self.calls_left <= 0
        if finished:
            self.client.stop()


def serve(client: RelayClient, agent: str, calls: int | None) -> None:
    Ivr(client, agent, calls)
    print(f"ivr: answering calls on {client.contexts}", flush=True)
    client.run()  # blocks: connects, serves, reconnects; returns after stop(), Ctrl-C or SIGTERM


def demo(context: str, calls: int) -> int:
    """Ring the IVR in an emulator in this process and print the transcript."""
    from relay_sync.testing import RelayEmulator

    with RelayEmulator(time_factor=0.02) as emulator:
        for caller, digit in CALLERS.items():
            emulator.phone(caller, digits=digit)
        emulator.phone(AGENT_NUMBER, after=2, hangup_after=5)
        client = emulator.client(contexts=[context])

        def callers() -> None:
            for caller in list(CALLERS)[:calls]:
                emulator.place_call(IVR_NUMBER, caller, context=context).wait_ended(timeout=30)

        return run_demo("ivr", emulator, client, callers, lambda: serve(client, AGENT_NUMBER, calls))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", default="ivr", help="context to take calls on (ivr)")
    parser.add_argument("--agent", default=AGENT_NUMBER, help="number that option 1 connects to")
    parser.add_argument("--calls", type=int, default=None, help="exit after this many calls (default: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not have_credentials():
        return demo(args.context, min(args.calls or len(CALLERS), len(CALLERS)))
    try:
        serve(client_from_environment(contexts=[args.context]), args.agent, args.calls)
    except RelayError as error:
        print(f"ivr: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
