"""The ``relay-sync`` command (also ``python -m relay_sync``).

Subcommands:

``demo``       a complete IVR against an in-process emulator, as a transcript
``emulator``   run a local RELAY emulator until Ctrl-C
``send-sms``   send an SMS and wait for its delivery
``dial``       place a call, optionally speak a text, hang up
``check``      connect to the configured space, report protocol and round trip

Credentials come from ``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN`` (or
``SIGNALWIRE_JWT_TOKEN``) and ``SIGNALWIRE_SPACE``, or from a prompt that
does not echo them; never from the command line. A loopback space (a local
emulator) is reached over plain ``ws``. Errors are one line on stderr unless
``--debug``. Runs in the main thread; the client's threads do the rest.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from concurrent.futures import Future
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable

from ._version import __version__
from .client import RelayClient
from .config import ENV_JWT, ENV_PROJECT, ENV_SPACE, ENV_TOKEN, env_value, validate_host
from .constants import CALL_STATE_ENDED
from .errors import AuthenticationError, RelayError

if TYPE_CHECKING:
    from .calls import Call
    from .testing.emulator import RelayEmulator


log = logging.getLogger(__name__)

PROG = "relay-sync"
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
HANG_UP_TIMEOUT = 10.0  # seconds to wait for a call we hang up on the way out to end


class CliError(Exception):
    """A failure to report as one line, with what to do about it."""


# -- credentials --------------------------------------------------------------


def _prompt(name: str, question: str, *, secret: bool) -> str:
    if not sys.stdin.isatty():
        raise CliError(f"{name} is not set; export it (or run in a terminal to be asked for it)")
    try:
        answer = getpass.getpass(f"{question}: ") if secret else input(f"{question}: ")
    except EOFError:  # Ctrl-D at the prompt
        raise CliError(f"{name} is required (no input)") from None
    if not answer.strip():
        raise CliError(f"{name} is required")
    return answer.strip()


def client_from_environment(**options: Any) -> RelayClient:
    """A RelayClient for the space in the environment, asking for what is missing (without echo)."""
    # In the order a newcomer fixes them: first where to connect, then the credentials.
    space = env_value(ENV_SPACE) or _prompt(ENV_SPACE, "SignalWire space (example.signalwire.com)", secret=False)
    validate_host(space, what=ENV_SPACE)
    jwt_token = env_value(ENV_JWT)
    project = token = None
    if jwt_token is None:
        project = env_value(ENV_PROJECT) or _prompt(ENV_PROJECT, "Project ID", secret=True)
        token = env_value(ENV_TOKEN) or _prompt(ENV_TOKEN, "API token", secret=True)
    return RelayClient(project=project, token=token, jwt_token=jwt_token, host=space, **options)


# -- commands -----------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .testing import demo

    return demo.run(sys.stdout, time_factor=args.time_factor)


def cmd_emulator(args: argparse.Namespace) -> int:
    from .testing import RelayEmulator

    token = args.token or secrets.token_urlsafe(12)
    emulator: RelayEmulator = RelayEmulator(
        args.project, token, host=args.host, port=args.port, time_factor=args.time_factor
    )
    for number, behaviour in args.phone:
        emulator.phone(number, **behaviour)
    if args.transcript:
        emulator.on_transcript(lambda entry: print(entry, flush=True))
    stop = threading.Event()
    with _signals_set(stop), emulator:
        print(f"RELAY emulator listening on {emulator.relay_host} (WebSocket and REST); Ctrl-C stops it", flush=True)
        print("Point relay_sync at it with:")
        for name, value in emulator.environment().items():
            print(f"  export {name}={value}")
        print("RelayClient() reaches it over plain ws by itself: the host is loopback.", flush=True)
        stop.wait()
    print("emulator stopped", flush=True)
    return 0


def cmd_send_sms(args: argparse.Namespace) -> int:
    with _connected(request_timeout=args.timeout) as client:
        message = client.send_message(to_number=args.to, from_number=args.from_, body=args.body, context=args.context)
        print(f"message {message.message_id} accepted ({message.state})", flush=True)
        if args.no_wait:
            return 0
        final = message.wait(args.timeout)
    state = final.state or "unknown"
    if state != "delivered":
        reason = f": {message.reason}" if message.reason else ""
        raise CliError(f"the message was not delivered ({state}{reason})")
    print(f"message {message.message_id} {state}")
    return 0


def cmd_dial(args: argparse.Namespace) -> int:
    device = {"type": "phone", "params": {"to_number": args.to, "from_number": args.from_}}
    with _connected(request_timeout=min(args.timeout, 10.0)) as client:
        print(f"dialing {args.to} from {args.from_}...", flush=True)
        call = _answered(client.dial_future([[device]], dial_timeout=args.timeout))
        print(f"answered (call {call.call_id})", flush=True)
        try:
            if args.play:
                play = call.play([{"type": "tts", "params": {"text": args.play}}])
                play.wait(args.play_timeout)
                if not play.completed:
                    raise CliError(f"the message was not played to the end (the call is {call.state})")
                print(f"played: {args.play}", flush=True)
        finally:
            # Whatever stopped us (an error, a timeout, Ctrl-C), the call must not stay up.
            _hang_up(call, args.timeout)
        ended = call.wait_for_ended(args.timeout)
    print(f"call ended ({ended.params.get('end_reason', 'hangup')})")
    return 0


def _answered(dialing: Future[Call]) -> Call:
    """The answered call; on Ctrl-C while ringing, wait for the dial to settle
    (answered, failed, or its dial_timeout, which hangs up the ringing legs) and
    hang up an answered call, so leaving never strands a call. A second
    Ctrl-C leaves at once."""
    try:
        return dialing.result()  # the dial's own dial_timeout bounds this wait
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; ending the dial (Ctrl-C again to leave at once)", file=sys.stderr, flush=True)
        futures.wait([dialing])
        if not dialing.cancelled() and dialing.exception() is None:
            _hang_up(dialing.result(), HANG_UP_TIMEOUT)
        raise


def _hang_up(call: Call, timeout: float) -> None:
    if call.state == CALL_STATE_ENDED:
        return
    try:
        call.hangup()
        call.wait_for_ended(timeout)
    except RelayError as error:  # it ended on its own meanwhile, or the link is gone
        log.debug("hanging up call %s: %s", call.call_id, error)


def cmd_check(args: argparse.Namespace) -> int:
    client = client_from_environment(request_timeout=args.timeout, connect_timeout=args.timeout)
    started = time.perf_counter()
    with client:
        login = time.perf_counter() - started
        round_trips = []
        for _ in range(args.pings):
            sent = time.perf_counter()
            client.execute("signalwire.ping", {"timestamp": time.time()})
            round_trips.append((time.perf_counter() - sent) * 1000)
        print(f"connected to {client.host}")
        print(f"  protocol:   {client.relay_protocol}")
        print(f"  login:      {login * 1000:.1f} ms")
        print(
            f"  round trip: {min(round_trips):.1f} ms min, {sum(round_trips) / len(round_trips):.1f} ms avg "
            f"over {len(round_trips)} pings"
        )
    return 0


class _connected:
    """``with _connected() as client``: a client from the environment, connected."""

    def __init__(self, **options: Any) -> None:
        self._client = client_from_environment(**options)

    def __enter__(self) -> RelayClient:
        self._client.connect()
        return self._client

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()


class _signals_set:
    """Set ``event`` on SIGINT/SIGTERM while in the block (main thread only)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._event.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, on_signal)

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


# -- the parser and main ---------------------------------------------------------------


# ``--phone NUMBER BEHAVIOUR``: the words a behaviour is made of, and the Phone fields they set.
PHONE_FLAGS: dict[str, dict[str, bool]] = {
    "answers": {},
    "busy": {"busy": True},
    "no-answer": {"answers": False},
    "machine": {"machine": True},
    "fax": {"fax": True},
}
PHONE_SECONDS = {"after": "after", "hangup-after": "hangup_after"}


class _PhoneAction(argparse.Action):
    """Collect ``--phone NUMBER BEHAVIOUR`` pairs as ``(number, Phone keyword arguments)``."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        number, spec = values
        try:
            behaviour = phone_behaviour(spec)
        except ValueError as error:
            parser.error(f"{option} {number} {spec}: {error}")
        getattr(namespace, self.dest).append((number, behaviour))


def phone_behaviour(spec: str) -> dict[str, Any]:
    """``busy``, ``no-answer``, ``after=3,hangup-after=20``... as ``RelayEmulator.phone()`` arguments."""
    behaviour: dict[str, Any] = {}
    for word in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = word.partition("=")
        if name in PHONE_FLAGS and not value:
            behaviour.update(PHONE_FLAGS[name])
        elif name in PHONE_SECONDS and value:
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(f"{name} needs a number of seconds, not {value!r}") from None
            if seconds < 0:
                raise ValueError(f"{name} must not be negative")
            behaviour[PHONE_SECONDS[name]] = seconds
        else:
            known = ", ".join([*PHONE_FLAGS, *(f"{name}=SECONDS" for name in PHONE_SECONDS)])
            raise ValueError(f"unknown behaviour {word!r}; use one or more of {known}, joined by commas")
    return behaviour


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, not {text}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="relay_sync: the blocking Python SDK for SignalWire RELAY, and a local RELAY emulator.",
        epilog=f"Credentials: {ENV_PROJECT}, {ENV_TOKEN} (or {ENV_JWT}) and {ENV_SPACE}, or a prompt.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="log the protocol and show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo", help="run a complete IVR against an in-process emulator")
    demo.add_argument("--time-factor", type=_positive, default=0.05, help="real seconds per simulated second (0.05)")
    demo.set_defaults(run=cmd_demo)

    emulator = commands.add_parser("emulator", help="run a local RELAY emulator until Ctrl-C")
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    emulator.add_argument("--port", type=_port, default=8765, help="port (8765; 0 picks a free one)")
    emulator.add_argument("--project", default="emulator", help="project id clients must use (emulator)")
    emulator.add_argument("--token", default=None, help="API token clients must use (default: a random one, printed)")
    emulator.add_argument("--time-factor", type=_positive, default=1.0, help="real seconds per simulated second (1)")
    emulator.add_argument(
        "--phone",
        nargs=2,
        metavar=("NUMBER", "BEHAVIOUR"),
        action=_PhoneAction,
        default=[],
        help="how a number behaves when dialed: busy, no-answer, machine, fax, after=SECONDS (answers after), "
        "hangup-after=SECONDS, several joined by commas; numbers not named answer at once (repeatable)",
    )
    emulator.add_argument(
        "--transcript", action="store_true", help="print what happens on the simulated network as it happens"
    )
    emulator.set_defaults(run=cmd_emulator)

    send_sms = commands.add_parser("send-sms", help="send an SMS and wait until it is delivered")
    send_sms.add_argument("--to", metavar="NUMBER", required=True, help="destination number, +15551234567")
    send_sms.add_argument("--from", dest="from_", metavar="NUMBER", required=True, help="one of your numbers")
    send_sms.add_argument("--body", required=True, help="the text")
    send_sms.add_argument("--context", default=None, help="context for the message's state events")
    send_sms.add_argument("--timeout", type=_positive, default=30.0, help="seconds to wait for delivery (30)")
    send_sms.add_argument("--no-wait", action="store_true", help="return once the message is accepted")
    send_sms.set_defaults(run=cmd_send_sms)

    dial = commands.add_parser("dial", help="call a number, optionally speak a text, hang up")
    dial.add_argument("--to", metavar="NUMBER", required=True, help="number to call, +15551234567")
    dial.add_argument("--from", dest="from_", metavar="NUMBER", required=True, help="one of your numbers")
    dial.add_argument("--play", metavar="TEXT", default=None, help="text to speak once answered")
    dial.add_argument("--timeout", type=_positive, default=60.0, help="seconds to wait for an answer (60)")
    dial.add_argument(
        "--play-timeout", type=_positive, default=300.0, help="seconds the message may take to play (300)"
    )
    dial.set_defaults(run=cmd_dial)

    check = commands.add_parser("check", help="connect to the configured space and report protocol and round trip")
    check.add_argument("--timeout", type=_positive, default=10.0, help="seconds to connect and for each ping (10)")
    check.add_argument("--pings", type=int, default=3, choices=range(1, 101), metavar="N", help="pings to time (3)")
    check.set_defaults(run=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``relay-sync`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        # The SDK logs reconnect attempts and similar at WARNING; the CLI reports outcomes itself.
        logging.getLogger("relay_sync").setLevel(logging.ERROR)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {_describe(error)}", file=sys.stderr)
        return EXIT_FAILURE


def _describe(error: BaseException) -> str:
    if isinstance(error, ModuleNotFoundError) and error.name == "websockets":
        return "the emulator needs websockets: pip install 'relay-sync[testing]'"
    if isinstance(error, AuthenticationError):
        return f"the server refused the credentials ({error}); check {ENV_PROJECT} and {ENV_TOKEN} (or {ENV_JWT})"
    if isinstance(error, RelayError):
        return str(error)
    text = str(error) or type(error).__name__
    if isinstance(error, (CliError, ValueError, OSError, TimeoutError)):
        return text
    return f"{type(error).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
