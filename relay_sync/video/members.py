"""``RoomMember``: one participant of a room session, as the server last
described it, with the moderation commands that act on it.

A ``RoomMember`` is a snapshot: the one a handler receives describes the
member at that event and never changes afterwards (``room.get_members()``
gives fresh ones). Its commands run in the caller's thread and block until
the server answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..rpc import JSONDict
from . import payload as read

Request = Callable[[str, JSONDict], JSONDict]


def member_command(request: Request, method: str, room_session_id: str, member_id: Any, **fields: Any) -> None:
    """Send a ``video.member.*`` command for one member; ``None`` fields are left out."""
    if not isinstance(member_id, str) or not member_id:
        raise ValueError(f"member_id must be the id of a member of the room (RoomMember.id), not {member_id!r}")
    params: JSONDict = {"room_session_id": room_session_id, "member_id": member_id}
    params.update({key: value for key, value in fields.items() if value is not None})
    request(method, params)


def check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {value!r}")
    return value


class RoomMember:
    """A member of a room session (``type`` ``member``, ``screen`` or ``device``)."""

    def __init__(self, request: Request, fields: JSONDict, *, room_session_id: str | None = None) -> None:
        self._request = request
        self._fields = dict(fields)
        self._room_session_id = read.text(fields, "room_session_id") or room_session_id or ""

    # -- state ------------------------------------------------------------------

    @property
    def id(self) -> str:
        return read.text(self._fields, "id") or ""

    @property
    def member_id(self) -> str:
        return self.id

    @property
    def room_session_id(self) -> str:
        return self._room_session_id

    @property
    def room_id(self) -> str | None:
        return read.text(self._fields, "room_id")

    @property
    def parent_id(self) -> str | None:
        """For a ``screen`` or ``device`` member, the member it belongs to."""
        return read.text(self._fields, "parent_id") or None

    @property
    def name(self) -> str | None:
        return read.text(self._fields, "name")

    @property
    def type(self) -> str | None:
        return read.text(self._fields, "type")

    @property
    def meta(self) -> JSONDict:
        return read.mapping(self._fields, "meta")

    @property
    def requested_position(self) -> str | None:
        return read.text(self._fields, "requested_position")

    @property
    def current_position(self) -> str | None:
        return read.text(self._fields, "current_position")

    @property
    def visible(self) -> bool | None:
        return read.flag(self._fields, "visible")

    @property
    def audio_muted(self) -> bool | None:
        return read.flag(self._fields, "audio_muted")

    @property
    def video_muted(self) -> bool | None:
        return read.flag(self._fields, "video_muted")

    @property
    def deaf(self) -> bool | None:
        return read.flag(self._fields, "deaf")

    @property
    def input_volume(self) -> float | None:
        return read.number(self._fields, "input_volume")

    @property
    def output_volume(self) -> float | None:
        return read.number(self._fields, "output_volume")

    @property
    def input_sensitivity(self) -> float | None:
        return read.number(self._fields, "input_sensitivity")

    @property
    def talking(self) -> bool | None:
        return read.flag(self._fields, "talking")

    @property
    def handraised(self) -> bool | None:
        return read.flag(self._fields, "handraised")

    @property
    def updated(self) -> list[str]:
        """In a ``member.updated`` event: the fields that changed (``audio_muted``...)."""
        return read.texts(self._fields, "updated")

    @property
    def fields(self) -> JSONDict:
        """Everything the server said about the member (a copy)."""
        return dict(self._fields)

    # -- moderation ---------------------------------------------------------------

    def _command(self, method: str, **fields: Any) -> None:
        member_command(self._request, method, self._room_session_id, self.id, **fields)

    def audio_mute(self) -> None:
        """Mute the member's microphone for everyone."""
        self._command("video.member.audio_mute")

    def audio_unmute(self) -> None:
        self._command("video.member.audio_unmute")

    def video_mute(self) -> None:
        """Stop showing the member's camera."""
        self._command("video.member.video_mute")

    def video_unmute(self) -> None:
        self._command("video.member.video_unmute")

    def set_deaf(self, value: bool) -> None:
        """``True``: the member stops hearing the room; ``False``: hears it again."""
        if not isinstance(value, bool):
            raise TypeError(f"set_deaf takes True or False, not {value!r}")
        self._command("video.member.deaf" if value else "video.member.undeaf")

    def set_input_volume(self, volume: float) -> None:
        """The member's microphone volume, -50 to 50 (0: unchanged)."""
        self._command("video.member.set_input_volume", volume=check_number("volume", volume))

    def set_output_volume(self, volume: float) -> None:
        """The member's speaker volume, -50 to 50 (0: unchanged)."""
        self._command("video.member.set_output_volume", volume=check_number("volume", volume))

    def set_microphone_volume(self, volume: float) -> None:
        """The realtime SDK's older name of :meth:`set_input_volume`."""
        self.set_input_volume(volume)

    def set_speaker_volume(self, volume: float) -> None:
        """The realtime SDK's older name of :meth:`set_output_volume`."""
        self.set_output_volume(volume)

    def set_input_sensitivity(self, value: float) -> None:
        """The level at which the member counts as talking: 0 (never) to 100 (most sensitive)."""
        self._command("video.member.set_input_sensitivity", value=check_number("value", value))

    def set_raised_hand(self, raised: bool = True) -> None:
        """Raise (or with ``raised=False`` lower) the member's hand."""
        if not isinstance(raised, bool):
            raise TypeError(f"raised must be True or False, not {raised!r}")
        self._command("video.member.raisehand" if raised else "video.member.lowerhand")

    def remove(self) -> None:
        """Remove the member from the room."""
        self._command("video.member.remove")

    def __repr__(self) -> str:
        return f"<RoomMember {self.id} {self.name!r} room_session={self._room_session_id}>"
