"""An SMS bot: answer each inbound text, and follow each reply until it is delivered.

``@client.on_message`` runs for every SMS/MMS to a number on our context.
The handler picks an answer and sends it with ``send_message``, which
returns once SignalWire accepted the reply; ``on_completed`` then reports
whether it was delivered, undelivered or failed. ``client.run()`` serves
until Ctrl-C or SIGTERM.

Against your space (the ``SIGNALWIRE_*`` variables are set)::

    python examples/sms_bot.py --context sms

Without credentials it starts relay_sync's RELAY emulator in this process,
has three phones text the bot (one of which cannot receive SMS), prints
what happened and exits. ``--replies N`` makes it exit once N replies
have reached their final state, in both modes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from emulated_world import client_from_environment, have_credentials, run_demo

from relay_sync import Message, RelayClient, RelayError, RelayEvent

ANSWERS = {
    "hours": "We are open Monday to Friday, 9am to 5pm.",
    "where": "Find us at 1 Main Street, Springfield.",
}
HELP = "Hi! Text HOURS for our opening hours or WHERE for our address."

# The demo's simulated world.
BOT_NUMBER = "+15550100"
DEMO_TEXTS = [
    ("+15550111", "What are your hours?"),
    ("+15550122", "where are you"),
    ("+15550133", "hello"),  # a landline: the reply is undelivered
]


def answer_for(text: str) -> str:
    words = text.lower()
    return next((answer for keyword, answer in ANSWERS.items() if keyword in words), HELP)


class SmsBot:
    """The app: replies to each inbound message; stops the client after ``replies`` outcomes (None: never)."""

    def __init__(self, client: RelayClient, replies: int | None = None) -> None:
        self.client = client
        self.replies_left = replies
        self._lock = threading.Lock()
        client.on_message(self.on_message)

    def on_message(self, message: Message) -> None:
        print(f"bot: {message.from_number} wrote {message.body!r}", flush=True)
        try:
            reply = self.client.send_message(
                to_number=message.from_number or "",
                from_number=message.to_number or "",
                body=answer_for(message.body or ""),
                on_completed=self.on_reply_done,  # runs on the handler pool once the outcome is known
            )
        except RelayError as error:
            print(f"bot: could not reply to {message.from_number}: {error}", flush=True)
            self.reply_done()
            return
        print(f"bot: reply {reply.message_id} to {message.from_number} accepted", flush=True)

    def on_reply_done(self, outcome: RelayEvent) -> None:
        """on_completed: gets the message's final state event (delivered, undelivered or failed)."""
        reason = outcome.params.get("reason")
        why = f" ({reason})" if reason else ""
        print(f"bot: reply to {outcome.params.get('to_number')}: {outcome.state}{why}", flush=True)
        self.reply_done()

    def reply_done(self) -> None:
        with self._lock:
            if self.replies_left is None:
                return
            self.replies_left -= 1
            finished = self.replies_left <= 0
        if finished:
            self.client.stop()


def serve(client: RelayClient, replies: int | None) -> None:
    SmsBot(client, replies)
    print(f"bot: answering texts on {client.contexts}", flush=True)
    client.run()  # blocks: connects, serves, reconnects; returns after stop(), Ctrl-C or SIGTERM


def demo(context: str, replies: int) -> int:
    """Text the bot from simulated phones in an emulator in this process and print the transcript."""
    from relay_sync.testing import RelayEmulator

    with RelayEmulator(time_factor=0.02) as emulator:
        emulator.phone(DEMO_TEXTS[-1][0], sms="undelivered")
        client = emulator.client(contexts=[context])

        def texters() -> None:
            for sender, text in DEMO_TEXTS[:replies]:
                emulator.send_sms(BOT_NUMBER, sender, text, context=context)

        return run_demo("bot", emulator, client, texters, lambda: serve(client, replies))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", default="sms", help="context our numbers' messages go to (sms)")
    parser.add_argument("--replies", type=int, default=None, help="exit after this many replies (default: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not have_credentials():
        return demo(args.context, min(args.replies or len(DEMO_TEXTS), len(DEMO_TEXTS)))
    try:
        serve(client_from_environment(contexts=[args.context]), args.replies)
    except RelayError as error:
        print(f"bot: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
