"""The state of emulated video rooms and how it looks on the wire: rooms,
members, recordings, playbacks and streams, each with the JSON the realtime
SDK reads from RELAY payloads.

Plain data; the engine in ``video.py`` changes it under its lock.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..rpc import JSONDict
from .clock import Scheduled

LAYOUTS = (
    "grid-responsive",
    "grid-responsive-mobile",
    "highlight-1-responsive",
    "1x1",
    "2x1",
    "2x2",
    "3x3",
    "4x4",
    "5up",
    "6x6",
    "8x8",
    "10x10",
)
DEFAULT_LAYOUT = "grid-responsive"

# A member as the server first describes it (the realtime SDK's VideoMemberEntity, snake_case).
MEMBER_DEFAULTS: JSONDict = {
    "type": "member",
    "parent_id": "",
    "requested_position": "auto",
    "visible": True,
    "audio_muted": False,
    "video_muted": False,
    "deaf": False,
    "input_volume": 0,
    "output_volume": 0,
    "input_sensitivity": 30,
    "handraised": False,
    "talking": False,
}


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Recording:
    fields: JSONDict
    recorded: float = 0.0  # simulated seconds recorded before the current stretch
    recording_since: float | None = None  # monotonic start of the current stretch (None: paused)


@dataclass
class Playback:
    fields: JSONDict
    length_ms: float
    position_ms: float = 0.0  # where it was when it last started playing, paused or seeked
    playing_since: float | None = None  # monotonic time it last started playing (None: paused)
    finish: Scheduled | None = None


@dataclass
class Stream:
    fields: JSONDict
    started: float = field(default_factory=time.monotonic)


@dataclass
class Room:
    """One emulated room session."""

    id: str
    room_id: str
    name: str
    display_name: str
    event_channel: str
    meta: JSONDict
    layout_name: str = DEFAULT_LAYOUT
    locked: bool = False
    hide_video_muted: bool = False
    prioritize_handraise: bool = False
    members: dict[str, JSONDict] = field(default_factory=dict)  # by id, in join order
    audience: dict[str, JSONDict] = field(default_factory=dict)  # demoted members, by id
    recordings: dict[str, Recording] = field(default_factory=dict)
    playbacks: dict[str, Playback] = field(default_factory=dict)
    streams: dict[str, Stream] = field(default_factory=dict)

    @property
    def recording(self) -> bool:
        return any(r.fields["state"] != "completed" for r in self.recordings.values())

    @property
    def streaming(self) -> bool:
        return any(s.fields["state"] != "completed" for s in self.streams.values())

    def session_json(self, *, with_members: bool = False) -> JSONDict:
        """The room session as events and ``video.room.get`` describe it."""
        described: JSONDict = {
            "id": self.id,
            "room_id": self.room_id,
            "event_channel": self.event_channel,
            "name": self.name,
            "display_name": self.display_name,
            "layout_name": self.layout_name,
            "locked": self.locked,
            "hide_video_muted": self.hide_video_muted,
            "prioritize_handraise": self.prioritize_handraise,
            "meta": dict(self.meta),
            "recording": self.recording,
            "streaming": self.streaming,
        }
        if with_members:
            described["members"] = [dict(m) for m in self.members.values()]
        return described

    def event_params(self, **extra: Any) -> JSONDict:
        """The params of a room event: the session, and the older ``room`` shape beside it."""
        session = self.session_json()
        session.update(extra)
        room = {k: v for k, v in session.items() if k != "id"}
        room["room_session_id"] = self.id
        return {"room_session_id": self.id, "room_id": self.room_id, "room_session": session, "room": room}

    def scoped(self, **fields: Any) -> JSONDict:
        """The params of a member, layout, recording, playback or stream event."""
        return {"room_session_id": self.id, "room_id": self.room_id, **fields}

    def layout_json(self) -> JSONDict:
        visible = [m for m in self.members.values() if m.get("visible", True)]
        columns = max(1, int(len(visible) ** 0.5 + 0.999))
        size = 100.0 / columns
        layers = []
        for index, member in enumerate(visible):
            layers.append(
                {
                    "member_id": member["id"],
                    "position": member.get("current_position") or f"standard-{index + 1}",
                    "x": (index % columns) * size,
                    "y": (index // columns) * size,
                    "width": size,
                    "height": size,
                    "layer_index": index,
                    "z_index": 0,
                    "reservation": "",
                    "playing_file": False,
                    "visible": True,
                }
            )
        return {
            "id": f"{self.id}:{self.layout_name}",
            "name": self.layout_name,
            "room_session_id": self.id,
            "room_id": self.room_id,
            "layers": layers,
        }
