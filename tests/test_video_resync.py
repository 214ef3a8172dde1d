"""Video state that must follow the server across reconnects and gaps, through
the real client and the emulator: handles that ended while the client was
away, members who joined before anyone asked for member events, rooms
released once nothing holds them, renewals the server refuses, and answers
that arrive after their room was forgotten."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from relay_sync import RoomEndedError
from relay_sync.testing import RelayEmulator

from .emulator_support import Connect
from .polling import wait_until
from .video_support import WAIT, Heard, open_room

SUBSCRIBE = "signalwire.subscribe"


def test_handles_that_ended_while_the_client_was_away_end_after_the_reconnect(
    emulator: RelayEmulator, connect: Connect
) -> None:
    emulator.video.media_seconds = 3600.0  # the playback must not run out by itself
    away, other = connect(), connect()
    room_session_id, room = open_room(emulator, away)
    recording = room.start_recording()
    still_recording = room.start_recording()
    playback = room.play("https://example.com/music.mp3")
    stream = room.start_stream("rtmp://example.com/live")

    emulator.pause_logins()
    for session in emulator.live_sessions():
        if session.protocol == away.relay_protocol:
            session.send_disconnect(restart=True)  # its events go to a session that is gone
    wait_until(lambda: not away.connected, WAIT, "the client noticing the disconnect")
    seen_by_other = other.video.get_room_session(room_session_id)
    for handle in [*seen_by_other.get_recordings(), *seen_by_other.get_playbacks(), *seen_by_other.get_streams()]:
        if handle.id != still_recording.id:
            handle.stop()
    emulator.resume_logins()

    assert recording.wait(timeout=WAIT).state == "completed"
    assert playback.wait(timeout=WAIT).state == "completed"
    assert stream.wait(timeout=WAIT).state == "completed"
    assert not still_recording.is_done  # the server still lists it
    still_recording.stop()  # and its events still arrive on the renewed subscription
    assert still_recording.wait(timeout=WAIT).state == "completed"


def test_members_who_joined_before_member_events_were_asked_for_are_known(
    emulator: RelayEmulator, connect: Connect
) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    room.start_recording()  # the room's channel is followed, its members not yet
    bob = emulator.video.join(room_session_id, "bob")
    heard = Heard()

    room.listen(on_member_updated=heard.handler("updated"), on_member_list_updated=heard.handler("list"))
    room.audio_mute(bob)

    member = heard.wait_for("updated")
    assert (member.id, member.name, member.type, member.audio_muted) == (bob, "bob", "member", True)
    assert [each.name for each in heard.wait_for("list")] == ["bob"]


def test_a_room_nothing_holds_any_more_is_not_renewed(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    _, released = open_room(emulator, client, "released")
    kept_id, kept = open_room(emulator, client, "kept")
    with client.video.listen(on_room_started=lambda room: None):
        pass
    with released.listen(on_member_joined=lambda member: None):
        pass
    recording = released.start_recording()  # a handle holds the room until it ends
    recording.stop()
    recording.wait(timeout=WAIT)
    heard = Heard()
    kept.listen(on_member_joined=heard.handler("joined"))
    before = len(emulator.requests(SUBSCRIBE))

    emulator.drop_sessions()

    # Renewals go out in the order the channels were first subscribed: had the
    # project channel or the released room been kept, it would come first.
    renewal = emulator.wait_for_request(SUBSCRIBE, count=before + 1, timeout=WAIT)
    assert renewal["params"]["event_channel"] == kept.event_channel
    emulator.video.join(kept_id, "alice")
    assert heard.wait_for("joined").name == "alice"
    assert [r["params"]["event_channel"] for r in emulator.requests(SUBSCRIBE)[before:]] == [kept.event_channel]


def test_a_refused_renewal_is_tried_again(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    heard = Heard()
    room.listen(on_room_subscribed=heard.handler("subscribed"), on_member_joined=heard.handler("joined"))
    heard.wait_for("subscribed")
    subscribe = emulator.video.methods[SUBSCRIBE]
    refused: list[dict[str, Any]] = []

    def refuse_the_first_renewal(session: Any, params: dict[str, Any]) -> dict[str, Any]:
        if not refused:
            refused.append(params)
            return {"code": "503", "message": "try again later"}
        return subscribe(session, params)

    emulator.respond(SUBSCRIBE, handler=refuse_the_first_renewal)
    emulator.disconnect_sessions(restart=True)  # the new session starts with no subscription

    heard.wait_for("subscribed", count=2)  # the retry's initial state: subscribed again
    emulator.video.join(room_session_id, "alice")
    assert heard.wait_for("joined").name == "alice"
    assert refused and refused[0]["event_channel"] == room.event_channel


def test_after_a_refused_renewal_the_next_listen_subscribes_everything_again(
    emulator: RelayEmulator, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    heard = Heard()
    room.listen(on_layout_changed=heard.handler("layout"))
    subscribe = emulator.video.methods[SUBSCRIBE]

    def refuse_renewals(session: Any, params: dict[str, Any]) -> dict[str, Any]:
        if "video.member.joined" not in params["events"]:  # renewals of the first listen only
            return {"code": "503", "message": "try again later"}
        return subscribe(session, params)

    emulator.respond(SUBSCRIBE, handler=refuse_renewals)
    with caplog.at_level(logging.ERROR, logger="relay_sync.video"):
        emulator.disconnect_sessions(restart=True)  # the new session starts with no subscription
        wait_until(
            lambda: any("did not renew" in record.getMessage() for record in caplog.records),
            WAIT,
            "the refused renewal being reported",
        )
    room.listen(on_member_joined=heard.handler("joined"))  # must not trust what the old session was asked

    emulator.video.join(room_session_id, "alice")
    assert heard.wait_for("joined").name == "alice"
    assert heard.wait_for("layout").room_session_id == room_session_id  # asked for again, and arriving


def test_a_start_answered_after_its_room_was_forgotten_fails_its_handle(
    emulator: RelayEmulator, connect: Connect
) -> None:
    client = connect()
    room_session_id, room = open_room(emulator, client)
    start_recording = emulator.video.methods["video.recording.start"]

    def end_the_room_before_answering(session: Any, params: dict[str, Any]) -> dict[str, Any]:
        result = start_recording(session, params)
        # The room's end reaches the client ahead of the answer (with no word of the recording).
        session.push_event(
            "video.room.ended", {"room_session": {"id": room_session_id}}, event_channel=room.event_channel
        )
        return result

    emulator.respond("video.recording.start", handler=end_the_room_before_answering)
    recording = room.start_recording()

    with pytest.raises(RoomEndedError):
        recording.wait(timeout=WAIT)
