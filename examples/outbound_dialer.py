"""Dial a list of numbers in parallel, play a message to each, report outcomes.

``client.dial_future()`` starts every call at once and returns a
``concurrent.futures.Future`` per number; ``as_completed()`` hands over each
call as soon as it is answered (or failed), a ``play()`` starts on it, and a
second ``as_completed()`` over the plays' futures hangs each call up when
its message is done. No thread of our own, no event loop.

Against your space (the ``SIGNALWIRE_*`` variables are set)::

    python examples/outbound_dialer.py --from +15551230000 +15552220001 +15552220002

Without credentials it dials four simulated phones in relay_sync's RELAY
emulator (one answers, one later, one is busy, one never answers) and
prints the emulator's transcript after the report. Exits with 0 when at
least one number heard the message.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures import Future, as_completed
from typing import Any, Callable

from emulated_world import client_from_environment, have_credentials, print_transcript

from relay_sync import CALL_STATE_ENDED, Call, PlayAction, RelayClient, RelayError, RelayEvent, devices

MESSAGE = "Hello from Acme. Your order has shipped and arrives tomorrow. Goodbye."
DIAL_TIMEOUT = 30.0  # seconds a number may ring
PLAY_TIMEOUT = 60.0  # seconds a message may take

# The demo's simulated world.
OUR_NUMBER = "+15550100"
DEMO_PHONES: dict[str, dict[str, Any]] = {
    "+15550101": {},  # answers at once
    "+15550102": {"after": 3},  # answers after three rings' worth of seconds
    "+15550103": {"busy": True},
    "+15550104": {"answers": False},  # rings until the dial gives up
}


def dial_all(client: RelayClient, numbers: list[str], from_number: str, message: str) -> dict[str, str]:
    """Call every number at once, play ``message`` to each that answers; returns number -> outcome.

    One number's failure is its own outcome, never the whole report's; every
    answered call is hung up before this returns, whatever went wrong.
    """
    outcomes = {number: "no outcome" for number in numbers}
    dials: dict[Future[Call], str] = {
        client.dial_future(devices.phone(number, from_number), dial_timeout=DIAL_TIMEOUT): number for number in numbers
    }
    answered: list[Call] = []
    plays: dict[Future[RelayEvent], tuple[str, PlayAction, Call]] = {}

    def settle(number: str, outcome: str) -> None:
        outcomes[number] = outcome
        print(f"dialer: {number}: {outcome}", flush=True)

    try:
        # Each call as soon as it is answered (or fails): start its message, which
        # hangs the call up when it is done (on_completed runs on the handler pool).
        try:
            for dialed in as_completed(dials, timeout=DIAL_TIMEOUT + 10):
                number = dials[dialed]
                try:
                    call = dialed.result()
                except RelayError as error:  # busy, no answer, refused...
                    settle(number, f"not reached ({error.code})")
                    continue
                answered.append(call)
                print(f"dialer: {number}: answered", flush=True)
                try:
                    play = call.play_tts(message, on_completed=hang_up(call))
                except RelayError as error:  # e.g. the callee hung up at once
                    settle(number, f"message not started ({error})")
                    continue
                plays[play.future] = (number, play, call)
        except TimeoutError:  # as_completed's own: some dial never settled
            for dialed, number in dials.items():
                if not dialed.done():
                    settle(number, "no answer in time")
        # Each message as it ends; its call is hung up by then, or about to be.
        try:
            for played in as_completed(plays, timeout=PLAY_TIMEOUT):
                number, play, call = plays[played]
                try:
                    played.result()
                    call.wait_for_ended(timeout=PLAY_TIMEOUT)
                except RelayError as error:
                    settle(number, f"message failed ({error})")
                    continue
                # completed: the play reached its own end; otherwise the call ended under it.
                settle(number, f"message {play.state}" if play.completed else "hung up during the message")
        except TimeoutError:  # as_completed's own: some message outlasted PLAY_TIMEOUT
            for played, (number, _, _) in plays.items():
                if not played.done():
                    settle(number, "message did not finish in time")
    finally:
        for call in answered:
            hang_up_now(call)
    return outcomes


def hang_up_now(call: Call) -> None:
    """Hang up ``call`` unless it already ended; a call that ends meanwhile is fine."""
    if call.state == CALL_STATE_ENDED:
        return
    try:
        call.hangup()
        call.wait_for_ended(timeout=DIAL_TIMEOUT)
    except RelayError as error:
        print(f"dialer: could not hang up call {call.call_id}: {error}", file=sys.stderr, flush=True)


def hang_up(call: Call) -> Callable[[RelayEvent], Any]:
    """An on_completed callback: it gets the event that ended the play, then hangs up."""
    return lambda event: call.hangup()


def report(outcomes: dict[str, str]) -> int:
    print("report:")
    for number, outcome in outcomes.items():
        print(f"  {number}: {outcome}")
    heard = sum(outcome == "message finished" for outcome in outcomes.values())
    print(f"{heard} of {len(outcomes)} numbers heard the message", flush=True)
    return 0 if heard else 1


def demo(message: str) -> int:
    """Dial the demo's simulated phones in an emulator in this process."""
    from relay_sync.testing import RelayEmulator

    with RelayEmulator(time_factor=0.02, ring_timeout=20) as emulator:
        for number, behaviour in DEMO_PHONES.items():
            emulator.phone(number, **behaviour)
        with emulator.client() as client:
            status = report(dial_all(client, list(DEMO_PHONES), OUR_NUMBER, message))
        print_transcript(emulator)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("numbers", nargs="*", help="numbers to call (+15551234567)")
    parser.add_argument("--from", dest="from_number", default=OUR_NUMBER, help="one of your numbers")
    parser.add_argument("--message", default=MESSAGE, help="what to say")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not have_credentials():
        return demo(args.message)
    if not args.numbers:
        parser.error("name at least one number to call")
    try:
        with client_from_environment() as client:
            return report(dial_all(client, args.numbers, args.from_number, args.message))
    except RelayError as error:
        print(f"dialer: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
