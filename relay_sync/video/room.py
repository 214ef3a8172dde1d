"""``RoomSession``: one running video room, its state as the server last
described it, and every command the realtime SDK's ``RoomSession`` offers,
in snake_case, each sending the same ``video.*`` request.

Like ``RoomMember``, a ``RoomSession`` is a snapshot of its state (the one
a handler receives describes the room at that event); its commands act on
the live room by id. Commands run in the caller's thread and block until
the server answered (``RelayError`` with the server's code when it refused,
for an unknown room or member say). The Video service behind it (the
``RoomHost``) keeps the subscriptions and the recording/playback/stream
handles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import RelayError
from ..rpc import JSONDict
from . import payload as read
from .handles import RoomPlayback, RoomRecording, RoomStream
from .members import RoomMember, check_number, member_command

if TYPE_CHECKING:
    from .subscription import VideoSubscription

Handler = Callable[..., Any]

MEDIA_ALLOWED = ("all", "audio-only", "video-only")


class RoomHost(Protocol):
    """What a RoomSession needs from the Video service."""

    def request(self, method: str, params: JSONDict) -> JSONDict: ...

    def member(self, fields: JSONDict, room_session_id: str) -> RoomMember: ...

    def listen_room(self, room: RoomSession, listeners: Mapping[str, Handler]) -> VideoSubscription: ...

    def start(self, room: RoomSession, kind: str, method: str, params: JSONDict) -> Any: ...

    def handles(self, room: RoomSession, kind: str, method: str) -> list[Any]: ...


class RoomSession:
    """A running room session: its state, and the commands that moderate it."""

    def __init__(self, host: RoomHost, fields: JSONDict) -> None:
        self._host = host
        self._fields = dict(fields)
        self._id = read.text(fields, "id") or read.text(fields, "room_session_id") or ""

    # -- state ------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def room_session_id(self) -> str:
        return self._id

    @property
    def room_id(self) -> str | None:
        return read.text(self._fields, "room_id")

    @property
    def name(self) -> str | None:
        return read.text(self._fields, "name")

    @property
    def display_name(self) -> str | None:
        return read.text(self._fields, "display_name")

    @property
    def event_channel(self) -> str | None:
        """The channel the room's own events are published on."""
        return read.text(self._fields, "event_channel")

    @property
    def layout_name(self) -> str | None:
        return read.text(self._fields, "layout_name")

    @property
    def hide_video_muted(self) -> bool | None:
        return read.flag(self._fields, "hide_video_muted")

    @property
    def locked(self) -> bool | None:
        return read.flag(self._fields, "locked")

    @property
    def meta(self) -> JSONDict:
        return read.mapping(self._fields, "meta")

    @property
    def preview_url(self) -> str | None:
        return read.text(self._fields, "preview_url")

    @property
    def recording(self) -> bool | None:
        """Whether a recording is running."""
        return read.flag(self._fields, "recording")

    @property
    def streaming(self) -> bool | None:
        return read.flag(self._fields, "streaming")

    @property
    def prioritize_handraise(self) -> bool | None:
        return read.flag(self._fields, "prioritize_handraise")

    @property
    def updated(self) -> list[str]:
        """In a ``room.updated`` event: the fields that changed."""
        return read.texts(self._fields, "updated")

    @property
    def fields(self) -> JSONDict:
        """Everything the server said about the room session (a copy)."""
        return dict(self._fields)

    def __repr__(self) -> str:
        return f"<RoomSession {self._id} {self.name!r}>"

    # -- requests -------------------------------------------------------------------

    def _room(self, method: str, **fields: Any) -> JSONDict:
        params: JSONDict = {"room_session_id": self._id}
        params.update({key: value for key, value in fields.items() if value is not None})
        return self._host.request(method, params)

    def _member(self, method: str, member_id: Any, **fields: Any) -> None:
        member_command(self._host.request, method, self._id, member_id, **fields)

    # -- events ----------------------------------------------------------------------

    def listen(self, **listeners: Handler) -> VideoSubscription:
        """Run handlers on the handler pool for this room's events; returns the ``Subscription``.

        Keywords are the realtime SDK's listeners in snake_case:
        ``on_member_joined``, ``on_member_left``, ``on_member_updated``,
        ``on_member_talking``, ``on_layout_changed``, ``on_room_ended``...
        (the API reference lists them all with what each handler receives).
        Blocks until the server confirmed the subscription; it is renewed
        after a reconnect. Handlers of one room run one at a time, in the
        order the server sent the events.
        """
        return self._host.listen_room(self, listeners)

    # -- members ---------------------------------------------------------------------

    def get_members(self) -> list[RoomMember]:
        """The members in the room now."""
        result = self._room("video.members.get")
        return [self._host.member(fields, self._id) for fields in read.objects(result, "members")]

    def audio_mute(self, member_id: str | None = None) -> None:
        """Mute a member's microphone. ``member_id`` (``RoomMember.id``) is required: a
        server-side client is not a member itself (``ValueError`` without it)."""
        self._member("video.member.audio_mute", member_id)

    def audio_unmute(self, member_id: str | None = None) -> None:
        self._member("video.member.audio_unmute", member_id)

    def video_mute(self, member_id: str | None = None) -> None:
        """Stop showing a member's camera."""
        self._member("video.member.video_mute", member_id)

    def video_unmute(self, member_id: str | None = None) -> None:
        self._member("video.member.video_unmute", member_id)

    def deaf(self, member_id: str | None = None) -> None:
        """The member stops hearing the room."""
        self._member("video.member.deaf", member_id)

    def undeaf(self, member_id: str | None = None) -> None:
        self._member("video.member.undeaf", member_id)

    def set_input_volume(self, member_id: str, volume: float) -> None:
        """A member's microphone volume, -50 to 50."""
        self._member("video.member.set_input_volume", member_id, volume=check_number("volume", volume))

    def set_output_volume(self, member_id: str, volume: float) -> None:
        """A member's speaker volume, -50 to 50."""
        self._member("video.member.set_output_volume", member_id, volume=check_number("volume", volume))

    def set_microphone_volume(self, member_id: str, volume: float) -> None:
        """The realtime SDK's older name of :meth:`set_input_volume`."""
        self.set_input_volume(member_id, volume)

    def set_speaker_volume(self, member_id: str, volume: float) -> None:
        """The realtime SDK's older name of :meth:`set_output_volume`."""
        self.set_output_volume(member_id, volume)

    def set_input_sensitivity(self, member_id: str, value: float) -> None:
        """The level at which a member counts as talking: 0 to 100."""
        self._member("video.member.set_input_sensitivity", member_id, value=check_number("value", value))

    def remove_member(self, member_id: str) -> None:
        """Remove a member from the room."""
        self._member("video.member.remove", member_id)

    def remove_all_members(self) -> None:
        """Remove every member."""
        self._member("video.member.remove", "all")

    def set_member_position(self, member_id: str, position: str) -> None:
        """Put a member at a layout position (``auto``, ``reserved-1``, ``standard-2``, ``off-canvas``...)."""
        self._member("video.member.set_position", member_id, position=_nonempty_text("position", position))

    def set_raised_hand(self, member_id: str, raised: bool = True) -> None:
        """Raise (or with ``raised=False`` lower) a member's hand."""
        if not isinstance(raised, bool):
            raise TypeError(f"raised must be True or False, not {raised!r}")
        self._member("video.member.raisehand" if raised else "video.member.lowerhand", member_id)

    def promote(
        self,
        member_id: str,
        *,
        media_allowed: str | None = None,
        permissions: Sequence[str] | None = None,
        meta: Mapping[str, Any] | None = None,
        join_audio_muted: bool | None = None,
        join_video_muted: bool | None = None,
    ) -> None:
        """Make an audience participant a member."""
        self._member(
            "video.member.promote",
            member_id,
            media_allowed=_media_allowed(media_allowed),
            permissions=None if permissions is None else _string_list("permissions", permissions),
            meta=None if meta is None else _meta(meta),
            join_audio_muted=join_audio_muted,
            join_video_muted=join_video_muted,
        )

    def demote(self, member_id: str, *, media_allowed: str | None = None) -> None:
        """Make a member an audience participant."""
        self._member("video.member.demote", member_id, media_allowed=_media_allowed(media_allowed))

    def get_member_meta(self, member_id: str) -> JSONDict:
        """The metadata of a member."""
        params: JSONDict = {"room_session_id": self._id, "member_id": _nonempty_text("member_id", member_id)}
        return read.mapping(self._host.request("video.member.get_meta", params), "meta")

    def set_member_meta(self, member_id: str, meta: Mapping[str, Any]) -> None:
        """Replace a member's metadata."""
        self._member("video.member.set_meta", member_id, meta=_meta(meta))

    def update_member_meta(self, member_id: str, meta: Mapping[str, Any]) -> None:
        """Merge ``meta`` into a member's metadata."""
        self._member("video.member.update_meta", member_id, meta=_meta(meta))

    def delete_member_meta(self, member_id: str, keys: Sequence[str]) -> None:
        """Remove ``keys`` from a member's metadata."""
        self._member("video.member.delete_meta", member_id, keys=_string_list("keys", keys))

    # -- the room --------------------------------------------------------------------

    def get_layouts(self) -> list[str]:
        """The names of the layouts this room can use."""
        return read.texts(self._room("video.list_available_layouts"), "layouts")

    def set_layout(self, name: str, positions: Mapping[str, str] | None = None) -> None:
        """Switch to layout ``name``; ``positions`` maps member ids to positions in it."""
        self._room("video.set_layout", name=_nonempty_text("name", name), positions=_positions(positions))

    def set_positions(self, positions: Mapping[str, str]) -> None:
        """Move members: ``{member_id: position}``."""
        if positions is None:
            raise ValueError("positions must map member ids to positions, such as {member_id: 'reserved-1'}")
        self._room("video.set_position", positions=_positions(positions))

    def set_hide_video_muted(self, value: bool) -> None:
        """``True``: members with their camera muted leave the layout."""
        if not isinstance(value, bool):
            raise TypeError(f"set_hide_video_muted takes True or False, not {value!r}")
        self._room("video.hide_video_muted" if value else "video.show_video_muted")

    def set_prioritize_handraise(self, enable: bool) -> None:
        """``True``: members who raise their hand move up in the layout."""
        if not isinstance(enable, bool):
            raise TypeError(f"set_prioritize_handraise takes True or False, not {enable!r}")
        self._host.request("video.prioritize_handraise", {"room_session_id": self._id, "enable": enable})

    def lock(self) -> None:
        """Nobody else may join until :meth:`unlock`."""
        self._room("video.lock")

    def unlock(self) -> None:
        self._room("video.unlock")

    def get_meta(self) -> JSONDict:
        """The room session's metadata."""
        return read.mapping(self._room("video.get_meta"), "meta")

    def set_meta(self, meta: Mapping[str, Any]) -> None:
        """Replace the room session's metadata."""
        self._room("video.set_meta", meta=_meta(meta))

    def update_meta(self, meta: Mapping[str, Any]) -> None:
        """Merge ``meta`` into the room session's metadata."""
        self._room("video.update_meta", meta=_meta(meta))

    def delete_meta(self, keys: Sequence[str]) -> None:
        """Remove ``keys`` from the room session's metadata."""
        self._room("video.delete_meta", keys=_string_list("keys", keys))

    # -- recordings, playbacks, streams --------------------------------------------------

    def start_recording(self) -> RoomRecording:
        """Start recording the room; ``wait()`` on the result blocks until the recording ended."""
        recording: RoomRecording = self._host.start(self, "recording", "video.recording.start", {})
        return recording

    def get_recordings(self) -> list[RoomRecording]:
        """The room's recordings."""
        return self._host.handles(self, "recording", "video.recording.list")

    def play(
        self,
        url: str,
        volume: float | None = None,
        *,
        positions: Mapping[str, str] | None = None,
        layout: str | None = None,
        seek_position: float | None = None,
    ) -> RoomPlayback:
        """Play media into the room; ``wait()`` on the result blocks until it finished.

        ``seek_position`` starts that many milliseconds in; ``layout`` and
        ``positions`` arrange the room while it plays.
        """
        params: JSONDict = {"url": _nonempty_text("url", url)}
        if volume is not None:
            params["volume"] = check_number("volume", volume)
        if seek_position is not None:
            params["seek_position"] = check_number("seek_position", seek_position)
        if layout is not None:
            params["layout"] = _nonempty_text("layout", layout)
        if positions is not None:
            params["positions"] = _positions(positions)
        playback: RoomPlayback = self._host.start(self, "playback", "video.playback.start", params)
        return playback

    def get_playbacks(self) -> list[RoomPlayback]:
        return self._host.handles(self, "playback", "video.playback.list")

    def start_stream(self, url: str) -> RoomStream:
        """Stream the room out to an RTMP(S) ``url``."""
        stream: RoomStream = self._host.start(self, "stream", "video.stream.start", {"url": _nonempty_text("url", url)})
        return stream

    def get_streams(self) -> list[RoomStream]:
        return self._host.handles(self, "stream", "video.stream.list")


def _nonempty_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")
    return value


def _string_list(name: str, value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not items or not all(isinstance(item, str) and item for item in items):
        raise ValueError(f"{name} must be a non-empty list of non-empty strings, not {value!r}")
    return items


def _meta(meta: Any) -> JSONDict:
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict, not {type(meta).__name__}")
    if not all(isinstance(key, str) for key in meta):
        raise TypeError("meta keys must be strings")
    return dict(meta)


def _positions(positions: Any) -> JSONDict | None:
    if positions is None:
        return None
    if not isinstance(positions, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in positions.items()
    ):
        raise ValueError(f"positions must map member ids to positions such as 'reserved-1', not {positions!r}")
    return dict(positions)


def _media_allowed(value: str | None) -> str | None:
    if value is not None and value not in MEDIA_ALLOWED:
        raise ValueError(f"media_allowed must be one of {', '.join(MEDIA_ALLOWED)}, not {value!r}")
    return value


def bad_response(method: str, missing: str) -> RelayError:
    return RelayError("bad_response", f"{method} was accepted but its result has no {missing}")
