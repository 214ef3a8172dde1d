"""A video room moderator: record every room, and mute everyone who joins a
room that is muted by policy.

``client.video.listen(on_room_started=...)`` hears about each room session
of the project as it starts (rooms already running are picked up with
``get_room_sessions()``). The moderator starts a recording in each, and in
a room whose metadata says ``{"policy": "muted"}`` (or whose name is given
with ``--muted-rooms``) it listens for ``on_member_joined`` and mutes each
newcomer's microphone. When a recording ends its download URL is printed.

Against your space (the ``SIGNALWIRE_*`` variables are set)::

    python examples/video_moderator.py --muted-rooms town-hall,webinar

Without credentials it starts relay_sync's RELAY emulator in this process,
opens two rooms (one muted by policy), has people join them, ends them,
prints what happened and exits. ``--rooms N`` makes it exit once N rooms
have been recorded to the end, in both modes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from concurrent.futures import Future

from emulated_world import client_from_environment, have_credentials, run_demo

from relay_sync import RelayClient, RelayError, RoomMember, RoomRecording, RoomSession

MUTED_POLICY = {"policy": "muted"}

# The demo's simulated world: (room, its metadata, who joins).
DEMO_ROOMS = [
    ("town-hall", MUTED_POLICY, ["alice", "bob"]),
    ("standup", {}, ["carol"]),
]


class Moderator:
    """The app: records each room, mutes newcomers where the policy says so.
    Stops the client after ``rooms`` recordings ended (None: never)."""

    def __init__(self, client: RelayClient, muted_rooms: set[str], rooms: int | None = None) -> None:
        self.client = client
        self.muted_rooms = muted_rooms
        self.rooms_left = rooms
        self._lock = threading.Lock()
        self._watched: set[str] = set()

    def start(self) -> None:
        """Watch rooms that start from now on, and those already running."""
        self.client.video.listen(on_room_started=self.watch, on_room_ended=self.on_room_ended)
        for room in self.client.video.get_room_sessions():
            self.watch(room)

    def muted_by_policy(self, room: RoomSession) -> bool:
        return room.meta.get("policy") == "muted" or room.name in self.muted_rooms

    def watch(self, room: RoomSession) -> None:
        """Runs on the handler pool for each room that starts."""
        with self._lock:
            if room.id in self._watched:  # started while start() listed the running rooms
                return
            self._watched.add(room.id)
        try:
            if self.muted_by_policy(room):
                room.listen(on_member_joined=lambda member: self.mute(room, member))
                for member in room.get_members():  # those who were quicker than our subscription
                    self.mute(room, member)
            recording = room.start_recording()
        except RelayError as error:  # the room may have ended already
            print(f"moderator: could not moderate room {room.name!r}: {error}", flush=True)
            return
        print(f"moderator: recording room {room.name!r}", flush=True)
        recording.future.add_done_callback(lambda done: self.recorded(room, recording, done))

    def mute(self, room: RoomSession, member: RoomMember) -> None:
        if member.audio_muted:
            return
        try:
            room.audio_mute(member.id)
        except RelayError as error:  # they may have left already
            print(f"moderator: could not mute {member.name} in {room.name!r}: {error}", flush=True)
            return
        print(f"moderator: muted {member.name} in {room.name!r} (room muted by policy)", flush=True)

    def recorded(self, room: RoomSession, recording: RoomRecording, done: Future[object]) -> None:
        """Runs on the handler pool once the recording ended (or could not)."""
        if done.exception() is None:
            print(f"moderator: recording of {room.name!r} ({recording.duration} s) at {recording.url}", flush=True)
        else:
            print(f"moderator: recording of {room.name!r} lost: {done.exception()}", flush=True)
        with self._lock:
            if self.rooms_left is None:
                return
            self.rooms_left -= 1
            finished = self.rooms_left <= 0
        if finished:
            self.client.stop()

    def on_room_ended(self, room: RoomSession) -> None:
        print(f"moderator: room {room.name!r} ended", flush=True)
        with self._lock:
            self._watched.discard(room.id)


def serve(client: RelayClient, muted_rooms: set[str], rooms: int | None) -> None:
    moderator = Moderator(client, muted_rooms, rooms)
    client.connect()
    moderator.start()
    print("moderator: watching the project's video rooms", flush=True)
    client.run()  # blocks: serves, reconnects; returns after stop(), Ctrl-C or SIGTERM


def demo(muted_rooms: set[str], rooms: int) -> int:
    """Run rooms in an emulator in this process and print the transcript."""
    from relay_sync.testing import RelayEmulator

    with RelayEmulator(time_factor=0.02) as emulator:
        client = emulator.client()

        def participants() -> None:
            emulator.wait_for_request("signalwire.subscribe", lambda p: p["event_channel"] == "video.rooms", timeout=10)
            for name, meta, people in DEMO_ROOMS[:rooms]:
                room_session_id = emulator.video.start_room(name, meta=meta)
                emulator.wait_for_transcript(f"started recording room {name!r}", timeout=10)
                for person in people:
                    emulator.video.join(room_session_id, person)
                if meta == MUTED_POLICY or name in muted_rooms:
                    for person in people:
                        emulator.wait_for_transcript(f"set audio_muted=True for {person}", timeout=10)
                emulator.video.end_room(room_session_id)

        return run_demo("moderator", emulator, client, participants, lambda: serve(client, muted_rooms, rooms))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--muted-rooms", default="", help="comma-separated names of rooms muted by policy")
    parser.add_argument(
        "--rooms", type=int, default=None, help="exit after this many rooms were recorded (default: never)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    muted_rooms = {name.strip() for name in args.muted_rooms.split(",") if name.strip()}
    if not have_credentials():
        return demo(muted_rooms, min(args.rooms or len(DEMO_ROOMS), len(DEMO_ROOMS)))
    try:
        serve(client_from_environment(), muted_rooms, args.rooms)
    except RelayError as error:
        print(f"moderator: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
