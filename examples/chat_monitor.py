"""A chat monitor: print a chat channel's recent history, who is there, then every
message and every member joining, changing state and leaving.

``client.chat.get_messages`` and ``get_members`` block until the server
answered; ``client.chat.listen`` returns once the subscription is confirmed,
and its handlers then run on the client's handler pool, one at a time per
channel, in the order things happened. After a dropped connection the client
subscribes again by itself. ``client.run()`` serves until Ctrl-C or SIGTERM.

Against your space (the ``SIGNALWIRE_*`` variables are set)::

    python examples/chat_monitor.py --channel support

Without credentials it starts relay_sync's RELAY emulator in this process,
has a visitor join the channel, type, write and leave, prints what it saw
and exits. ``--messages N`` makes it exit after N new messages, in both modes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from emulated_world import client_from_environment, have_credentials, run_demo

from relay_sync import ChatMember, ChatMessage, RelayClient, RelayError

HISTORY = 5  # recent messages shown at start

# The demo's visitor.
DEMO_LINES = ["Hello, is anyone there?", "My order #42 has not arrived."]


class ChatMonitor:
    """Prints what happens on a channel; stops the client after ``messages`` new ones (None: never)."""

    def __init__(self, client: RelayClient, messages: int | None = None) -> None:
        self.client = client
        self.messages_left = messages
        self._lock = threading.Lock()

    def show_channel(self, channel: str) -> None:
        page = self.client.chat.get_messages(channel)
        for message in reversed(page.messages[:HISTORY]):  # oldest of them first
            print(f"monitor: [{channel}] earlier, {sender(message)}: {message.content!r}", flush=True)
        members = self.client.chat.get_members(channel)
        print(f"monitor: [{channel}] {len(members)} member(s) here", flush=True)

    def on_message(self, message: ChatMessage) -> None:
        print(f"monitor: [{message.channel}] {sender(message)}: {message.content!r}", flush=True)
        with self._lock:
            if self.messages_left is None:
                return
            self.messages_left -= 1
            finished = self.messages_left <= 0
        if finished:
            self.client.stop()

    def on_member_joined(self, member: ChatMember) -> None:
        print(f"monitor: [{member.channel}] {member.id} joined", flush=True)

    def on_member_updated(self, member: ChatMember) -> None:
        print(f"monitor: [{member.channel}] {member.id} is now {member.state!r}", flush=True)

    def on_member_left(self, member: ChatMember) -> None:
        print(f"monitor: [{member.channel}] {member.id} left", flush=True)


def sender(message: ChatMessage) -> str:
    return message.member.id if message.member is not None else "someone"


def serve(client: RelayClient, channel: str, messages: int | None) -> None:
    monitor = ChatMonitor(client, messages)
    client.connect()
    monitor.show_channel(channel)
    with client.chat.listen(
        [channel],
        on_message=monitor.on_message,
        on_member_joined=monitor.on_member_joined,
        on_member_updated=monitor.on_member_updated,
        on_member_left=monitor.on_member_left,
    ):
        print(f"monitor: listening on {channel!r}", flush=True)
        client.run()  # blocks: serves, reconnects (and re-subscribes); returns after stop(), Ctrl-C or SIGTERM


def demo(channel: str, messages: int) -> int:
    """A visitor chats on ``channel`` of an emulator in this process while the monitor watches."""
    from relay_sync.testing import RelayEmulator

    # The monitor and the visitor are two clients of this one process (a real visitor
    # would be a browser or another process): allow both to be connected at once.
    os.environ.setdefault("RELAY_MAX_CONNECTIONS", "2")
    with RelayEmulator(time_factor=0.02) as emulator:
        emulator.chat_publish(channel, "Welcome to support!", member_id="agent-ann")  # history before we start
        client = emulator.client()

        def visitor() -> None:
            before = set(emulator.chat.wait_for_members(channel, 1, timeout=10))  # the monitor listens
            guest = emulator.client()
            guest.connect()
            try:
                with guest.chat.listen([channel], on_message=lambda message: None):
                    (me,) = set(emulator.chat.members(channel)) - before
                    guest.chat.set_member_state(me, [channel], {"typing": True})
                    for line in DEMO_LINES[:messages]:
                        guest.chat.publish(channel, line)
            finally:
                guest.disconnect()

        return run_demo("monitor", emulator, client, visitor, lambda: serve(client, channel, messages))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channel", default="support", help="the chat channel to watch (support)")
    parser.add_argument("--messages", type=int, default=None, help="exit after this many new messages (default: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not have_credentials():
        return demo(args.channel, min(args.messages or len(DEMO_LINES), len(DEMO_LINES)))
    try:
        serve(client_from_environment(), args.channel, args.messages)
    except RelayError as error:
        print(f"monitor: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
