"""Video rooms through the real client and the emulator: every RoomSession and
RoomMember command with its wire request and its effect on the room, the
room lookups, and the server's errors for unknown rooms and members."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from relay_sync import RelayError, RoomActionEndedError, RoomMember, RoomSession, rest
from relay_sync.testing import RelayEmulator

from .emulator_support import Connect
from .video_support import WAIT, open_room, video_requests


def last_request(emulator: RelayEmulator, method: str) -> dict[str, Any]:
    params: dict[str, Any] = emulator.requests(method)[-1]["params"]
    return params


# -- looking rooms up ------------------------------------------------------------------------


def test_room_sessions_are_listed_and_fetched_with_their_state(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    first = emulator.video.start_room("town-hall", meta={"policy": "muted"})
    second = emulator.video.start_room("standup")
    emulator.video.join(first, "alice")

    rooms = client.video.get_room_sessions()
    room = client.video.get_room_session(first)

    assert sorted(r.name or "" for r in rooms) == ["standup", "town-hall"]
    assert {r.id for r in rooms} == {first, second}
    assert isinstance(room, RoomSession)
    assert (room.id, room.room_session_id, room.name, room.display_name) == (first, first, "town-hall", "town-hall")
    assert room.meta == {"policy": "muted"}
    assert room.event_channel and room.event_channel.startswith("room.")
    assert room.layout_name == "grid-responsive"
    assert (room.locked, room.recording, room.streaming, room.hide_video_muted) == (False, False, False, False)
    assert last_request(emulator, "video.room.get") == {"room_session_id": first}
    assert emulator.requests("video.rooms.get")[-1]["params"] == {}


def test_an_unknown_room_session_is_the_servers_404(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()

    with pytest.raises(RelayError) as caught:
        client.video.get_room_session("no-such-room")

    assert caught.value.code == "404"
    assert "no-such-room" in caught.value.message


def test_commands_on_a_room_that_ended_get_the_servers_404(emulator: RelayEmulator, connect: Connect) -> None:
    room_session_id, room = open_room(emulator, connect())
    emulator.video.end_room(room_session_id)

    with pytest.raises(RelayError) as caught:
        room.lock()

    assert caught.value.code == "404"


# -- members ----------------------------------------------------------------------------------


def test_members_are_listed_with_their_state(emulator: RelayEmulator, connect: Connect) -> None:
    room_session_id, room = open_room(emulator, connect())
    alice = emulator.video.join(room_session_id, "alice", audio_muted=True, meta={"role": "host"})
    emulator.video.join(room_session_id, "bob", video_muted=True)

    members = room.get_members()

    assert [m.name for m in members] == ["alice", "bob"]
    first = members[0]
    assert isinstance(first, RoomMember)
    assert (first.id, first.member_id, first.room_session_id) == (alice, alice, room_session_id)
    assert (first.audio_muted, first.video_muted, first.deaf, first.type) == (True, False, False, "member")
    assert first.meta == {"role": "host"}
    assert members[1].video_muted is True
    assert last_request(emulator, "video.members.get") == {"room_session_id": room_session_id}


# (RoomSession method, extra arguments, wire method, extra wire params, member field, value after)
MEMBER_COMMANDS: list[tuple[str, tuple[Any, ...], str, dict[str, Any], str, Any]] = [
    ("audio_mute", (), "video.member.audio_mute", {}, "audio_muted", True),
    ("video_mute", (), "video.member.video_mute", {}, "video_muted", True),
    ("deaf", (), "video.member.deaf", {}, "deaf", True),
    ("set_input_volume", (-10,), "video.member.set_input_volume", {"volume": -10}, "input_volume", -10),
    ("set_microphone_volume", (7,), "video.member.set_input_volume", {"volume": 7}, "input_volume", 7),
    ("set_output_volume", (12,), "video.member.set_output_volume", {"volume": 12}, "output_volume", 12),
    ("set_speaker_volume", (3,), "video.member.set_output_volume", {"volume": 3}, "output_volume", 3),
    ("set_input_sensitivity", (80,), "video.member.set_input_sensitivity", {"value": 80}, "input_sensitivity", 80),
    (
        "set_member_position",
        ("reserved-1",),
        "video.member.set_position",
        {"position": "reserved-1"},
        "requested_position",
        "reserved-1",
    ),
    ("set_raised_hand", (), "video.member.raisehand", {}, "handraised", True),
    ("set_member_meta", ({"seat": 4},), "video.member.set_meta", {"meta": {"seat": 4}}, "meta", {"seat": 4}),
]


@pytest.mark.parametrize(
    ("command", "args", "method", "params", "field", "value"), MEMBER_COMMANDS, ids=[c[0] for c in MEMBER_COMMANDS]
)
def test_room_member_commands_send_their_request_and_change_the_member(
    emulator: RelayEmulator,
    connect: Connect,
    command: str,
    args: tuple[Any, ...],
    method: str,
    params: dict[str, Any],
    field: str,
    value: Any,
) -> None:
    room_session_id, room = open_room(emulator, connect())
    alice = emulator.video.join(room_session_id, "alice")

    getattr(room, command)(alice, *args)

    assert last_request(emulator, method) == {"room_session_id": room_session_id, "member_id": alice, **params}
    assert emulator.video.member(room_session_id, alice)[field] == value


@pytest.mark.parametrize(
    ("undo", "redo", "method", "field"),
    [
        ("audio_unmute", "audio_mute", "video.member.audio_unmute", "audio_muted"),
        ("video_unmute", "video_mute", "video.member.video_unmute", "video_muted"),
        ("undeaf", "deaf", "video.member.undeaf", "deaf"),
    ],
)
def test_the_opposite_member_commands_undo_them(
    emulator: RelayEmulator, connect: Connect, undo: str, redo: str, method: str, field: str
) -> None:
    room_session_id, room = open_room(emulator, connect())
    alice = emulator.video.join(room_session_id, "alice")
    getattr(room, redo)(alice)

    getattr(room, undo)(alice)

    assert last_request(emulator, method) == {"room_session_id": room_session_id, "member_id": alice}
    assert emulator.video.member(room_session_id, alice)[field] is False


def test_raised_hands_are_lowered_and_member_meta_updated_read_and_deleted(
    emulator: RelayEmulator, connect: Connect
) -> None:
    room_session_id, room = open_room(emulator, connect())
    alice = emulator.video.join(room_session_id, "alice", meta={"seat": 1})

    room.set_raised_hand(alice)
    room.set_raised_hand(alice, raised=False)
    room.update_member_meta(alice, {"mic": "usb"})
    merged = room.get_member_meta(alice)
    room.delete_member_meta(alice, ["seat"])

    assert emulator.requests("video.member.lowerhand")[-1]["params"]["member_id"] == alice
    assert emulator.video.member(room_session_id, alice)["handraised"] is False
    assert merged == {"seat": 1, "mic": "usb"}
    assert last_request(emulator, "video.member.update_meta")["meta"] == {"mic": "usb"}
    assert last_request(emulator, "video.member.delete_meta")["keys"] == ["seat"]
    assert room.get_member_meta(alice) == {"mic": "usb"}


def test_members_are_removed_one_by_one_or_all_at_once(emulator: RelayEmulator, connect: Connect) -> None:
    room_session_id, room = open_room(emulator, connect())
    alice = emulator.video.join(room_session_id, "alice")
    emulator.video.join(room_session_id, "bob")
    emulator.video.join(room_session_id, "carol")

    room.remove_member(alice)
    assert [m.name for m in room.get_members()] == ["bob", "carol"]
    room.remove_all_members()

    assert room.get_members() == []
    assert last_request(emulator, "video.member.remove") == {"room_session_id": room_session_id, "member_id": "all"}


def test_demoted_members_join_the_audience_and_promoted_ones_come_back(
    emulator: RelayEmulator, connect: Connect
) -> None:
    room_session_id, room = open_room(emulator, connect())
    alice = emulator.video.join(room_session_id, "alice")

    room.demote(alice, media_allowed="audio-only")
    assert room.get_members() == []
    room.promote(alice, media_allowed="all", join_audio_muted=True, permissions=["room.self.audio_mute"])

    assert last_request(emulator, "video.member.demote") == {
        "room_session_id": room_session_id,
        "member_id": alice,
        "media_allowed": "audio-only",
    }
    assert last_request(emulator, "video.member.promote") == {
        "room_session_id": room_session_id,
        "member_id": alice,
        "media_allowed": "all",
        "join_audio_muted": True,
        "permissions": ["room.self.audio_mute"],
    }
    [back] = room.get_members()
    assert (back.id, back.audio_muted) == (alice, True)


def test_a_room_member_moderates_itself(emulator: RelayEmulator, connect: Connect) -> None:
    room_session_id, room = open_room(emulator, connect())
    alice = emulator.video.join(room_session_id, "alice")
    [member] = room.get_members()

    member.audio_mute()
    member.video_mute()
    member.set_deaf(True)
    member.set_input_volume(-5)
    member.set_output_volume(5)
    member.set_microphone_volume(-6)
    member.set_speaker_volume(6)
    member.set_input_sensitivity(55)
    member.set_raised_hand()
    state = emulator.video.member(room_session_id, alice)
    member.audio_unmute()
    member.video_unmute()
    member.set_deaf(False)
    member.remove()

    assert (state["audio_muted"], state["video_muted"], state["deaf"], state["handraised"]) == (True, True, True, True)
    assert (state["input_volume"], state["output_volume"], state["input_sensitivity"]) == (-6, 6, 55)
    assert last_request(emulator, "video.member.undeaf") == {"room_session_id": room_session_id, "member_id": alice}
    assert last_request(emulator, "video.member.remove") == {"room_session_id": room_session_id, "member_id": alice}
    assert room.get_members() == []


def test_an_unknown_member_is_the_servers_404(emulator: RelayEmulator, connect: Connect) -> None:
    _, room = open_room(emulator, connect())

    with pytest.raises(RelayError) as muted:
        room.audio_mute("nobody")
    with pytest.raises(RelayError) as removed:
        room.remove_member("nobody")

    assert (muted.value.code, removed.value.code) == ("404", "404")
    assert "nobody" in muted.value.message


# -- the room -----------------------------------------------------------------------------------


def test_layouts_are_listed_and_set_with_positions(emulator: RelayEmulator, connect: Connect) -> None:
    room_session_id, room = open_room(emulator, connect())
    alice = emulator.video.join(room_session_id, "alice")

    layouts = room.get_layouts()
    room.set_layout("2x2", positions={alice: "reserved-1"})
    room.set_positions({alice: "standard-2"})

    assert "grid-responsive" in layouts and "2x2" in layouts
    assert last_request(emulator, "video.set_layout") == {
        "room_session_id": room_session_id,
        "name": "2x2",
        "positions": {alice: "reserved-1"},
    }
    assert last_request(emulator, "video.set_position")["positions"] == {alice: "standard-2"}
    assert emulator.video.room(room_session_id)["layout_name"] == "2x2"
    assert emulator.video.member(room_session_id, alice)["requested_position"] == "standard-2"


def test_an_unknown_layout_is_refused_by_the_server(emulator: RelayEmulator, connect: Connect) -> None:
    _, room = open_room(emulator, connect())

    with pytest.raises(RelayError) as caught:
        room.set_layout("no-such-layout")

    assert caught.value.code == "400"


@pytest.mark.parametrize(
    ("command", "args", "method", "params", "field", "value"),
    [
        ("lock", (), "video.lock", {}, "locked", True),
        ("set_hide_video_muted", (True,), "video.hide_video_muted", {}, "hide_video_muted", True),
        (
            "set_prioritize_handraise",
            (True,),
            "video.prioritize_handraise",
            {"enable": True},
            "prioritize_handraise",
            True,
        ),
        ("set_meta", ({"topic": "Q3"},), "video.set_meta", {"meta": {"topic": "Q3"}}, "meta", {"topic": "Q3"}),
    ],
)
def test_room_commands_send_their_request_and_change_the_room(
    emulator: RelayEmulator,
    connect: Connect,
    command: str,
    args: tuple[Any, ...],
    method: str,
    params: dict[str, Any],
    field: str,
    value: Any,
) -> None:
    room_session_id, room = open_room(emulator, connect())

    getattr(room, command)(*args)

    assert last_request(emulator, method) == {"room_session_id": room_session_id, **params}
    assert emulator.video.room(room_session_id)[field] == value


def test_locks_and_settings_are_undone(emulator: RelayEmulator, connect: Connect) -> None:
    room_session_id, room = open_room(emulator, connect())
    room.lock()
    with pytest.raises(PermissionError):
        emulator.video.join(room_session_id, "latecomer")

    room.unlock()
    room.set_hide_video_muted(False)
    room.set_prioritize_handraise(False)
    emulator.video.join(room_session_id, "latecomer")

    state = emulator.video.room(room_session_id)
    assert (state["locked"], state["hide_video_muted"], state["prioritize_handraise"]) == (False, False, False)
    assert emulator.requests("video.show_video_muted")[-1]["params"] == {"room_session_id": room_session_id}


def test_room_meta_is_set_updated_read_and_deleted(emulator: RelayEmulator, connect: Connect) -> None:
    room_session_id, room = open_room(emulator, connect())

    room.set_meta({"topic": "Q3", "host": "alice"})
    room.update_meta({"host": "bob", "recorded": True})
    merged = room.get_meta()
    room.delete_meta(["recorded"])

    assert merged == {"topic": "Q3", "host": "bob", "recorded": True}
    assert room.get_meta() == {"topic": "Q3", "host": "bob"}
    assert last_request(emulator, "video.delete_meta") == {"room_session_id": room_session_id, "keys": ["recorded"]}
    assert last_request(emulator, "video.get_meta") == {"room_session_id": room_session_id}


# -- recordings, playbacks, streams ----------------------------------------------------------------


def test_a_recording_pauses_resumes_and_stops_leaving_a_downloadable_file(
    emulator: RelayEmulator, connect: Connect
) -> None:
    room_session_id, room = open_room(emulator, connect())

    recording = room.start_recording()
    assert recording.state == "recording" and recording.room_session_id == room_session_id
    assert room.get_recordings()[0] is recording
    recording.pause()
    recording.resume()
    recording.stop()
    done = recording.wait(timeout=WAIT)

    assert done is recording and recording.is_done and recording.has_ended
    assert recording.state == "completed" and recording.ended_at is not None and recording.started_at is not None
    assert recording.duration is not None and recording.url
    for method in ("video.recording.pause", "video.recording.resume", "video.recording.stop"):
        assert last_request(emulator, method) == {"room_session_id": room_session_id, "recording_id": recording.id}
    audio = rest.download_recording(recording.url, project=emulator.project, token=emulator.token)
    assert isinstance(audio, bytes) and audio[:4] == b"RIFF"
    with pytest.raises(RoomActionEndedError) as caught:
        recording.pause()
    assert caught.value.code == "action_ended"


def test_a_playback_runs_to_its_end_and_can_be_paused_sought_and_turned_up(
    emulator: RelayEmulator, connect: Connect
) -> None:
    room_session_id, room = open_room(emulator, connect())
    emulator.video.media_seconds = 3600.0  # long enough for every command below

    playback = room.play("https://cdn.example.com/intro.mp4", volume=-3, seek_position=1000)
    playback.pause()
    playback.seek(5000)
    playback.forward()
    playback.rewind(2000)
    playback.set_volume(4)
    playback.resume()
    assert [p.id for p in room.get_playbacks()] == [playback.id]
    playback.stop()
    playback.wait(timeout=WAIT)

    assert last_request(emulator, "video.playback.start") == {
        "room_session_id": room_session_id,
        "url": "https://cdn.example.com/intro.mp4",
        "volume": -3,
        "seek_position": 1000,
    }
    seeks = [r["params"] for r in emulator.requests("video.playback.seek_relative")]
    assert [s["position"] for s in seeks] == [5000, -2000]
    assert last_request(emulator, "video.playback.seek_absolute")["position"] == 5000
    assert last_request(emulator, "video.playback.set_volume")["volume"] == 4
    assert playback.state == "completed" and playback.volume == 4
    assert playback.position is not None and playback.position >= 8000


def test_a_playback_that_is_not_stopped_ends_when_the_media_does(emulator: RelayEmulator, connect: Connect) -> None:
    _, room = open_room(emulator, connect())

    playback = room.play("https://cdn.example.com/jingle.mp3")

    assert playback.wait(timeout=WAIT).state == "completed"
    assert room.get_playbacks() == []


def test_a_stream_runs_until_stopped(emulator: RelayEmulator, connect: Connect) -> None:
    room_session_id, room = open_room(emulator, connect())

    stream = room.start_stream("rtmp://live.example.com/app/key")
    assert room.get_streams()[0] is stream and stream.state == "streaming"
    assert emulator.video.room(room_session_id)["streaming"] is True
    stream.stop()

    assert stream.wait(timeout=WAIT).state == "completed"
    assert last_request(emulator, "video.stream.stop") == {"room_session_id": room_session_id, "stream_id": stream.id}
    assert stream.url == "rtmp://live.example.com/app/key"


def test_what_runs_in_a_room_ends_with_it(emulator: RelayEmulator, connect: Connect) -> None:
    room_session_id, room = open_room(emulator, connect())
    emulator.video.media_seconds = 3600.0
    recording, playback = room.start_recording(), room.play("https://cdn.example.com/loop.mp4")

    emulator.video.end_room(room_session_id)

    assert recording.wait(timeout=WAIT).state == "completed"
    assert playback.wait(timeout=WAIT).state == "completed"


# -- bad input -------------------------------------------------------------------------------------


BAD_CALLS: list[tuple[str, Callable[[RoomSession], Any], type[Exception]]] = [
    ("mute without a member", lambda room: room.audio_mute(), ValueError),
    ("mute an empty id", lambda room: room.video_mute(""), ValueError),
    ("a volume that is not a number", lambda room: room.set_input_volume("m", "loud"), TypeError),
    ("a layout without a name", lambda room: room.set_layout(""), ValueError),
    ("positions that are not a mapping", lambda room: room.set_positions(["reserved-1"]), ValueError),  # type: ignore[arg-type]
    ("meta that is not a dict", lambda room: room.set_meta("topic"), TypeError),  # type: ignore[arg-type]
    ("delete_meta with a bare list of nothing", lambda room: room.delete_meta([]), ValueError),
    ("hide video muted with a string", lambda room: room.set_hide_video_muted("yes"), TypeError),  # type: ignore[arg-type]
    ("media_allowed out of the choices", lambda room: room.demote("m", media_allowed="everything"), ValueError),
    ("play without a url", lambda room: room.play(""), ValueError),
    ("stream without a url", lambda room: room.start_stream(None), ValueError),  # type: ignore[arg-type]
    ("a raised hand that is not a bool", lambda room: room.set_raised_hand("m", raised="no"), TypeError),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("what", "call", "error"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_input_is_refused_before_anything_is_sent(
    emulator: RelayEmulator, connect: Connect, what: str, call: Callable[[RoomSession], Any], error: type[Exception]
) -> None:
    _, room = open_room(emulator, connect())
    sent = len(video_requests(emulator))

    with pytest.raises(error):
        call(room)

    assert len(video_requests(emulator)) == sent


def test_a_room_session_id_must_be_a_string(connect: Connect) -> None:
    with pytest.raises(ValueError, match="room_session_id"):
        connect().video.get_room_session("")  # type: ignore[arg-type]


def test_the_servers_refusals_of_bad_params_are_relay_errors(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()
    room_session_id, _ = open_room(emulator, client)

    with pytest.raises(RelayError) as no_room:
        client.execute("video.lock", {})
    with pytest.raises(RelayError) as bad_stream:
        client.execute("video.stream.start", {"room_session_id": room_session_id, "url": "http://not-rtmp"})

    assert (no_room.value.code, bad_stream.value.code) == ("400", "400")


def test_a_start_whose_answer_names_no_recording_takes_the_started_event(
    emulator: RelayEmulator, connect: Connect
) -> None:
    # The realtime SDK ignores the answer and waits for recording.started; a server
    # answering like that must work too.
    start = emulator.video.methods["video.recording.start"]

    def answer_without_recording(session: Any, params: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in start(session, params).items() if key != "recording"}

    emulator.respond("video.recording.start", handler=answer_without_recording)
    _, room = open_room(emulator, connect())

    recording = room.start_recording()
    recording.stop()

    assert recording.id == emulator.events("video.recording.started")[-1]["params"]["recording"]["id"]
    assert recording.wait(timeout=WAIT).state == "completed"


def test_a_start_that_nothing_describes_is_a_bad_response(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.respond("video.stream.start", result={"code": "200", "message": "OK"})
    _, room = open_room(emulator, connect(request_timeout=0.5))

    with pytest.raises(RelayError) as caught:
        room.start_stream("rtmp://live.example.com/app")

    assert caught.value.code == "bad_response"
