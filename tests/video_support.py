"""Helpers for the Video tests: a recorder of what listen() handlers received,
and a room with a client listening to it."""

from __future__ import annotations

import threading
from typing import Any, Callable

from relay_sync import RelayClient, RoomSession
from relay_sync.testing import RelayEmulator

WAIT = 5.0  # seconds any awaited event may take (generous: the machine is shared)


class Heard:
    """What handlers received, in the order they ran: ``(listener name, argument, thread name)``."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.entries: list[tuple[str, Any, str]] = []

    def handler(self, name: str) -> Callable[[Any], None]:
        def record(argument: Any) -> None:
            with self._changed:
                self.entries.append((name, argument, threading.current_thread().name))
                self._changed.notify_all()

        record.__name__ = name
        return record

    def handlers(self, *names: str) -> dict[str, Callable[[Any], None]]:
        return {name: self.handler(name) for name in names}

    def names(self) -> list[str]:
        with self._changed:
            return [name for name, _, _ in self.entries]

    def wait_for(self, name: str, count: int = 1, timeout: float = WAIT) -> Any:
        """Block until ``name`` was heard ``count`` times; returns the argument of the last of them."""

        def matching() -> list[Any]:
            return [argument for heard, argument, _ in self.entries if heard == name]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(
                    f"{name} heard {len(matching())} time(s), not {count}, within {timeout} s; heard {self.names()}"
                )
            return matching()[count - 1]


def open_room(emulator: RelayEmulator, client: RelayClient, name: str = "town-hall") -> tuple[str, RoomSession]:
    """Start a room on the emulator and fetch it through the client."""
    room_session_id = emulator.video.start_room(name)
    return room_session_id, client.video.get_room_session(room_session_id)


def video_requests(emulator: RelayEmulator) -> list[dict[str, Any]]:
    """Every video request (and video subscription) the clients sent, oldest first."""
    return [
        frame
        for frame in emulator.requests()
        if frame["method"].startswith("video.") or frame["method"] == "signalwire.subscribe"
    ]
