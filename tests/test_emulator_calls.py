"""The emulator's calls through the real SDK: routing across clients, pass,
ringing without a client, the phones' behaviours (digits, speech, silence,
machines, busy, no answer, hanging up), recordings, dial and connect."""

from __future__ import annotations

from typing import Any

import pytest

from relay_sync import DialFailedError, RelayError, rest
from relay_sync.testing import EmulatorLimitError, RelayEmulator

from .emulator_support import (
    AGENT,
    CALLER,
    OFFICE,
    Connect,
    handle_calls,
    phone_device,
    tts,
)


def methods_sent(emulator: RelayEmulator, call_id: str) -> list[str]:
    return [f["method"] for f in emulator.requests() if (f.get("params") or {}).get("call_id") == call_id]


def test_inbound_call_is_answered_played_and_hung_up(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()

    def greet(call: Any) -> str:
        call.answer()
        call.play(tts("Welcome to Acme")).wait(timeout=2)
        call.hangup()
        return str(call.direction)

    outcomes = handle_calls(client, greet)
    handle = emulator.place_call(OFFICE, CALLER, context="office")

    assert handle.wait_ended(timeout=2) == "hangup"
    assert outcomes.result() == "inbound"
    assert handle.said() == ["Welcome to Acme"]
    assert methods_sent(emulator, handle.call_id) == ["calling.answer", "calling.play", "calling.end"]
    assert [e.params["call_state"] for e in _state_events(emulator, handle.call_id)] == ["answered", "ending", "ended"]
    assert "app: answered the call" in handle.lines()
    assert emulator.active_calls == 0


def _state_events(emulator: RelayEmulator, call_id: str) -> list[Any]:
    from relay_sync.events import parse_event

    return [parse_event(e) for e in emulator.events("calling.call.state") if e["params"]["call_id"] == call_id]


def test_calls_on_a_context_take_turns_between_its_clients(emulator: RelayEmulator, connect: Connect) -> None:
    first, second = connect(), connect()
    answered_by: dict[str, list[str]] = {"first": [], "second": []}

    def answerer(name: str) -> Any:
        def handle(call: Any) -> None:
            answered_by[name].append(call.call_id)
            call.answer()
            call.hangup()

        return handle

    handle_calls(first, answerer("first"))
    handle_calls(second, answerer("second"))
    for _ in range(4):
        assert emulator.place_call(OFFICE, CALLER, context="office").wait_ended(timeout=2) == "hangup"

    assert len(answered_by["first"]) == 2 and len(answered_by["second"]) == 2


def test_a_passed_call_goes_to_another_client_on_the_context(emulator: RelayEmulator, connect: Connect) -> None:
    busy, free = connect(), connect()
    handle_calls(busy, lambda call: call.pass_())

    def take(call: Any) -> None:
        call.answer()
        call.hangup()

    taken = handle_calls(free, take)
    handles = [emulator.place_call(OFFICE, CALLER, context="office") for _ in range(2)]

    for handle in handles:
        assert handle.wait_ended(timeout=2) == "hangup"
        assert "app: passed the call back to routing" in handle.lines() or "app: answered the call" in handle.lines()
    taken.result(1)
    assert len(emulator.requests("calling.pass")) == 1  # the round-robin gave the busy client one of the two


def test_a_call_nobody_takes_rings_until_no_answer(emulator: RelayEmulator, connect: Connect) -> None:
    connect(contexts=("sales",))
    handle = emulator.place_call(OFFICE, CALLER, context="office")

    assert handle.wait_ended(timeout=2) == "noAnswer"
    assert any("no client takes calls on context 'office'" in line for line in handle.lines())
    assert emulator.events("calling.call.receive") == []


def test_a_call_passed_by_every_client_rings_until_no_answer(emulator: RelayEmulator, connect: Connect) -> None:
    handle_calls(connect(), lambda call: call.pass_())
    handle = emulator.place_call(OFFICE, CALLER, context="office")

    assert handle.wait_ended(timeout=2) == "noAnswer"
    assert len(emulator.requests("calling.pass")) == 1


def test_a_ringing_call_is_offered_to_a_client_that_subscribes_later(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect(contexts=("sales",))
    outcomes = handle_calls(client, lambda call: call.answer())
    handle = emulator.place_call(OFFICE, CALLER, context="office")
    emulator.wait_for_transcript("no client takes calls")

    client.receive(["office"])

    handle.wait_answered(timeout=2)
    outcomes.result()


def test_the_number_called_decides_the_context(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(OFFICE, context="office")
    handle_calls(connect(), lambda call: call.hangup())

    handle = emulator.place_call(OFFICE, CALLER)

    assert handle.context == "office"
    assert handle.wait_ended(timeout=2) == "hangup"


def test_collect_returns_what_the_phone_presses_then_no_input(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(CALLER, digits=["1", "42#9"])

    def menu(call: Any) -> list[Any]:
        call.answer()
        choice = call.play_and_collect(tts("Press 1 for sales"), {"digits": {"max": 1}}).wait(timeout=2)
        pin = call.collect(digits={"max": 5, "terminators": "#"}).wait(timeout=2)
        nothing = call.collect(digits={"max": 1}, initial_timeout=3).wait(timeout=2)
        call.hangup()
        return [choice.result, pin.result, nothing.result_type]

    outcomes = handle_calls(connect(), menu)
    handle = emulator.place_call(OFFICE, CALLER, context="office")

    assert outcomes.result() == [
        {"type": "digit", "params": {"digits": "1"}},
        {"type": "digit", "params": {"digits": "42", "terminator": "#"}},
        "no_input",
    ]
    assert "phone: pressed 1" in handle.lines()
    assert handle.said() == ["Press 1 for sales"]


def test_speech_collect_hears_what_the_phone_says(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(CALLER, speech="sales please")

    def ask(call: Any) -> Any:
        call.answer()
        event = call.collect(speech={"end_silence_timeout": 1}, send_start_of_input=True).wait(timeout=2)
        call.hangup()
        return event.result

    outcomes = handle_calls(connect(), ask)
    handle = emulator.place_call(OFFICE, CALLER, context="office")

    assert outcomes.result()["params"]["text"] == "sales please"
    handle.wait_ended(timeout=2)
    collect_results = [e["params"]["result"]["type"] for e in emulator.events("calling.call.collect")]
    assert collect_results == ["start_of_input", "speech"]


def test_a_recording_is_served_by_the_emulator(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(CALLER, message_seconds=2.5)

    def voicemail(call: Any) -> Any:
        call.answer()
        event = call.record({"beep": True}).wait(timeout=2)
        call.hangup()
        return event

    outcomes = handle_calls(connect(), voicemail)
    emulator.place_call(OFFICE, CALLER, context="office")
    event = outcomes.result()

    assert event.state == "finished" and event.duration == 2.5
    audio = rest.download_recording(event.url, project=emulator.project, token=emulator.token)
    assert audio.startswith(b"RIFF") and audio[8:12] == b"WAVE"
    assert len(audio) == event.size
    with pytest.raises(rest.RestError) as refused:
        rest.download_recording(event.url, project=emulator.project, token="wrong")
    assert refused.value.status == 401


def test_recording_a_silent_phone_gives_no_input(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(CALLER, message_seconds=0)

    def voicemail(call: Any) -> str | None:
        call.answer()
        state = call.record().wait(timeout=2).state
        call.hangup()
        return state

    outcomes = handle_calls(connect(), voicemail)
    emulator.place_call(OFFICE, CALLER, context="office")

    assert outcomes.result() == "no_input"


def test_a_recording_still_reports_its_url_when_the_caller_hangs_up(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(CALLER, message_seconds=60, hangup_after=2)

    def voicemail(call: Any) -> Any:
        call.answer()
        call.record()
        return call.wait_for("calling.call.record", lambda e: e.state == "finished", timeout=2)

    outcomes = handle_calls(connect(), voicemail)
    handle = emulator.place_call(OFFICE, CALLER, context="office")

    assert handle.wait_ended(timeout=2) == "hangup"
    assert outcomes.result().url.startswith(f"http://{emulator.relay_host}/recordings/")
    assert "phone: +15550111 hung up" in handle.lines()


def test_machine_detection(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(CALLER, machine=True)

    def detect(call: Any) -> str | None:
        call.answer()
        event = call.detect({"type": "machine", "params": {}}).wait(timeout=2)
        call.hangup()
        return event.detect_event

    outcomes = handle_calls(connect(), detect)
    emulator.place_call(OFFICE, CALLER, context="office")

    assert outcomes.result() == "MACHINE"


def test_play_pause_resume_and_stop(emulator: RelayEmulator, connect: Connect) -> None:
    def play(call: Any) -> Any:
        call.answer()
        action = call.play(tts("a very long announcement " * 50))
        action.pause()
        action.resume()
        action.volume(3)
        action.stop()
        event = action.wait(timeout=2)
        call.hangup()
        return event.state

    outcomes = handle_calls(connect(), play)
    emulator.place_call(OFFICE, CALLER, context="office")

    assert outcomes.result() == "finished"
    assert [e["params"]["state"] for e in emulator.events("calling.call.play")] == [
        "playing",
        "paused",
        "playing",
        "finished",
    ]


def test_connect_bridges_the_caller_and_reports_when_the_agent_leaves(
    emulator: RelayEmulator, connect: Connect
) -> None:
    emulator.phone(AGENT, after=2, hangup_after=3)

    def bridge(call: Any) -> list[Any]:
        call.answer()
        call.connect([[phone_device(AGENT)]])
        connected = call.wait_for("calling.call.connect", lambda e: e.connect_state == "connected", timeout=2)
        call.wait_for("calling.call.connect", lambda e: e.connect_state == "disconnected", timeout=2)
        call.hangup()
        return [connected.peer["device"]["params"]["to_number"]]

    outcomes = handle_calls(connect(), bridge)
    handle = emulator.place_call(OFFICE, CALLER, context="office")

    assert outcomes.result() == [AGENT]
    assert handle.wait_ended(timeout=2) == "hangup"
    states = [e["params"]["connect_state"] for e in emulator.events("calling.call.connect")]
    assert states == ["connecting", "connected", "disconnected"]


def test_connect_to_a_busy_phone_fails(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(AGENT, busy=True)

    def bridge(call: Any) -> str | None:
        call.answer()
        call.connect([[phone_device(AGENT)]])
        failed = call.wait_for("calling.call.connect", lambda e: e.connect_state == "failed", timeout=2)
        call.hangup()
        return failed.params.get("reason")

    outcomes = handle_calls(connect(), bridge)
    emulator.place_call(OFFICE, CALLER, context="office")

    assert outcomes.result() == "busy"


def test_dial_rings_then_the_phone_answers(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(AGENT, after=3)
    client = connect()

    call = client.dial([[phone_device(AGENT)]], dial_timeout=2)

    assert call.state == "answered"
    call.hangup()
    call.wait_for_ended(timeout=2)
    states = [e["params"]["call_state"] for e in emulator.events("calling.call.state")]
    assert states == ["created", "ringing", "answered", "ending", "ended"]
    assert [e["params"]["dial_state"] for e in emulator.events("calling.call.dial")] == ["dialing", "answered"]


def test_dial_falls_back_to_the_next_group_when_the_first_is_busy(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone("+15550901", busy=True)
    emulator.phone("+15550902", answers=False)
    client = connect()

    call = client.dial([[phone_device("+15550901"), phone_device("+15550902")], [phone_device(AGENT)]], dial_timeout=2)

    assert call.device["params"]["to_number"] == AGENT
    ended = {e["params"]["end_reason"] for e in emulator.events("calling.call.state") if e["params"].get("end_reason")}
    assert ended == {"busy", "noAnswer"}
    call.hangup()


def test_dial_fails_when_nobody_answers(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(AGENT, answers=False)
    client = connect()

    with pytest.raises(RelayError):
        client.dial([[phone_device(AGENT)]], dial_timeout=2)
    assert emulator.events("calling.call.dial")[-1]["params"]["dial_state"] == "failed"


@pytest.mark.parametrize(("behaviour", "reason"), [({"busy": True}, "busy"), ({"answers": False}, "noAnswer")])
def test_a_failed_dial_says_why(
    emulator: RelayEmulator, connect: Connect, behaviour: dict[str, Any], reason: str
) -> None:
    emulator.phone(AGENT, **behaviour)
    client = connect()

    with pytest.raises(DialFailedError) as failed:
        client.dial([[phone_device(AGENT)]], dial_timeout=5)

    assert failed.value.reason == reason and failed.value.code == "dial_failed"
    assert reason in str(failed.value)


def test_parallel_dial_cancels_the_losing_leg(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone("+15550901", after=1)
    emulator.phone("+15550902", after=10)
    client = connect()

    call = client.dial([[phone_device("+15550901"), phone_device("+15550902")]], dial_timeout=2)

    assert call.device["params"]["to_number"] == "+15550901"
    loser = emulator.wait_for_event("calling.call.state", lambda p: p.get("end_reason") == "cancel")
    assert loser["params"]["device"]["params"]["to_number"] == "+15550902"
    call.hangup()


def test_the_dialed_phone_hanging_up_ends_the_call(emulator: RelayEmulator, connect: Connect) -> None:
    emulator.phone(AGENT, hangup_after=1)
    call = connect().dial([[phone_device(AGENT)]], dial_timeout=2)

    ended = call.wait_for_ended(timeout=2)

    assert ended.params["end_reason"] == "hangup"


def test_commands_on_an_unknown_call_get_404(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()

    with pytest.raises(RelayError) as caught:
        client.execute("calling.play", {"call_id": "nope", "node_id": "x", "control_id": "c", "play": tts("hi")})

    assert caught.value.code == "404"


def test_one_event_commands_and_flows(emulator: RelayEmulator, connect: Connect) -> None:
    def extras(call: Any) -> list[str | None]:
        call.answer()
        call.hold()
        tap = call.tap({"type": "audio"}, {"type": "rtp", "params": {"addr": "127.0.0.1", "port": 1234}})
        tap.stop()
        fax = call.send_fax("https://example.com/doc.pdf").wait(timeout=2)
        call.hangup()
        return [tap.wait(timeout=2).state, fax.params["fax"]["type"]]

    outcomes = handle_calls(connect(), extras)
    emulator.place_call(OFFICE, CALLER, context="office")

    assert outcomes.result() == ["finished", "finished"]
    assert emulator.events("calling.call.hold")[0]["params"]["state"] == "hold"
    assert [e["params"]["state"] for e in emulator.events("calling.call.tap")] == ["tapping", "finished"]


def test_place_call_beyond_max_calls_raises() -> None:
    with RelayEmulator(max_calls=1, time_factor=0.01) as emulator:
        emulator.place_call(OFFICE, CALLER)
        with pytest.raises(EmulatorLimitError):
            emulator.place_call(OFFICE, CALLER)


def test_the_caller_can_hang_up_from_the_test(emulator: RelayEmulator, connect: Connect) -> None:
    def wait(call: Any) -> str | None:
        call.answer()
        return call.wait_for_ended(timeout=2).params.get("end_reason")

    outcomes = handle_calls(connect(), wait)
    handle = emulator.place_call(OFFICE, CALLER, context="office")
    handle.wait_answered(timeout=2)

    handle.hangup()

    assert outcomes.result() == "hangup"


def call_states(emulator: RelayEmulator, call_id: str) -> list[str]:
    return [
        e["params"]["call_state"] for e in emulator.events("calling.call.state") if e["params"]["call_id"] == call_id
    ]


def hang_up_when(emulator: RelayEmulator, text: str, handle: list[Any]) -> None:
    """The caller hangs up the moment the app's command is taken, before its answer goes out."""

    def listener(entry: Any) -> None:
        if entry.text == text and handle:
            handle[0].hangup()

    emulator.on_transcript(listener)


def test_a_caller_hanging_up_as_the_call_is_answered_ends_it_once(emulator: RelayEmulator, connect: Connect) -> None:
    client = connect()

    def answer(call: Any) -> None:
        call.answer()
        call.ended.result(timeout=2)

    outcomes = handle_calls(client, answer)
    handle: list[Any] = []
    hang_up_when(emulator, "answered the call", handle)
    handle.append(emulator.place_call(OFFICE, CALLER, context="office"))

    handle[0].wait_ended(timeout=2)
    outcomes.result()
    assert call_states(emulator, handle[0].call_id) == ["ending", "ended"]  # no answered after them, no second ended


def test_no_playing_event_follows_the_end_of_a_call_hung_up_as_play_started(
    emulator: RelayEmulator, connect: Connect
) -> None:
    client = connect()

    def play(call: Any) -> None:
        call.answer()
        call.play(tts("Too late"))
        call.ended.result(timeout=2)

    outcomes = handle_calls(client, play)
    handle: list[Any] = []
    hang_up_when(emulator, 'played "Too late"', handle)
    handle.append(emulator.place_call(OFFICE, CALLER, context="office"))

    handle[0].wait_ended(timeout=2)
    outcomes.result()
    call_id = handle[0].call_id
    assert call_states(emulator, call_id)[-1] == "ended"
    assert [e["params"] for e in emulator.events("calling.call.play") if e["params"]["call_id"] == call_id] == []
