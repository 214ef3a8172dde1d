"""Handles on the long operations of a room session: ``RoomRecording``,
``RoomPlayback`` and ``RoomStream``.

A handle's state follows the server's ``recording.*``, ``playback.*`` and
``stream.*`` events (applied on the I/O thread by the Video service, which
subscribes the room to them before starting the operation). Its commands
run in the caller's thread and block until the server answered; ``wait()``
blocks until the operation ended. ``future`` is a real
``concurrent.futures.Future`` resolving with the handle itself once it
ended; its done-callbacks run on the handler pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from ..errors import RoomActionEndedError
from ..futures import HandoffFuture, settle, wait_result
from ..pool import HandlerPool
from ..rpc import JSONDict
from . import payload as read
from .members import check_number

Request = Callable[[str, JSONDict], JSONDict]
Handle = TypeVar("Handle", bound="RoomAction")

COMPLETED = "completed"
# How far forward()/rewind() jump by default, in milliseconds (as in the realtime SDK).
DEFAULT_SEEK_OFFSET = 5000


class RoomAction:
    """What recordings, playbacks and streams share: identity, state, waiting."""

    kind: ClassVar[str]  # the payload key and event family: "recording", "playback", "stream"

    def __init__(
        self,
        request: Request,
        handler_pool: HandlerPool,
        fields: JSONDict,
        *,
        room_session_id: str,
        room_id: str | None,
    ) -> None:
        self._request = request
        self._room_session_id = room_session_id
        self._room_id = room_id
        # _lock guards _fields; the future is settled once, by whoever sees the end first.
        self._lock = threading.Lock()
        self._fields = dict(fields)
        #: A ``concurrent.futures.Future`` resolved with the handle itself once it ended
        #: (its done-callbacks run on the handler pool).
        self.future: Future[RoomAction] = HandoffFuture(handler_pool)
        if self.has_ended:
            settle(self.future, self)

    @property
    def id(self) -> str:
        return read.text(self._fields, "id") or ""

    @property
    def room_session_id(self) -> str:
        return self._room_session_id

    @property
    def room_id(self) -> str | None:
        return self._room_id

    @property
    def state(self) -> str | None:
        return read.text(self._fields, "state")

    @property
    def started_at(self) -> datetime | None:
        return read.moment(self._fields, "started_at")

    @property
    def ended_at(self) -> datetime | None:
        return read.moment(self._fields, "ended_at")

    @property
    def has_ended(self) -> bool:
        return self.state == COMPLETED

    @property
    def is_done(self) -> bool:
        """True once it ended (or the client closed, or its room ended, first)."""
        return self.future.done()

    @property
    def fields(self) -> JSONDict:
        """Everything the server said about it (a copy)."""
        with self._lock:
            return dict(self._fields)

    def wait(self: Handle, timeout: float | None = None) -> Handle:  # noqa: PYI019 - typing.Self needs 3.11
        """Block until it ended; returns this handle (its state ``completed``).

        Raises ``TimeoutError`` (a ``RelayTimeoutError``) after ``timeout``
        seconds, leaving the handle usable, ``RoomEndedError`` when the room
        ended before the end was reported, and ``RelayError`` when the client closes.
        """
        wait_result(self.future, timeout, f"{self.kind} {self.id}")
        return self

    # -- updates (I/O thread) --------------------------------------------------

    def _apply(self, fields: JSONDict) -> None:
        with self._lock:
            self._fields.update(fields)
        if self.has_ended:
            settle(self.future, self)

    # -- commands (caller's thread) -------------------------------------------------

    def _command(self, method: str, **extra: Any) -> None:
        if self.has_ended:
            raise RoomActionEndedError(f"{self.kind} {self.id} has ended; {method} is not possible")
        params: JSONDict = {"room_session_id": self._room_session_id, f"{self.kind}_id": self.id}
        params.update(extra)
        self._request(method, params)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} state={self.state!r} room_session={self._room_session_id}>"


class RoomRecording(RoomAction):
    """A recording of a room session (state ``recording``, ``paused`` or ``completed``)."""

    kind = "recording"

    @property
    def duration(self) -> float | None:
        """Seconds recorded, once the server said."""
        return read.number(self._fields, "duration")

    @property
    def url(self) -> str | None:
        """Where to download the recording, when the server says (the emulator does:
        fetch it with ``relay_sync.rest.download_recording``)."""
        return read.text(self._fields, "url")

    def pause(self) -> None:
        self._command("video.recording.pause")

    def resume(self) -> None:
        self._command("video.recording.resume")

    def stop(self) -> None:
        """Stop recording; ``wait()`` returns once the server reported the end."""
        self._command("video.recording.stop")


class RoomPlayback(RoomAction):
    """Media played into a room session (state ``playing``, ``paused`` or ``completed``)."""

    kind = "playback"

    @property
    def url(self) -> str | None:
        return read.text(self._fields, "url")

    @property
    def volume(self) -> float | None:
        return read.number(self._fields, "volume")

    @property
    def position(self) -> float | None:
        """Milliseconds into the media."""
        return read.number(self._fields, "position")

    @property
    def seekable(self) -> bool | None:
        return read.flag(self._fields, "seekable")

    def pause(self) -> None:
        self._command("video.playback.pause")

    def resume(self) -> None:
        self._command("video.playback.resume")

    def stop(self) -> None:
        self._command("video.playback.stop")

    def set_volume(self, volume: float) -> None:
        """The playback's volume, -50 to 50."""
        self._command("video.playback.set_volume", volume=check_number("volume", volume))

    def seek(self, timecode: float) -> None:
        """Jump to ``timecode`` milliseconds from the start."""
        self._command("video.playback.seek_absolute", position=abs(check_number("timecode", timecode)))

    def forward(self, offset: float = DEFAULT_SEEK_OFFSET) -> None:
        """Jump ``offset`` milliseconds ahead."""
        self._command("video.playback.seek_relative", position=abs(check_number("offset", offset)))

    def rewind(self, offset: float = DEFAULT_SEEK_OFFSET) -> None:
        """Jump ``offset`` milliseconds back."""
        self._command("video.playback.seek_relative", position=-abs(check_number("offset", offset)))


class RoomStream(RoomAction):
    """A room session streamed out to an RTMP(S) URL (state ``streaming`` or ``completed``)."""

    kind = "stream"

    @property
    def url(self) -> str | None:
        return read.text(self._fields, "url")

    @property
    def duration(self) -> float | None:
        return read.number(self._fields, "duration")

    def stop(self) -> None:
        self._command("video.stream.stop")


HANDLE_CLASSES: dict[str, type[RoomAction]] = {cls.kind: cls for cls in (RoomRecording, RoomPlayback, RoomStream)}
