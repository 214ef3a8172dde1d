"""Emulated SignalWire Video rooms: ``emulator.video``.

Tests and demos start rooms and move simulated participants in and out
(``start_room``, ``join``, ``leave``, ``talk``, ``end_room``); clients
moderate them with the realtime SDK's ``video.*`` methods and hear about
them through ``signalwire.subscribe`` on the ``video.rooms`` channel and on
each room's own channel, with the events and payloads the realtime SDK
reads. Recordings leave a WAV file behind (``GET /recordings/<id>.wav``),
playbacks run for ``media_seconds`` simulated seconds, streams until stopped.

Threads: ``video.*`` requests arrive on connection threads, the emulator API
is called from the test's thread, and playbacks finish on the network
thread. One lock guards the rooms and the subscriptions; events are pushed
while it is held, so every client sees them in the order things happened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..rpc import JSONDict
from .legs import APP, NETWORK
from .media import ok, refuse
from .network import Network
from .recordings import RecordingStore
from .server import ServerSession
from .video_state import LAYOUTS, MEMBER_DEFAULTS, Playback, Recording, Room, Stream, new_id

log = logging.getLogger(__name__)

Event = tuple[str, str, JSONDict]  # (channel the event belongs to, event type, params)

ROOMS_CHANNEL = "video.rooms"
SUBSCRIBE_METHOD = "signalwire.subscribe"
# The realtime SDK subscribes to audience counts under this name; the server sends the other.
AUDIENCE_SUBSCRIPTION_NAMES = ("video.room.audienceCount", "video.room.audience_count")
DEFAULT_MEDIA_SECONDS = 10.0
MAX_ROOMS = 1000
# Protocols whose subscriptions are kept; beyond it those with no live session are forgotten.
MAX_SUBSCRIBERS = 1000

MEMBER_FLAGS = {
    "video.member.audio_mute": ("audio_muted", True),
    "video.member.audio_unmute": ("audio_muted", False),
    "video.member.video_mute": ("video_muted", True),
    "video.member.video_unmute": ("video_muted", False),
    "video.member.deaf": ("deaf", True),
    "video.member.undeaf": ("deaf", False),
    "video.member.raisehand": ("handraised", True),
    "video.member.lowerhand": ("handraised", False),
}
MEMBER_NUMBERS = {  # method: (member field, request param)
    "video.member.set_input_volume": ("input_volume", "volume"),
    "video.member.set_output_volume": ("output_volume", "volume"),
    "video.member.set_input_sensitivity": ("input_sensitivity", "value"),
}


class VideoRooms:
    """The rooms of the emulated space, and the ``video.*`` methods that act on them."""

    def __init__(self, net: Network, recordings: RecordingStore, base_url: Callable[[], str]) -> None:
        self.net = net
        self.recordings = recordings
        self._base_url = base_url
        self.media_seconds = DEFAULT_MEDIA_SECONDS  # how long every played file lasts (simulated)
        self._lock = threading.RLock()
        self._rooms: dict[str, Room] = {}
        self._by_channel: dict[str, Room] = {}
        # protocol -> event channel -> event types it asked for
        self._subscriptions: dict[str, dict[str, set[str]]] = {}
        self._rooms_channel = f"{ROOMS_CHANNEL}.{new_id()}"  # the name project-wide events carry
        self.methods: dict[str, Callable[[ServerSession, JSONDict], JSONDict]] = {
            SUBSCRIBE_METHOD: self._subscribe,
            "video.rooms.get": self._list_rooms,
            "video.room.get": self._room_method(
                lambda room, params, out: ok(room=room.session_json(with_members=True))
            ),
            "video.members.get": self._room_method(
                lambda room, params, out: ok(members=[dict(m) for m in room.members.values()])
            ),
            "video.list_available_layouts": self._room_method(lambda room, params, out: ok(layouts=list(LAYOUTS))),
            "video.set_layout": self._room_method(self._set_layout),
            "video.set_position": self._room_method(self._set_positions),
            "video.hide_video_muted": self._room_method(self._room_setting("hide_video_muted", True)),
            "video.show_video_muted": self._room_method(self._room_setting("hide_video_muted", False)),
            "video.lock": self._room_method(self._room_setting("locked", True)),
            "video.unlock": self._room_method(self._room_setting("locked", False)),
            "video.prioritize_handraise": self._room_method(self._prioritize_handraise),
            "video.get_meta": self._room_method(lambda room, params, out: ok(meta=dict(room.meta))),
            "video.set_meta": self._room_method(self._room_meta("set")),
            "video.update_meta": self._room_method(self._room_meta("update")),
            "video.delete_meta": self._room_method(self._room_meta("delete")),
            "video.member.remove": self._room_method(self._remove_member),
            "video.member.set_position": self._member_method(self._set_member_position),
            "video.member.get_meta": self._member_method(
                lambda room, member, params, out: ok(meta=dict(member["meta"]))
            ),
            "video.member.set_meta": self._member_method(self._member_meta("set")),
            "video.member.update_meta": self._member_method(self._member_meta("update")),
            "video.member.delete_meta": self._member_method(self._member_meta("delete")),
            "video.member.promote": self._room_method(self._promote),
            "video.member.demote": self._member_method(self._demote),
            "video.recording.list": self._room_method(
                lambda room, params, out: ok(recordings=[dict(r.fields) for r in room.recordings.values()])
            ),
            "video.recording.start": self._room_method(self._start_recording),
            "video.recording.pause": self._handle_method("recording", self._pause_recording),
            "video.recording.resume": self._handle_method("recording", self._resume_recording),
            "video.recording.stop": self._handle_method("recording", self._stop_recording),
            "video.playback.list": self._room_method(
                lambda room, params, out: ok(playbacks=[dict(p.fields) for p in room.playbacks.values()])
            ),
            "video.playback.start": self._room_method(self._start_playback),
            "video.playback.pause": self._handle_method("playback", self._pause_playback),
            "video.playback.resume": self._handle_method("playback", self._resume_playback),
            "video.playback.stop": self._handle_method("playback", self._stop_playback),
            "video.playback.set_volume": self._handle_method("playback", self._playback_volume),
            "video.playback.seek_absolute": self._handle_method("playback", self._seek(relative=False)),
            "video.playback.seek_relative": self._handle_method("playback", self._seek(relative=True)),
            "video.stream.list": self._room_method(
                lambda room, params, out: ok(streams=[dict(s.fields) for s in room.streams.values()])
            ),
            "video.stream.start": self._room_method(self._start_stream),
            "video.stream.stop": self._handle_method("stream", self._stop_stream),
        }
        for method, (key, value) in MEMBER_FLAGS.items():
            self.methods[method] = self._member_method(self._member_setter(key, value))
        for method, (key, param) in MEMBER_NUMBERS.items():
            self.methods[method] = self._member_method(self._member_number(key, param))

    # -- the emulator API (the test's thread) ---------------------------------------------

    def start_room(self, name: str, *, display_name: str | None = None, meta: JSONDict | None = None) -> str:
        """A room session named ``name`` starts; returns its id (``video.room.started`` follows)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a room needs a non-empty name, not {name!r}")
        room_session_id = new_id()
        room = Room(
            id=room_session_id,
            room_id=new_id(),
            name=name,
            display_name=display_name or name,
            event_channel=f"room.{new_id()}",
            meta=dict(meta or {}),
        )
        with self._lock:
            if len(self._rooms) >= MAX_ROOMS:
                raise RuntimeError(f"the emulator runs at most {MAX_ROOMS} rooms at once")
            self._rooms[room.id] = room
            self._by_channel[room.event_channel] = room
            self.net.note(NETWORK, f"room {name!r} started", kind="video.room.started")
            self._send([(ROOMS_CHANNEL, "video.room.started", room.event_params()), _room_event(room, "started")])
        return room_session_id

    def join(
        self,
        room_session_id: str,
        name: str,
        *,
        audio_muted: bool = False,
        video_muted: bool = False,
        meta: JSONDict | None = None,
        member_type: str = "member",
    ) -> str:
        """``name`` joins the room; returns their member id. ``PermissionError`` when the room is locked."""
        with self._lock:
            room = self._room(room_session_id)
            if room.locked:
                raise PermissionError(f"room {room.name!r} is locked")
            member = {
                **MEMBER_DEFAULTS,
                "id": new_id(),
                "room_id": room.room_id,
                "room_session_id": room.id,
                "name": name,
                "type": member_type,
                "audio_muted": audio_muted,
                "video_muted": video_muted,
                "meta": dict(meta or {}),
                "current_position": f"standard-{len(room.members) + 1}",
            }
            room.members[member["id"]] = member
            self.net.note(NETWORK, f"{name} joined room {room.name!r}", kind="video.member.joined")
            self._send(
                [
                    (room.event_channel, "video.member.joined", room.scoped(member=dict(member))),
                    (room.event_channel, "video.layout.changed", room.scoped(layout=room.layout_json())),
                ]
            )
            return str(member["id"])

    def leave(self, room_session_id: str, member_id: str) -> None:
        """The member leaves the room."""
        with self._lock:
            room = self._room(room_session_id)
            if member_id not in room.members:
                raise ValueError(f"no member {member_id} in room {room.name!r}")
            self._send(self._member_leaves(room, member_id))

    def talk(self, room_session_id: str, member_id: str, talking: bool = True) -> None:
        """The member starts (or stops) talking: ``video.member.talking``."""
        with self._lock:
            room = self._room(room_session_id)
            member = room.members.get(member_id)
            if member is None:
                raise ValueError(f"no member {member_id} in room {room.name!r}")
            member["talking"] = talking
            event = room.scoped(member={"id": member_id, "talking": talking})
            self._send([(room.event_channel, "video.member.talking", event)])

    def end_room(self, room_session_id: str) -> None:
        """The room session ends: what runs in it ends first, then ``video.room.ended``."""
        with self._lock:
            room = self._room(room_session_id)
            events: list[Event] = []
            for recording in list(room.recordings.values()):
                if recording.fields["state"] != "completed":
                    events.extend(self._finish_recording(room, recording))
            for playback in list(room.playbacks.values()):
                events.extend(self._finish_playback(room, playback))
            for stream in list(room.streams.values()):
                events.extend(self._finish_stream(room, stream))
            events.extend(
                (room.event_channel, "video.member.left", room.scoped(member=dict(m))) for m in room.members.values()
            )
            room.members.clear()
            events.append(_room_event(room, "ended"))
            events.append((ROOMS_CHANNEL, "video.room.ended", room.event_params()))
            self.net.note(NETWORK, f"room {room.name!r} ended", kind="video.room.ended")
            self._send(events)
            del self._rooms[room.id]
            del self._by_channel[room.event_channel]
            for channels in self._subscriptions.values():
                channels.pop(room.event_channel, None)

    def set_audience_count(self, room_session_id: str, total: int) -> None:
        """``total`` audience participants watch the room: ``video.room.audience_count``."""
        with self._lock:
            room = self._room(room_session_id)
            self._send([(room.event_channel, "video.room.audience_count", room.scoped(total=total))])

    def room(self, room_session_id: str) -> JSONDict:
        """A snapshot of a running room, its members included (for assertions)."""
        with self._lock:
            return self._room(room_session_id).session_json(with_members=True)

    def member(self, room_session_id: str, member_id: str) -> JSONDict:
        """A snapshot of one member (for assertions)."""
        with self._lock:
            member = self._room(room_session_id).members.get(member_id)
            if member is None:
                raise ValueError(f"no member {member_id} in room session {room_session_id}")
            return dict(member)

    @property
    def room_ids(self) -> list[str]:
        with self._lock:
            return list(self._rooms)

    def _room(self, room_session_id: str) -> Room:
        room = self._rooms.get(room_session_id)
        if room is None:
            raise ValueError(f"no running room session {room_session_id!r}")
        return room

    # -- delivery ---------------------------------------------------------------------------

    def _send(self, events: list[Event]) -> None:
        """Push each event to every protocol subscribed to it on its channel."""
        with self._lock:
            for channel, event_type, params in events:
                wire_channel = self._rooms_channel if channel == ROOMS_CHANNEL else channel
                for protocol, channels in list(self._subscriptions.items()):
                    if _wants(channels.get(channel, ()), event_type):
                        self.net.outbox.push(protocol, event_type, params, event_channel=wire_channel)

    def _subscribe(self, session: ServerSession, params: JSONDict) -> JSONDict:
        channel, events = params.get("event_channel"), params.get("events")
        if not isinstance(channel, str) or not channel:
            return refuse("400", "signalwire.subscribe needs an event_channel")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
            return refuse("400", "signalwire.subscribe needs events: a non-empty list of event names")
        protocol = session.protocol
        assert protocol is not None
        with self._lock:
            room = self._by_channel.get(channel)
            if channel != ROOMS_CHANNEL and room is None:
                return refuse("404", f"no such event channel: {channel}")
            if protocol not in self._subscriptions:
                self._forget_gone_subscribers()
            self._subscriptions.setdefault(protocol, {}).setdefault(channel, set()).update(events)
            self.net.note(APP, f"subscribed to {channel}", kind=SUBSCRIBE_METHOD)
            if room is not None and params.get("get_initial_state") and "video.room.subscribed" in events:
                state = room.event_params()
                state["room_session"]["members"] = [dict(m) for m in room.members.values()]
                # To this protocol only; before the answer, like every video event (see _room_method).
                self.net.outbox.push(protocol, "video.room.subscribed", state, event_channel=channel)
        return ok("Subscribed")

    def table_sizes(self) -> dict[str, int]:
        with self._lock:
            return {"video_rooms": len(self._rooms), "video_subscribers": len(self._subscriptions)}

    def client_gone(self, protocol: str) -> None:
        """No session resumed ``protocol`` in time: its subscriptions go (network thread)."""
        if self.net.outbox.live_session(protocol) is not None:
            return
        with self._lock:
            self._subscriptions.pop(protocol, None)

    def _forget_gone_subscribers(self) -> None:
        for protocol in list(self._subscriptions):
            if len(self._subscriptions) < MAX_SUBSCRIBERS:
                return
            if self.net.outbox.live_session(protocol) is None:
                del self._subscriptions[protocol]

    # -- request plumbing ----------------------------------------------------------------------

    def _room_method(
        self, act: Callable[[Room, JSONDict, list[Event]], JSONDict]
    ) -> Callable[[ServerSession, JSONDict], JSONDict]:
        def handle(session: ServerSession, params: JSONDict) -> JSONDict:
            room_session_id = params.get("room_session_id")
            if not isinstance(room_session_id, str) or not room_session_id:
                return refuse("400", "room_session_id is required")
            with self._lock:
                room = self._rooms.get(room_session_id)
                if room is None:
                    return refuse("404", f"room session {room_session_id} not found")
                events: list[Event] = []
                result = act(room, params, events)
                # Sent before the answer, while the lock is held: pushed later, they could
                # overtake (or be overtaken by) what another thread does to the room meanwhile.
                self._send(events)
                return result

        return handle

    def _member_method(
        self, act: Callable[[Room, JSONDict, JSONDict, list[Event]], JSONDict]
    ) -> Callable[[ServerSession, JSONDict], JSONDict]:
        def with_member(room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
            member_id = params.get("member_id")
            if not isinstance(member_id, str) or not member_id:
                return refuse("400", "member_id is required")
            member = room.members.get(member_id)
            if member is None:
                return refuse("404", f"member {member_id} not found in room session {room.id}")
            return act(room, member, params, events)

        return self._room_method(with_member)

    def _handle_method(
        self, kind: str, act: Callable[[Room, Any, JSONDict, list[Event]], JSONDict]
    ) -> Callable[[ServerSession, JSONDict], JSONDict]:
        def with_handle(room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
            handle_id = params.get(f"{kind}_id")
            tables: dict[str, dict[str, Any]] = {
                "recording": room.recordings,
                "playback": room.playbacks,
                "stream": room.streams,
            }
            table = tables[kind]
            handle = table.get(handle_id) if isinstance(handle_id, str) else None
            if handle is None:
                return refuse("404", f"{kind} {handle_id!r} not found in room session {room.id}")
            if handle.fields["state"] == "completed":
                return refuse("409", f"{kind} {handle_id} has already ended")
            return act(room, handle, params, events)

        return self._room_method(with_handle)

    def _list_rooms(self, session: ServerSession, params: JSONDict) -> JSONDict:
        with self._lock:
            return ok(rooms=[room.session_json(with_members=True) for room in self._rooms.values()])

    # -- rooms ----------------------------------------------------------------------------------

    def _update_room(self, room: Room, events: list[Event], *derived: str, **changes: Any) -> None:
        """Apply ``changes``; ``room.updated`` names them and the ``derived`` fields that followed."""
        for key, value in changes.items():
            setattr(room, key, value)
        updated = sorted({*derived, *changes})
        events.append((room.event_channel, "video.room.updated", room.event_params(updated=updated)))

    def _room_setting(self, key: str, value: bool) -> Callable[[Room, JSONDict, list[Event]], JSONDict]:
        def act(room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
            self._update_room(room, events, **{key: value})
            if key == "hide_video_muted":  # members with their camera off leave (or rejoin) the layout
                for member in room.members.values():
                    if member["video_muted"] and member["visible"] == value:
                        events.append(self._member_update(room, member, visible=not value))
            self.net.note(APP, f"set {key}={value} in room {room.name!r}", kind=f"video.{key}")
            return ok()

        return act

    def _prioritize_handraise(self, room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
        enable = params.get("enable")
        if not isinstance(enable, bool):
            return refuse("400", "enable must be true or false")
        self._update_room(room, events, prioritize_handraise=enable)
        return ok()

    def _set_layout(self, room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
        name = params.get("name")
        if name not in LAYOUTS:
            return refuse("400", f"unknown layout {name!r}; see video.list_available_layouts")
        positions = params.get("positions")
        if positions is not None:
            refused = self._place(room, positions, events)
            if refused is not None:
                return refused
        self._update_room(room, events, layout_name=name)
        events.append((room.event_channel, "video.layout.changed", room.scoped(layout=room.layout_json())))
        self.net.note(APP, f"set layout {name} in room {room.name!r}", kind="video.set_layout")
        return ok()

    def _set_positions(self, room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
        refused = self._place(room, params.get("positions"), events)
        if refused is not None:
            return refused
        events.append((room.event_channel, "video.layout.changed", room.scoped(layout=room.layout_json())))
        return ok()

    def _place(self, room: Room, positions: Any, events: list[Event]) -> JSONDict | None:
        if not isinstance(positions, dict) or not all(isinstance(p, str) for p in positions.values()):
            return refuse("400", "positions must map member ids to positions")
        unknown = [member_id for member_id in positions if member_id not in room.members]
        if unknown:
            return refuse("404", f"member {unknown[0]} not found in room session {room.id}")
        for member_id, position in positions.items():
            events.append(
                self._member_update(
                    room, room.members[member_id], requested_position=position, current_position=position
                )
            )
        return None

    def _room_meta(self, how: str) -> Callable[[Room, JSONDict, list[Event]], JSONDict]:
        def act(room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
            meta = _changed_meta(room.meta, how, params)
            if meta is None:
                return refuse("400", "meta must be an object" if how != "delete" else "keys must be a list of strings")
            self._update_room(room, events, meta=meta)
            return ok()

        return act

    # -- members --------------------------------------------------------------------------------

    def _member_update(self, room: Room, member: JSONDict, **changes: Any) -> Event:
        """Apply ``changes`` to a member; the event carries only them, as the server's does."""
        member.update(changes)
        partial = {"id": member["id"], "room_id": room.room_id, "room_session_id": room.id, "updated": sorted(changes)}
        partial.update(changes)
        return (room.event_channel, "video.member.updated", room.scoped(member=partial))

    def _member_setter(self, key: str, value: bool) -> Callable[[Room, JSONDict, JSONDict, list[Event]], JSONDict]:
        def act(room: Room, member: JSONDict, params: JSONDict, events: list[Event]) -> JSONDict:
            if member.get(key) != value:
                changes = {key: value}
                if key == "video_muted" and room.hide_video_muted:
                    changes["visible"] = not value  # the room hides members with their camera off
                events.append(self._member_update(room, member, **changes))
            self.net.note(
                APP, f"set {key}={value} for {member['name']} in room {room.name!r}", kind=f"video.member.{key}"
            )
            return ok()

        return act

    def _member_number(self, key: str, param: str) -> Callable[[Room, JSONDict, JSONDict, list[Event]], JSONDict]:
        def act(room: Room, member: JSONDict, params: JSONDict, events: list[Event]) -> JSONDict:
            value = params.get(param)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return refuse("400", f"{param} must be a number")
            events.append(self._member_update(room, member, **{key: value}))
            return ok()

        return act

    def _set_member_position(self, room: Room, member: JSONDict, params: JSONDict, events: list[Event]) -> JSONDict:
        position = params.get("position")
        if not isinstance(position, str) or not position:
            return refuse("400", "position is required")
        events.append(self._member_update(room, member, requested_position=position, current_position=position))
        events.append((room.event_channel, "video.layout.changed", room.scoped(layout=room.layout_json())))
        return ok()

    def _member_meta(self, how: str) -> Callable[[Room, JSONDict, JSONDict, list[Event]], JSONDict]:
        def act(room: Room, member: JSONDict, params: JSONDict, events: list[Event]) -> JSONDict:
            meta = _changed_meta(member["meta"], how, params)
            if meta is None:
                return refuse("400", "meta must be an object" if how != "delete" else "keys must be a list of strings")
            events.append(self._member_update(room, member, meta=meta))
            return ok()

        return act

    def _member_leaves(self, room: Room, member_id: str) -> list[Event]:
        member = room.members.pop(member_id)
        self.net.note(NETWORK, f"{member['name']} left room {room.name!r}", kind="video.member.left")
        return [
            (room.event_channel, "video.member.left", room.scoped(member=dict(member))),
            (room.event_channel, "video.layout.changed", room.scoped(layout=room.layout_json())),
        ]

    def _remove_member(self, room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
        member_id = params.get("member_id")
        if member_id == "all":
            for each in list(room.members):
                events.extend(self._member_leaves(room, each))
            return ok()
        if not isinstance(member_id, str) or not member_id:
            return refuse("400", "member_id is required")
        if member_id not in room.members:
            return refuse("404", f"member {member_id} not found in room session {room.id}")
        self.net.note(
            APP, f"removed {room.members[member_id]['name']} from room {room.name!r}", kind="video.member.remove"
        )
        events.extend(self._member_leaves(room, member_id))
        return ok()

    def _demote(self, room: Room, member: JSONDict, params: JSONDict, events: list[Event]) -> JSONDict:
        """The member moves to the audience: they leave the members, the audience grows."""
        events.extend(self._member_leaves(room, member["id"]))
        room.audience[member["id"]] = member
        events.append((room.event_channel, "video.room.audience_count", room.scoped(total=len(room.audience))))
        return ok()

    def _promote(self, room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
        """An audience participant (a demoted member) becomes a member again."""
        member_id = params.get("member_id")
        if not isinstance(member_id, str) or not member_id:
            return refuse("400", "member_id is required")
        member = room.audience.pop(member_id, None)
        if member is None:
            return refuse("404", f"no audience participant {member_id} in room session {room.id}")
        for flag, param in (("audio_muted", "join_audio_muted"), ("video_muted", "join_video_muted")):
            if isinstance(params.get(param), bool):
                member[flag] = params[param]
        if isinstance(params.get("meta"), dict):
            member["meta"] = dict(params["meta"])
        room.members[member_id] = member
        events.append((room.event_channel, "video.member.joined", room.scoped(member=dict(member))))
        events.append((room.event_channel, "video.room.audience_count", room.scoped(total=len(room.audience))))
        return ok()

    # -- recordings -----------------------------------------------------------------------------

    def _start_recording(self, room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
        recording_id = new_id()
        fields: JSONDict = {
            "id": recording_id,
            "state": "recording",
            "duration": None,
            "started_at": time.time(),
            "ended_at": None,
        }
        room.recordings[recording_id] = Recording(fields, recording_since=time.monotonic())
        events.append((room.event_channel, "video.recording.started", room.scoped(recording=dict(fields))))
        self._update_room(room, events, "recording")
        self.net.note(APP, f"started recording room {room.name!r}", kind="video.recording.start")
        return ok(recording=dict(fields))

    def _simulated_since(self, since: float) -> float:
        return (time.monotonic() - since) / self.net.scheduler.time_factor

    def _pause_recording(self, room: Room, recording: Recording, params: JSONDict, events: list[Event]) -> JSONDict:
        if recording.recording_since is not None:
            recording.recorded += self._simulated_since(recording.recording_since)
            recording.recording_since = None
        recording.fields["state"] = "paused"
        events.append((room.event_channel, "video.recording.updated", room.scoped(recording=dict(recording.fields))))
        return ok()

    def _resume_recording(self, room: Room, recording: Recording, params: JSONDict, events: list[Event]) -> JSONDict:
        if recording.recording_since is None:
            recording.recording_since = time.monotonic()
        recording.fields["state"] = "recording"
        events.append((room.event_channel, "video.recording.updated", room.scoped(recording=dict(recording.fields))))
        return ok()

    def _stop_recording(self, room: Room, recording: Recording, params: JSONDict, events: list[Event]) -> JSONDict:
        events.extend(self._finish_recording(room, recording))
        self.net.note(APP, f"stopped recording room {room.name!r}", kind="video.recording.stop")
        return ok()

    def _finish_recording(self, room: Room, recording: Recording) -> list[Event]:
        if recording.recording_since is not None:
            recording.recorded += self._simulated_since(recording.recording_since)
            recording.recording_since = None
        seconds = round(recording.recorded, 2)
        recording_file = self.recordings.add(seconds)
        url = f"{self._base_url()}/recordings/{recording_file}.wav"
        recording.fields.update(state="completed", duration=seconds, ended_at=time.time(), url=url)
        del room.recordings[recording.fields["id"]]
        self.net.note(NETWORK, f"recorded room {room.name!r} for {seconds:.1f} s: {url}", kind="recording")
        events: list[Event] = [
            (room.event_channel, "video.recording.ended", room.scoped(recording=dict(recording.fields)))
        ]
        self._update_room(room, events, "recording")
        return events

    # -- playbacks ------------------------------------------------------------------------------

    def _start_playback(self, room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
        url = params.get("url")
        if not isinstance(url, str) or not url:
            return refuse("400", "url is required")
        volume = params.get("volume", 0)
        seek = params.get("seek_position") or 0
        if (
            isinstance(volume, bool)
            or not isinstance(volume, (int, float))
            or isinstance(seek, bool)
            or not isinstance(seek, (int, float))
        ):
            return refuse("400", "volume and seek_position must be numbers")
        length_ms = self.media_seconds * 1000
        playback_id, start_ms = new_id(), min(max(0.0, float(seek)), length_ms)
        fields: JSONDict = {
            "id": playback_id,
            "url": url,
            "state": "playing",
            "volume": volume,
            "position": start_ms,
            "seekable": True,
            "started_at": time.time(),
            "ended_at": None,
        }
        playback = Playback(fields, length_ms=length_ms, position_ms=start_ms)
        room.playbacks[playback_id] = playback
        self._play(room, playback)
        events.append((room.event_channel, "video.playback.started", room.scoped(playback=dict(fields))))
        self.net.note(APP, f"playing {url} in room {room.name!r}", kind="video.playback.start")
        return ok(playback=dict(fields))

    def _position(self, playback: Playback) -> float:
        position = playback.position_ms
        if playback.playing_since is not None:
            position += self._simulated_since(playback.playing_since) * 1000
        return min(position, playback.length_ms)

    def _play(self, room: Room, playback: Playback) -> None:
        """(Re)start the clock of a playing playback: it finishes when the media runs out."""
        if playback.finish is not None:
            playback.finish.cancel()
        playback.playing_since = time.monotonic()
        remaining = (playback.length_ms - playback.position_ms) / 1000
        playback.finish = self.net.scheduler.after(remaining, lambda: self._playback_ran_out(room, playback))

    def _hold(self, playback: Playback) -> None:
        playback.position_ms = self._position(playback)
        playback.fields["position"] = round(playback.position_ms)
        playback.playing_since = None
        if playback.finish is not None:
            playback.finish.cancel()
            playback.finish = None

    def _playback_ran_out(self, room: Room, playback: Playback) -> None:
        with self._lock:
            if room.playbacks.get(playback.fields["id"]) is playback:
                self._send(self._finish_playback(room, playback))

    def _finish_playback(self, room: Room, playback: Playback) -> list[Event]:
        self._hold(playback)
        playback.fields.update(state="completed", ended_at=time.time())
        del room.playbacks[playback.fields["id"]]
        self.net.note(NETWORK, f"playback of {playback.fields['url']} ended in room {room.name!r}", kind="playback")
        return [(room.event_channel, "video.playback.ended", room.scoped(playback=dict(playback.fields)))]

    def _playback_updated(self, room: Room, playback: Playback, events: list[Event]) -> JSONDict:
        playback.fields["position"] = round(self._position(playback))
        events.append((room.event_channel, "video.playback.updated", room.scoped(playback=dict(playback.fields))))
        return ok()

    def _pause_playback(self, room: Room, playback: Playback, params: JSONDict, events: list[Event]) -> JSONDict:
        self._hold(playback)
        playback.fields["state"] = "paused"
        return self._playback_updated(room, playback, events)

    def _resume_playback(self, room: Room, playback: Playback, params: JSONDict, events: list[Event]) -> JSONDict:
        if playback.playing_since is None:
            self._play(room, playback)
        playback.fields["state"] = "playing"
        return self._playback_updated(room, playback, events)

    def _stop_playback(self, room: Room, playback: Playback, params: JSONDict, events: list[Event]) -> JSONDict:
        events.extend(self._finish_playback(room, playback))
        return ok()

    def _playback_volume(self, room: Room, playback: Playback, params: JSONDict, events: list[Event]) -> JSONDict:
        volume = params.get("volume")
        if isinstance(volume, bool) or not isinstance(volume, (int, float)):
            return refuse("400", "volume must be a number")
        playback.fields["volume"] = volume
        return self._playback_updated(room, playback, events)

    def _seek(self, *, relative: bool) -> Callable[[Room, Playback, JSONDict, list[Event]], JSONDict]:
        def act(room: Room, playback: Playback, params: JSONDict, events: list[Event]) -> JSONDict:
            position = params.get("position")
            if isinstance(position, bool) or not isinstance(position, (int, float)):
                return refuse("400", "position must be a number of milliseconds")
            playing = playback.playing_since is not None
            self._hold(playback)
            target = playback.position_ms + position if relative else position
            playback.position_ms = min(max(0.0, float(target)), playback.length_ms)
            if playing:
                self._play(room, playback)
            return self._playback_updated(room, playback, events)

        return act

    # -- streams --------------------------------------------------------------------------------

    def _start_stream(self, room: Room, params: JSONDict, events: list[Event]) -> JSONDict:
        url = params.get("url")
        if not isinstance(url, str) or not url.startswith(("rtmp://", "rtmps://")):
            return refuse("400", "url must be an rtmp:// or rtmps:// address")
        stream_id = new_id()
        fields: JSONDict = {
            "id": stream_id,
            "url": url,
            "state": "streaming",
            "duration": None,
            "started_at": time.time(),
            "ended_at": None,
        }
        room.streams[stream_id] = Stream(fields)
        events.append((room.event_channel, "video.stream.started", room.scoped(stream=dict(fields))))
        self._update_room(room, events, "streaming")
        self.net.note(APP, f"streaming room {room.name!r} to {url}", kind="video.stream.start")
        return ok(stream=dict(fields))

    def _stop_stream(self, room: Room, stream: Stream, params: JSONDict, events: list[Event]) -> JSONDict:
        events.extend(self._finish_stream(room, stream))
        return ok()

    def _finish_stream(self, room: Room, stream: Stream) -> list[Event]:
        seconds = round(self._simulated_since(stream.started), 2)
        stream.fields.update(state="completed", duration=seconds, ended_at=time.time())
        del room.streams[stream.fields["id"]]
        events: list[Event] = [(room.event_channel, "video.stream.ended", room.scoped(stream=dict(stream.fields)))]
        self._update_room(room, events, "streaming")
        return events


def _room_event(room: Room, what: str) -> Event:
    return (room.event_channel, f"video.room.{what}", room.event_params())


def _wants(subscribed: Any, event_type: str) -> bool:
    if event_type == "video.room.audience_count":
        return any(name in subscribed for name in AUDIENCE_SUBSCRIPTION_NAMES)
    return event_type in subscribed


def _changed_meta(current: JSONDict, how: str, params: JSONDict) -> JSONDict | None:
    """The metadata after a set, update or delete (None: the request was malformed)."""
    if how == "delete":
        keys = params.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            return None
        return {k: v for k, v in current.items() if k not in keys}
    meta = params.get("meta")
    if not isinstance(meta, dict):
        return None
    return dict(meta) if how == "set" else {**current, **meta}
