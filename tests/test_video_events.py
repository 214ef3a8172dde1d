"""Video events through the real client and the emulator: what listen()
subscribes to on the wire, every event family reaching its handlers on the
handler pool as typed objects and in order, closing, bad listeners, and
subscriptions that survive reconnects."""

from __future__ import annotations

from typing import Any

import pytest

from relay_sync import (
    ClientClosedError,
    RelayError,
    RoomAudienceCount,
    RoomEndedError,
    RoomLayout,
    RoomMember,
    RoomPlayback,
    RoomRecording,
    RoomSession,
    RoomStream,
    VideoSubscription,
)
from relay_sync.testing import RelayEmulator

from .emulator_support import Connect
from .video_support import WAIT, Heard, open_room, video_requests

SUBSCRIBE = "signalwire.subscribe"


def subscriptions_to(emulator: RelayEmulator, channel: str) -> list[dict[str, Any]]:
    return [r["params"] for r in emulator.requests(SUBSCRIBE) if r["params"]["event_channel"] == channel]


# -- rooms starting and ending -------------------------------------------------------------------


def test_rooms_starting_and_ending_reach_the_project_listener_on_the_pool(
    emulator: RelayEmulator, connect: Connect
) -> None:
    client = connect()
    heard = Heard()

    subscription = client.video.listen(**heard.handlers("on_room_started", "on_room_ended"))
    room_session_id = emulator.video.start_room("town-hall")
    started = heard.wait_for("on_room_started")
    emulator.video.end_room(room_session_id)
    ended = heard.wait_for("on_room_ended")

    assert isinstance(subscription, VideoSubscription)
    assert subscriptions_to(emulator, "video.rooms") == [
        {
            "get_initial_state": True,
            "event_channel": "video.rooms",
            "events": ["video.room.ended", "video.room.started"],
        }
    ]
    assert isinstance(started, RoomSession) and isinstance(ended, RoomSession)
    assert (started.id, started.name, ended.id) == (room_session_id, "town-hall", room_session_id)
    assert all(thread.startswith("relay_sync-handler") for _, _, thread in heard.entries)


def test_a_room_from_an_event_can_be_moderated(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    heard = Heard()
    client.video.listen(on_room_started=heard.handler("started"))
    room_session_id = emulator.video.start_room("standup")

    room: RoomSession = heard.wait_for("started")
    room.lock()

    assert emulator.video.room(room_session_id)["locked"] is True


def test_only_the_events_listened_to_are_subscribed(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()

    client.video.listen(on_room_ended=lambda room: None)
    client.video.listen(on_room_ended=lambda room: None)  # nothing new: no second request
    client.video.listen(on_room_started=lambda room: None)

    assert [s["events"] for s in subscriptions_to(emulator, "video.rooms")] == [
        ["video.room.ended"],
        ["video.room.started"],
    ]


# -- a room's own events ---------------------------------------------------------------------------


def test_member_events_arrive_typed_merged_and_in_order(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    heard = Heard()
    room.listen(
        **heard.handlers(
            "on_member_joined",
            "on_member_updated",
            "on_member_audio_muted",
            "on_member_video_muted",
            "on_member_deaf",
            "on_member_input_volume",
            "on_member_output_volume",
            "on_member_input_sensitivity",
            "on_member_talking",
            "on_member_talking_started",
            "on_member_talking_ended",
            "on_member_left",
            "on_member_list_updated",
        )
    )

    alice = emulator.video.join(room_session_id, "alice")
    room.audio_mute(alice)
    room.video_mute(alice)
    room.deaf(alice)
    room.set_input_volume(alice, 5)
    room.set_output_volume(alice, -5)
    room.set_input_sensitivity(alice, 60)
    emulator.video.talk(room_session_id, alice)
    emulator.video.talk(room_session_id, alice, talking=False)
    emulator.video.leave(room_session_id, alice)
    left: RoomMember = heard.wait_for("on_member_left")
    final_list = heard.wait_for("on_member_list_updated", count=8)

    assert heard.names() == [
        "on_member_joined",
        "on_member_list_updated",
        *[
            name
            for field in ("audio_muted", "video_muted", "deaf", "input_volume", "output_volume", "input_sensitivity")
            for name in (f"on_member_{field}", "on_member_updated", "on_member_list_updated")
        ],
        "on_member_talking",
        "on_member_talking_started",
        "on_member_talking",
        "on_member_talking_ended",
        "on_member_left",
        "on_member_list_updated",
    ]
    muted: RoomMember = heard.wait_for("on_member_audio_muted")
    # member.updated carries only what changed; the handler gets the whole member.
    assert (muted.name, muted.audio_muted, muted.video_muted, muted.updated) == ("alice", True, False, ["audio_muted"])
    assert heard.wait_for("on_member_talking_started").talking is True
    assert (left.id, left.name, left.deaf, left.input_sensitivity) == (alice, "alice", True, 60)
    assert final_list == []


def test_room_layout_audience_and_subscription_events_arrive_typed(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    heard = Heard()
    room.listen(
        **heard.handlers(
            "on_room_subscribed", "on_room_updated", "on_layout_changed", "on_room_audience_count", "on_room_ended"
        )
    )
    subscribed: RoomSession = heard.wait_for("on_room_subscribed")

    alice = emulator.video.join(room_session_id, "alice")
    joined_layout: RoomLayout = heard.wait_for("on_layout_changed")
    room.set_layout("2x2")
    room.lock()
    emulator.video.set_audience_count(room_session_id, 12)
    emulator.video.end_room(room_session_id)
    ended: RoomSession = heard.wait_for("on_room_ended")

    assert subscribed.id == room_session_id
    assert [layer.member_id for layer in joined_layout.layers] == [alice]
    assert heard.names() == [
        "on_room_subscribed",
        "on_layout_changed",  # alice joined
        "on_room_updated",  # layout_name
        "on_layout_changed",
        "on_room_updated",  # locked
        "on_room_audience_count",
        "on_room_ended",
    ]
    updates: list[RoomSession] = [arg for name, arg, _ in heard.entries if name == "on_room_updated"]
    assert [(u.updated, u.layout_name, u.locked) for u in updates] == [
        (["layout_name"], "2x2", False),
        (["locked"], "2x2", True),
    ]
    layout: RoomLayout = heard.wait_for("on_layout_changed", count=2)
    assert (layout.name, layout.room_session_id) == ("2x2", room_session_id)
    audience: RoomAudienceCount = heard.wait_for("on_room_audience_count")
    assert (audience.total, audience.room_session_id) == (12, room_session_id)
    assert ended.id == room_session_id
    subscription = subscriptions_to(emulator, room.event_channel or "")[0]
    assert subscription["get_initial_state"] is True
    assert "video.room.audienceCount" in subscription["events"]  # the realtime SDK's name for it


def test_recording_playback_and_stream_events_carry_the_handles(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    _, room = open_room(emulator, client)
    heard = Heard()
    room.listen(
        **heard.handlers(
            "on_recording_started",
            "on_recording_updated",
            "on_recording_ended",
            "on_playback_started",
            "on_playback_updated",
            "on_playback_ended",
            "on_stream_started",
            "on_stream_ended",
        )
    )

    recording = room.start_recording()
    recording.pause()
    recording.stop()
    playback = room.play("https://cdn.example.com/a.mp4")
    playback.set_volume(3)
    playback.wait(timeout=WAIT)
    stream = room.start_stream("rtmps://live.example.com/app")
    stream.stop()
    heard.wait_for("on_stream_ended")

    assert heard.names() == [
        "on_recording_started",
        "on_recording_updated",
        "on_recording_ended",
        "on_playback_started",
        "on_playback_updated",
        "on_playback_ended",
        "on_stream_started",
        "on_stream_ended",
    ]
    arguments = [argument for _, argument, _ in heard.entries]
    assert arguments[:3] == [recording] * 3 and isinstance(recording, RoomRecording)
    assert arguments[3:6] == [playback] * 3 and isinstance(playback, RoomPlayback)
    assert arguments[6:] == [stream] * 2 and isinstance(stream, RoomStream)


def test_the_room_channel_is_subscribed_once_per_new_event(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    _, room = open_room(emulator, client)

    room.listen(on_member_joined=lambda member: None)
    room.listen(on_member_joined=lambda member: None)
    room.listen(on_member_talking_started=lambda member: None, on_member_talking_ended=lambda member: None)

    events = [s["events"] for s in subscriptions_to(emulator, room.event_channel or "")]
    assert events == [
        ["video.member.joined", "video.member.left", "video.room.ended", "video.room.subscribed"],
        ["video.member.talking"],
    ]


# -- handlers and subscriptions ----------------------------------------------------------------------


def test_a_closed_subscription_hears_nothing_more_and_closing_twice_is_harmless(
    emulator: RelayEmulator, connect: Connect
) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    closed, still_open = Heard(), Heard()
    with room.listen(on_member_joined=closed.handler("joined")) as subscription:
        room.listen(on_member_joined=still_open.handler("joined"))
        emulator.video.join(room_session_id, "alice")
        closed.wait_for("joined")

    subscription.close()
    emulator.video.join(room_session_id, "bob")
    # Both subscriptions share the room's ordered runner: once the open one heard bob,
    # the closed one had its turn at him too.
    bob = still_open.wait_for("joined", count=2)

    assert subscription.closed
    assert bob.name == "bob"
    assert [m.name for m in (a for _, a, _ in closed.entries)] == ["alice"]


def test_a_handler_that_raises_does_not_stop_the_others(
    emulator: RelayEmulator, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    heard = Heard()

    def broken(member: RoomMember) -> None:
        raise RuntimeError("moderation bot crashed")

    room.listen(on_member_joined=broken)
    room.listen(on_member_joined=heard.handler("joined"))
    emulator.video.join(room_session_id, "alice")
    emulator.video.join(room_session_id, "bob")

    assert heard.wait_for("joined", count=2).name == "bob"
    assert "moderation bot crashed" in caplog.text


@pytest.mark.parametrize(
    ("listeners", "error", "match"),
    [
        ({}, ValueError, "at least one listener"),
        ({"on_member_joinned": print}, TypeError, "no listener 'on_member_joinned'"),
        ({"on_member_joined": "not callable"}, TypeError, "must be callable"),
    ],
)
def test_bad_listeners_are_refused_before_anything_is_sent(
    emulator: RelayEmulator, connect: Connect, listeners: dict[str, Any], error: type[Exception], match: str
) -> None:
    client = connect()
    _, room = open_room(emulator, client)
    sent = len(video_requests(emulator))

    with pytest.raises(error, match=match):
        room.listen(**listeners)
    with pytest.raises(TypeError, match="no listener 'on_member_joined'"):
        client.video.listen(on_member_joined=print)  # the project listener hears rooms start and end only

    assert len(video_requests(emulator)) == sent


def test_listening_to_a_room_that_ended_is_the_servers_404(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    emulator.video.end_room(room_session_id)

    with pytest.raises(RelayError) as caught:
        room.listen(on_member_joined=lambda member: None)

    assert caught.value.code == "404"


def test_disconnecting_fails_waits_and_closes_subscriptions(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    _, room = open_room(emulator, client)
    subscription = room.listen(on_member_joined=lambda member: None)
    recording = room.start_recording()

    client.disconnect()

    with pytest.raises(ClientClosedError):
        recording.wait(timeout=WAIT)
    assert subscription.closed


# -- reconnects ---------------------------------------------------------------------------------------


def test_subscriptions_survive_a_dropped_socket(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    heard = Heard()
    room.listen(on_member_joined=heard.handler("joined"))
    client.video.listen(on_room_started=heard.handler("started"))

    emulator.drop_sessions()
    emulator.wait_for_session(2, timeout=WAIT)
    emulator.wait_for_request(SUBSCRIBE, count=4, timeout=WAIT)  # both renewed on the new socket
    emulator.video.join(room_session_id, "alice")
    emulator.video.start_room("after-the-drop")

    assert heard.wait_for("joined").name == "alice"
    assert heard.wait_for("started").name == "after-the-drop"


def test_subscriptions_are_renewed_on_a_new_session(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    heard = Heard()
    room.listen(on_member_joined=heard.handler("joined"), on_member_left=heard.handler("left"))
    recording = room.start_recording()
    first_protocol = client.relay_protocol

    emulator.disconnect_sessions(restart=True)  # the server forgets the session: a new protocol
    emulator.wait_for_session(2, timeout=WAIT)
    renewed = emulator.wait_for_request(SUBSCRIBE, count=3, timeout=WAIT)
    alice = emulator.video.join(room_session_id, "alice")
    emulator.video.leave(room_session_id, alice)
    recording.stop()

    assert client.relay_protocol != first_protocol
    assert renewed["params"]["event_channel"] == room.event_channel
    assert set(renewed["params"]["events"]) >= {"video.member.joined", "video.member.left", "video.recording.ended"}
    assert heard.wait_for("left").name == "alice"
    assert recording.wait(timeout=WAIT).state == "completed"


def test_hiding_members_with_their_camera_off_makes_them_invisible(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    heard = Heard()
    room.listen(**heard.handlers("on_member_visible", "on_member_video_muted"))
    alice = emulator.video.join(room_session_id, "alice")
    bob = emulator.video.join(room_session_id, "bob")

    room.video_mute(alice)
    room.set_hide_video_muted(True)  # alice disappears
    room.video_mute(bob)  # bob disappears with his camera
    room.set_hide_video_muted(False)  # both come back

    heard.wait_for("on_member_visible", count=4)
    assert [(name, member.name, member.visible) for name, member, _ in heard.entries] == [
        ("on_member_video_muted", "alice", True),  # hidden only once the room hides them
        ("on_member_visible", "alice", False),
        ("on_member_video_muted", "bob", False),
        ("on_member_visible", "bob", False),
        ("on_member_visible", "alice", True),
        ("on_member_visible", "bob", True),
    ]


def test_a_room_that_ended_while_the_client_was_away_releases_what_waited_on_it(
    emulator: RelayEmulator, connect: Connect
) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    recording = room.start_recording()

    emulator.pause_logins()
    emulator.disconnect_sessions(restart=True)  # the client's next session is a new one
    emulator.video.end_room(room_session_id)  # its events go to the session that is gone
    emulator.resume_logins()
    emulator.wait_for_session(2, timeout=WAIT)

    with pytest.raises(RoomEndedError) as caught:
        recording.wait(timeout=WAIT)  # the renewal's 404 says the room is gone
    assert caught.value.code == "room_ended"
    assert emulator.wait_for_request(SUBSCRIBE, count=2, timeout=WAIT)["params"]["event_channel"] == room.event_channel


def test_the_emulators_events_have_the_shapes_the_realtime_sdk_reads(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    client.video.listen(on_room_started=lambda room: None)
    room_session_id, room = open_room(emulator, client)
    room.listen(on_member_audio_muted=lambda member: None, on_recording_ended=lambda recording: None)
    alice = emulator.video.join(room_session_id, "alice")
    room.audio_mute(alice)
    room.start_recording().stop()

    started = emulator.wait_for_event("video.room.started")
    assert started["event_channel"].startswith("video.rooms.")  # the project channel, suffixed
    assert started["params"]["room_session"]["id"] == room_session_id
    assert started["params"]["room"]["room_session_id"] == room_session_id  # the older shape beside it
    updated = emulator.wait_for_event("video.member.updated")
    assert updated["event_channel"] == room.event_channel
    assert updated["params"]["member"] == {
        "id": alice,
        "room_id": room.room_id,
        "room_session_id": room_session_id,
        "updated": ["audio_muted"],
        "audio_muted": True,
    }
    ended = emulator.wait_for_event("video.recording.ended")["params"]["recording"]
    assert ended["state"] == "completed" and ended["url"].endswith(".wav")
    assert isinstance(ended["started_at"], float) and ended["ended_at"] >= ended["started_at"]
