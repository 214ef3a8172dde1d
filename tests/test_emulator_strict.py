"""The emulator is as strict as the server: a method it does not implement gets
JSON-RPC -32601, bad numbers and missing fields get a 400; and each calling
command the SDK can send is emulated with its effects (transfer, live
transcription and translation, the AI agent controls, rooms, digit bindings,
user events)."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from relay_sync import EVENT_CALL_PLAY, Call, RelayClient, RelayError, RelayEvent, devices, media
from relay_sync.testing import RelayEmulator

from .emulator_support import AGENT, CALLER, OFFICE, Connect, handle_calls

CUSTOMER = "+15550133"
WAIT = 5.0


@pytest.fixture
def client(connect: Connect) -> RelayClient:
    return connect()


@pytest.fixture
def call(emulator: RelayEmulator, client: RelayClient) -> Call:
    emulator.phone(CUSTOMER)
    return client.dial(devices.phone(CUSTOMER, OFFICE), dial_timeout=WAIT)


def refused(excinfo: pytest.ExceptionInfo[RelayError]) -> tuple[Any, str]:
    return excinfo.value.code, excinfo.value.message


# -- methods it does not implement --------------------------------------------------


@pytest.mark.parametrize("method", ["calling.teleport", "calling.play.rewind", "video.nonsense", "made.up"])
def test_a_method_the_server_does_not_have_gets_32601(client: RelayClient, call: Call, method: str) -> None:
    with pytest.raises(RelayError) as excinfo:
        client.execute(method, {"node_id": call.node_id, "call_id": call.call_id})
    assert excinfo.value.code == -32601
    assert method in excinfo.value.message


def test_a_new_method_is_one_row_in_the_emulators_table(emulator: RelayEmulator, client: RelayClient) -> None:
    emulator.methods["test.hello"] = lambda session, params: {"code": "200", "message": "hi", "echo": params}
    assert client.execute("test.hello", {"n": 1}) == {"code": "200", "message": "hi", "echo": {"n": 1}}


# -- numbers, devices and required fields -----------------------------------------------


@pytest.mark.parametrize(
    ("device", "problem"),
    [
        ({"type": "phone", "params": {"to_number": "not-a-number", "from_number": OFFICE}}, "E.164"),
        ({"type": "phone", "params": {"to_number": CUSTOMER, "from_number": "5550100"}}, "E.164"),
        ({"type": "phone", "params": {"to_number": CUSTOMER}}, "E.164"),
        ({"type": "sip", "params": {"to": "desk@example.com", "from": "sip:app@example.com"}}, "SIP address"),
        ({"type": "carrier_pigeon", "params": {"to": "the roof"}}, "unknown device type"),
    ],
)
def test_dial_refuses_bad_devices_like_the_server(client: RelayClient, device: dict[str, Any], problem: str) -> None:
    with pytest.raises(RelayError) as excinfo:
        client.dial([[device]], dial_timeout=WAIT)
    code, message = refused(excinfo)
    assert code == "400" and problem in message


def test_send_digits_refuses_what_is_not_dtmf(emulator: RelayEmulator, call: Call) -> None:
    with pytest.raises(RelayError) as excinfo:
        call.send_digits("12x")
    code, message = refused(excinfo)
    assert code == "400" and "DTMF" in message
    assert emulator.events("calling.call.send_digits") == []
    assert call.send_digits("1w2#")["code"] == "200"


def test_connect_refuses_a_bad_number(call: Call) -> None:
    with pytest.raises(RelayError) as excinfo:
        call.connect([[{"type": "phone", "params": {"to_number": "123", "from_number": OFFICE}}]])
    assert refused(excinfo)[0] == "400"
    assert call.peer is None


def test_messaging_send_refuses_a_number_that_is_not_e164(emulator: RelayEmulator, client: RelayClient) -> None:
    with pytest.raises(RelayError) as excinfo:
        client.send_message(to_number="not-a-number", from_number=OFFICE, body="hi")
    code, message = refused(excinfo)
    assert code == "400" and "to_number" in message
    assert emulator.events("messaging.state") == []  # nothing was "delivered"


@pytest.mark.parametrize(
    ("method", "fields", "missing"),
    [
        ("calling.transfer", {}, "dest"),
        ("calling.join_conference", {"muted": True}, "name"),
        ("calling.live_transcribe", {}, "action"),
        ("calling.bind_digit", {"digits": "1"}, "bind_method"),
        ("calling.stream", {"control_id": "s"}, "url"),
        ("calling.queue.enter", {"control_id": "q"}, "queue_name"),
        ("calling.play", {"control_id": "p", "play": []}, "play"),
    ],
)
def test_a_command_without_a_required_field_gets_400(
    client: RelayClient, call: Call, method: str, fields: dict[str, Any], missing: str
) -> None:
    with pytest.raises(RelayError) as excinfo:
        client.execute(method, {"node_id": call.node_id, "call_id": call.call_id, **fields})
    code, message = refused(excinfo)
    assert code == "400" and missing in message


# -- the newly emulated commands ----------------------------------------------------------


def test_transfer_ends_the_calls_leg_here(emulator: RelayEmulator, call: Call) -> None:
    assert call.transfer("https://example.com/next.swml")["code"] == "200"
    assert call.wait_for_ended(timeout=WAIT).state == "ended"
    assert emulator.wait_for_transcript("transferred the call to https://example.com/next.swml").call_id == call.call_id
    assert emulator.active_calls == 0


def test_live_transcribe_and_translate_start_and_stop(emulator: RelayEmulator, call: Call) -> None:
    with pytest.raises(RelayError) as excinfo:
        call.live_transcribe({"stop": {}})  # nothing runs yet
    assert refused(excinfo)[0] == "409"
    assert call.live_transcribe({"start": {"lang": "en-US"}})["code"] == "200"
    assert call.live_transcribe({"stop": {}})["code"] == "200"
    assert (
        call.live_translate({"start": {"from_lang": "en-US", "to_lang": "es-ES"}}, status_url="https://x/t")["code"]
        == "200"
    )
    with pytest.raises(RelayError) as excinfo:
        call.live_translate({"rewind": {}})
    assert refused(excinfo)[0] == "400"
    emulator.wait_for_transcript("started live translation")


def test_ai_controls_need_an_agent_on_the_call(emulator: RelayEmulator, call: Call) -> None:
    for control in (lambda: call.ai_message(message_text="hi"), call.ai_hold, call.ai_unhold):
        with pytest.raises(RelayError) as excinfo:
            control()
        assert refused(excinfo)[0] == "409"
    agent = call.ai(prompt={"text": "Be brief"})
    assert call.ai_message(message_text="The caller is in a hurry")["code"] == "200"
    assert call.ai_hold(timeout="10")["code"] == "200"
    assert call.ai_unhold()["code"] == "200"
    agent.stop()
    agent.wait(timeout=WAIT)
    with pytest.raises(RelayError):
        call.ai_message(message_text="anyone there?")
    call.amazon_bedrock(prompt={"text": "Be brief"})
    with pytest.raises(RelayError) as excinfo:
        call.amazon_bedrock(prompt={"text": "twice"})
    assert refused(excinfo)[0] == "409"
    assert emulator.wait_for_transcript("told the AI agent: 'The caller is in a hurry'").call_id == call.call_id


def test_join_room_and_leave_room(emulator: RelayEmulator, call: Call) -> None:
    with pytest.raises(RelayError) as excinfo:
        call.leave_room()
    assert refused(excinfo)[0] == "409"
    assert call.join_room("standup", status_url="https://x/r")["code"] == "200"
    with pytest.raises(RelayError) as excinfo:
        call.join_room("another")
    assert refused(excinfo)[0] == "409"
    assert call.leave_room()["code"] == "200"
    emulator.wait_for_transcript("left video room 'standup'")


def test_user_event_is_accepted_and_noted(emulator: RelayEmulator, call: Call) -> None:
    assert call.user_event(event={"step": "checkout"})["code"] == "200"
    emulator.wait_for_transcript("sent a user event {'step': 'checkout'}")


def test_a_bound_digit_runs_its_method_when_pressed(emulator: RelayEmulator, client: RelayClient) -> None:
    def bind_then_listen(call: Call) -> list[str]:
        plays: queue.Queue[RelayEvent] = queue.Queue()
        call.on(EVENT_CALL_PLAY, plays.put)
        call.answer()
        call.bind_digit("*1", "calling.play", bind_params={"play": [media.tts("You pressed star one")]}, max_triggers=1)
        call.bind_digit("#", "calling.play", bind_params={"play": [media.tts("Hash")]}, realm="menu")
        call.clear_digit_bindings(realm="menu")
        call.user_event(event="bound")  # tells the test the bindings are in place
        states = []
        while not states or states[-1] != "finished":
            states.append(plays.get(timeout=WAIT).state or "")
        return states

    outcomes = handle_calls(client, bind_then_listen)
    handle = emulator.place_call(OFFICE, CALLER, context="office")
    emulator.wait_for_transcript("sent a user event 'bound'")

    handle.press("#")  # its binding was cleared: nothing runs
    handle.press("*1")

    assert outcomes.result(timeout=WAIT) == ["playing", "finished"]
    assert handle.said() == ["You pressed star one"]
    handle.press("*1")  # max_triggers=1: used up
    handle.hangup()
    handle.wait_ended(timeout=WAIT)
    assert handle.said() == ["You pressed star one"]
    assert sum("runs calling.play" in line for line in handle.lines()) == 1


def test_bind_digit_refuses_what_the_server_would(call: Call) -> None:
    for digits, method in (("9x", "calling.play"), ("9", "calling.teleport"), ("9", "calling.dial")):
        with pytest.raises(RelayError) as excinfo:
            call.bind_digit(digits, method)
        assert refused(excinfo)[0] == "400"


def test_pressing_after_the_call_ended_is_an_error(emulator: RelayEmulator, client: RelayClient) -> None:
    handle_calls(client, lambda call: call.hangup())
    handle = emulator.place_call(OFFICE, CALLER, context="office")
    handle.wait_ended(timeout=WAIT)
    with pytest.raises(RuntimeError):
        handle.press("1")
    with pytest.raises(ValueError):
        emulator.place_call(OFFICE, AGENT, context="office").press("not digits")


def test_the_phone_on_a_dialed_call_presses_too(emulator: RelayEmulator, call: Call) -> None:
    holds: queue.Queue[RelayEvent] = queue.Queue()
    call.on("calling.call.hold", holds.put)
    call.bind_digit("0", "calling.hold")

    emulator.press(call.call_id, "0")

    assert holds.get(timeout=WAIT).state == "hold"
    with pytest.raises(KeyError):
        emulator.press("no-such-call", "0")


@pytest.mark.parametrize("verb", ["stop", "pause", "resume", "volume"])
def test_controlling_an_operation_that_is_over_gets_409_not_call_gone(
    client: RelayClient, call: Call, verb: str
) -> None:
    play = call.play_silence(0.5)
    play.wait(timeout=WAIT)
    params = {"node_id": call.node_id, "call_id": call.call_id, "control_id": play.control_id}
    if verb == "volume":
        params["volume"] = 5.0

    with pytest.raises(RelayError) as excinfo:  # sent raw: the SDK's own stop() sends nothing once over
        client.execute(f"calling.play.{verb}", params)

    assert excinfo.value.code == "409"  # a 404 reads as "the call is gone": the SDK would swallow it
    assert play.stop() == {}  # stopping what is over is not an error
    assert call.state == "answered"
    call.play_silence(0.1).wait(timeout=WAIT)  # the call itself is fine
