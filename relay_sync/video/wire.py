"""What the Video service says on the wire, as data: the event channels, the
listeners ``listen()`` accepts and the server events each one needs, and
the per-field ``member.updated`` listeners.

Read from ``@signalwire/realtime-api`` 4.2.1 and ``@signalwire/core`` 4.3.3
(see docs/protocol_video.rst). Pure data and pure functions; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass

SUBSCRIBE_METHOD = "signalwire.subscribe"
# The project-wide channel announcing rooms that start and end. Its events
# arrive with a suffixed channel name ("video.rooms.<uuid>"), so it is matched
# by prefix.
ROOMS_CHANNEL = "video.rooms"

ROOM_STARTED = "video.room.started"
ROOM_UPDATED = "video.room.updated"
ROOM_ENDED = "video.room.ended"
ROOM_SUBSCRIBED = "video.room.subscribed"
ROOM_AUDIENCE_COUNT = "video.room.audience_count"
LAYOUT_CHANGED = "video.layout.changed"
MEMBER_JOINED = "video.member.joined"
MEMBER_UPDATED = "video.member.updated"
MEMBER_LEFT = "video.member.left"
MEMBER_TALKING = "video.member.talking"
PLAYBACK_STARTED = "video.playback.started"
PLAYBACK_UPDATED = "video.playback.updated"
PLAYBACK_ENDED = "video.playback.ended"
RECORDING_STARTED = "video.recording.started"
RECORDING_UPDATED = "video.recording.updated"
RECORDING_ENDED = "video.recording.ended"
STREAM_STARTED = "video.stream.started"
STREAM_ENDED = "video.stream.ended"

# The realtime SDK subscribes to the audience count under its client-side
# name, not under the type the server sends it with; we send what it sends.
AUDIENCE_COUNT_SUBSCRIPTION = "video.room.audienceCount"

# member.updated names the fields that changed; each has its own listener.
MEMBER_UPDATABLE_FIELDS = (
    "audio_muted",
    "video_muted",
    "deaf",
    "visible",
    "input_volume",
    "output_volume",
    "input_sensitivity",
)


@dataclass(frozen=True)
class Listener:
    """One ``listen()`` keyword: the event it receives and what to subscribe for it.

    ``event`` is the name the service dispatches under: a wire event type
    without its ``video.`` prefix, or a name derived from one
    (``member.updated.audio_muted``, ``member.talking.started``,
    ``member_list.updated``). ``subscribe`` are the wire event types the
    server must send for it.
    """

    name: str
    node_name: str
    event: str
    subscribe: tuple[str, ...]
    receives: str  # the type the handler gets, for the docs and error messages


def _listener(name: str, node_name: str, event: str, receives: str, *subscribe: str) -> Listener:
    events = subscribe or (f"video.{event}",)
    if event.startswith("member"):
        # Updates and talking carry only what changed: the members they are merged
        # into come from joins and departures, so a member listener needs those too.
        events = tuple(dict.fromkeys((*events, MEMBER_JOINED, MEMBER_LEFT)))
    return Listener(name, node_name, event, events, receives)


_MEMBER_FIELD_LISTENERS = tuple(
    _listener(
        f"on_member_{field}",
        "onMember" + "".join(part.title() for part in field.split("_")),
        f"member.updated.{field}",
        "RoomMember",
        MEMBER_UPDATED,
    )
    for field in MEMBER_UPDATABLE_FIELDS
)

# Listeners of ``RoomSession.listen()``, in the realtime SDK's order.
ROOM_LISTENERS: tuple[Listener, ...] = (
    _listener("on_room_subscribed", "onRoomSubscribed", "room.subscribed", "RoomSession"),
    _listener("on_room_started", "onRoomStarted", "room.started", "RoomSession"),
    _listener("on_room_updated", "onRoomUpdated", "room.updated", "RoomSession"),
    _listener("on_room_ended", "onRoomEnded", "room.ended", "RoomSession"),
    _listener(
        "on_room_audience_count",
        "onRoomAudienceCount",
        "room.audience_count",
        "RoomAudienceCount",
        AUDIENCE_COUNT_SUBSCRIPTION,
    ),
    _listener("on_layout_changed", "onLayoutChanged", "layout.changed", "RoomLayout"),
    _listener("on_member_joined", "onMemberJoined", "member.joined", "RoomMember"),
    _listener("on_member_updated", "onMemberUpdated", "member.updated", "RoomMember"),
    _listener("on_member_left", "onMemberLeft", "member.left", "RoomMember"),
    # Derived here from joins, updates and departures (the realtime SDK declares
    # it but never emits it): the handler gets the list of members after a change.
    _listener(
        "on_member_list_updated",
        "onMemberListUpdated",
        "member_list.updated",
        "list[RoomMember]",
        MEMBER_JOINED,
        MEMBER_UPDATED,
        MEMBER_LEFT,
    ),
    _listener("on_member_talking", "onMemberTalking", "member.talking", "RoomMember"),
    _listener(
        "on_member_talking_started", "onMemberTalkingStarted", "member.talking.started", "RoomMember", MEMBER_TALKING
    ),
    _listener("on_member_talking_ended", "onMemberTalkingEnded", "member.talking.ended", "RoomMember", MEMBER_TALKING),
    *_MEMBER_FIELD_LISTENERS,
    _listener("on_playback_started", "onPlaybackStarted", "playback.started", "RoomPlayback"),
    _listener("on_playback_updated", "onPlaybackUpdated", "playback.updated", "RoomPlayback"),
    _listener("on_playback_ended", "onPlaybackEnded", "playback.ended", "RoomPlayback"),
    _listener("on_recording_started", "onRecordingStarted", "recording.started", "RoomRecording"),
    _listener("on_recording_updated", "onRecordingUpdated", "recording.updated", "RoomRecording"),
    _listener("on_recording_ended", "onRecordingEnded", "recording.ended", "RoomRecording"),
    _listener("on_stream_started", "onStreamStarted", "stream.started", "RoomStream"),
    _listener("on_stream_ended", "onStreamEnded", "stream.ended", "RoomStream"),
)

# Listeners of ``client.video.listen()``: rooms starting and ending anywhere in the project.
VIDEO_LISTENERS: tuple[Listener, ...] = (
    _listener("on_room_started", "onRoomStarted", "room.started", "RoomSession"),
    _listener("on_room_ended", "onRoomEnded", "room.ended", "RoomSession"),
)

# Events a room's own channel is always subscribed to, listeners or not: the
# initial state (it seeds the member list that partial member.updated events
# are merged into) and the end of the room (it releases what the client keeps for it).
ROOM_BASELINE_EVENTS = (ROOM_SUBSCRIBED, ROOM_ENDED)

# What a recording, playback or stream handle needs to learn its own progress.
RECORDING_EVENTS = (RECORDING_STARTED, RECORDING_UPDATED, RECORDING_ENDED)
PLAYBACK_EVENTS = (PLAYBACK_STARTED, PLAYBACK_UPDATED, PLAYBACK_ENDED)
STREAM_EVENTS = (STREAM_STARTED, STREAM_ENDED)

# What lists a room's recordings, playbacks and streams; after a reconnect it tells
# which of them ended while no event could reach the client.
LIST_METHODS = {"recording": "video.recording.list", "playback": "video.playback.list", "stream": "video.stream.list"}


def listener_table(listeners: tuple[Listener, ...]) -> dict[str, Listener]:
    return {listener.name: listener for listener in listeners}


def subscribe_params(channel: str, events: set[str] | frozenset[str]) -> dict[str, object]:
    """The ``signalwire.subscribe`` params for ``events`` on ``channel`` (as the realtime SDK sends them)."""
    return {"get_initial_state": True, "event_channel": channel, "events": sorted(events)}
