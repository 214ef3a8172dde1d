"""The two room events that describe no room, member or handle:
``layout.changed`` (``RoomLayout``) and ``room.audience_count``
(``RoomAudienceCount``). Immutable; built on the I/O thread, so building
them never raises whatever the payload holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..rpc import JSONDict
from . import payload as read


@dataclass(frozen=True)
class RoomLayoutLayer:
    """One tile of a layout; ``member_id`` is ``None`` for an empty tile."""

    member_id: str | None
    position: str | None
    x: float | None
    y: float | None
    width: float | None
    height: float | None
    layer_index: float | None
    z_index: float | None
    reservation: str | None
    playing_file: bool | None
    visible: bool | None

    @classmethod
    def from_payload(cls, layer: JSONDict) -> RoomLayoutLayer:
        return cls(
            member_id=read.text(layer, "member_id") or None,
            position=read.text(layer, "position"),
            x=read.number(layer, "x"),
            y=read.number(layer, "y"),
            width=read.number(layer, "width"),
            height=read.number(layer, "height"),
            layer_index=read.number(layer, "layer_index"),
            z_index=read.number(layer, "z_index"),
            reservation=read.text(layer, "reservation"),
            playing_file=read.flag(layer, "playing_file"),
            visible=read.flag(layer, "visible"),
        )


@dataclass(frozen=True)
class RoomLayout:
    """The layout a room switched to (``layout.changed``)."""

    id: str | None
    name: str | None
    room_session_id: str | None
    room_id: str | None
    layers: tuple[RoomLayoutLayer, ...] = field(default=())

    @classmethod
    def from_payload(cls, params: JSONDict) -> RoomLayout:
        layout = read.mapping(params, "layout")
        return cls(
            id=read.text(layout, "id"),
            name=read.text(layout, "name"),
            room_session_id=read.text(params, "room_session_id") or read.text(layout, "room_session_id"),
            room_id=read.text(params, "room_id") or read.text(layout, "room_id"),
            layers=tuple(RoomLayoutLayer.from_payload(layer) for layer in read.objects(layout, "layers")),
        )


@dataclass(frozen=True)
class RoomAudienceCount:
    """How many audience participants watch the room (``room.audience_count``)."""

    room_session_id: str | None
    room_id: str | None
    total: int | None

    @classmethod
    def from_payload(cls, params: JSONDict) -> RoomAudienceCount:
        total = read.number(params, "total")
        return cls(
            room_session_id=read.text(params, "room_session_id"),
            room_id=read.text(params, "room_id"),
            total=int(total) if total is not None and total >= 0 else None,
        )
