"""Voicemail: answer, record the caller's message, download the recording.

For each inbound call the handler plays a greeting, records with a beep
until the caller goes quiet, waits for the ``RecordAction`` to finish and
downloads the recording with ``relay_sync.rest.download_recording``, which
authenticates with the project id and API token and writes the file only
once it is complete.

Against your space (the ``SIGNALWIRE_*`` variables are set, including
``SIGNALWIRE_PROJECT_ID`` and ``SIGNALWIRE_API_TOKEN`` for the download)::

    python examples/voicemail.py --context voicemail --save-to ./voicemails

Without credentials it starts relay_sync's RELAY emulator in this process,
has one caller leave a message, saves it, prints what happened and exits.
``--calls N`` makes it exit after N calls in both modes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from emulated_world import client_from_environment, have_credentials, run_demo

from relay_sync import Call, RelayClient, RelayError, rest

GREETING = "You have reached Acme. Please leave a message after the tone."
STEP_TIMEOUT = 60.0  # seconds any one step of a call may take
MAX_MESSAGE_SECONDS = 120.0  # a longer message is cut off

# The demo's simulated world.
OUR_NUMBER = "+15550100"
CALLER = "+15550111"


def tts(text: str) -> list[dict[str, Any]]:
    return [{"type": "tts", "params": {"text": text}}]


class Voicemail:
    """The app: records each call into ``save_to``; stops the client after ``calls`` calls (None: never).

    ``credentials`` are the ``project``/``token`` for the download (default: the environment's).
    """

    def __init__(
        self, client: RelayClient, save_to: Path, calls: int | None = None, credentials: dict[str, str] | None = None
    ) -> None:
        self.client = client
        self.save_to = save_to
        self.calls_left = calls
        self.credentials = credentials or {}
        self._lock = threading.Lock()
        client.on_call(self.handle_call)

    def handle_call(self, call: Call) -> None:
        try:
            self.take_message(call)
        finally:
            self.call_done()

    def take_message(self, call: Call) -> None:
        caller = call.device.get("params", {}).get("from_number", "unknown")
        call.answer()
        call.play(tts(GREETING)).wait(STEP_TIMEOUT)
        record = call.record({"beep": True, "format": "wav", "end_silence_timeout": 3, "initial_timeout": 5})
        try:
            recording = record.wait(MAX_MESSAGE_SECONDS)  # ends when the caller goes quiet
        except TimeoutError:  # a wait that times out leaves the action running: stop it
            record.stop()
            recording = record.wait(STEP_TIMEOUT)
        if recording.state != "finished" or not recording.url:
            print(f"voicemail: {caller} left no message ({recording.state})", flush=True)
            call.hangup()
            return
        call.play(tts("Thank you. Goodbye.")).wait(STEP_TIMEOUT)
        call.hangup()
        # The download needs no socket: the call is over, the recording is on SignalWire's servers.
        target = self.save_to / f"{call.call_id}.wav"
        saved = rest.download_recording(recording.url, path=target, **self.credentials)
        print(
            f"voicemail: {recording.duration:g} s from {caller} saved to {saved} ({saved.stat().st_size} bytes)",
            flush=True,
        )

    def call_done(self) -> None:
        with self._lock:
            if self.calls_left is None:
                return
            self.calls_left -= 1
            finished = self.calls_left <= 0
        if finished:
            self.client.stop()


def serve(client: RelayClient, save_to: Path, calls: int | None, credentials: dict[str, str] | None = None) -> None:
    save_to.mkdir(parents=True, exist_ok=True)
    Voicemail(client, save_to, calls, credentials)
    print(f"voicemail: answering calls on {client.contexts}, saving to {save_to}", flush=True)
    client.run()  # blocks: connects, serves, reconnects; returns after stop(), Ctrl-C or SIGTERM


def demo(context: str, save_to: Path) -> int:
    """One simulated caller leaves a message in an emulator in this process."""
    from relay_sync.testing import RelayEmulator

    with RelayEmulator(time_factor=0.02) as emulator:
        emulator.phone(CALLER, message_seconds=6)
        client = emulator.client(contexts=[context])
        credentials = {"project": emulator.project, "token": emulator.token}

        def caller() -> None:
            emulator.place_call(OUR_NUMBER, CALLER, context=context).wait_ended(timeout=30)

        return run_demo("voicemail", emulator, client, caller, lambda: serve(client, save_to, 1, credentials))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", default="voicemail", help="context to take calls on (voicemail)")
    parser.add_argument(
        "--save-to", type=Path, default=None, help="folder for the recordings (default: a new temporary one)"
    )
    parser.add_argument("--calls", type=int, default=None, help="exit after this many calls (default: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    save_to = args.save_to or Path(tempfile.mkdtemp(prefix="voicemail-"))
    if not have_credentials():
        return demo(args.context, save_to)
    try:
        serve(client_from_environment(contexts=[args.context]), save_to, args.calls)
    except RelayError as error:
        print(f"voicemail: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
