"""Parity with SignalWire's async Python SDK (signalwire-sdk 3.7.5) and its Node
realtime SDK, through the real transport and the emulator: for each method,
the exact frame the server received (as the async SDK builds it) and what the
user sees.

The expected frames were taken from the async SDK's own frames for the same
calls (see docs/migrating.rst); they are written out here so a drift on either
side fails a test.
"""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from relay_sync import (
    EVENT_CALL_CONNECT,
    EVENT_CALL_PLAY,
    EVENT_CALL_RECORD,
    Call,
    CallEndedError,
    CollectAction,
    ConferenceEvent,
    DetectAction,
    DialFailedError,
    MessageStateEvent,
    PlayAction,
    PlayEvent,
    RelayClient,
    RelayError,
    RelayEvent,
    RelayTimeoutError,
    devices,
    media,
)
from relay_sync.testing import RelayEmulator

from .emulator_support import AGENT, CALLER, OFFICE, Connect, handle_calls

CUSTOMER = "+15550133"
WAIT = 5.0


@pytest.fixture
def client(connect: Connect) -> RelayClient:
    return connect()


def dial(emulator: RelayEmulator, client: RelayClient, number: str = CUSTOMER, **phone: Any) -> Call:
    """An answered outbound call to ``number`` (declared with ``phone`` behaviour)."""
    emulator.phone(number, **phone)
    return client.dial(devices.phone(number, OFFICE), dial_timeout=WAIT)


def received(emulator: RelayEmulator, method: str) -> dict[str, Any]:
    """The params of the last ``method`` request the server received."""
    params: dict[str, Any] = emulator.wait_for_request(method)["params"]
    return params


def on_call(call: Call, **fields: Any) -> dict[str, Any]:
    """The frame the async SDK sends for a command on ``call``: node_id, call_id, then its fields."""
    return {"node_id": call.node_id, "call_id": call.call_id, **fields}


def watch(call: Call, event_type: str) -> queue.Queue[RelayEvent]:
    """Every ``event_type`` event of ``call`` from now on (registered before the command that
    causes them, so none can slip past)."""
    events: queue.Queue[RelayEvent] = queue.Queue()
    call.on(event_type, events.put)
    return events


def next_state(events: queue.Queue[RelayEvent], state: str) -> RelayEvent:
    """The next event in ``events`` whose state is ``state``."""
    while True:
        event = events.get(timeout=WAIT)
        if event.state == state:
            return event


# -- the play shortcuts -------------------------------------------------------------

PLAY_SHORTCUTS: list[tuple[str, Callable[[Call], PlayAction], dict[str, Any]]] = [
    (
        "play_tts",
        lambda call: call.play_tts("Your order shipped", language="en-US", voice="Polly.Joanna", volume=3.0),
        {
            "play": [
                {"type": "tts", "params": {"text": "Your order shipped", "language": "en-US", "voice": "Polly.Joanna"}}
            ],
            "volume": 3.0,
        },
    ),
    (
        "play_tts gender",
        lambda call: call.play_tts("Hi", gender="female"),
        {"play": [{"type": "tts", "params": {"text": "Hi", "gender": "female"}}]},
    ),
    (
        "play_audio",
        lambda call: call.play_audio("https://cdn.example.com/hold.mp3", volume=-2.0),
        {"play": [{"type": "audio", "params": {"url": "https://cdn.example.com/hold.mp3"}}], "volume": -2.0},
    ),
    (
        "play_silence",
        lambda call: call.play_silence(1.5),
        {"play": [{"type": "silence", "params": {"duration": 1.5}}]},
    ),
    (
        "play_ringtone",
        lambda call: call.play_ringtone("us", duration=2.0, volume=1.0),
        {"play": [{"type": "ringtone", "params": {"name": "us", "duration": 2.0}}], "volume": 1.0},
    ),
]


@pytest.mark.parametrize(("name", "start", "fields"), PLAY_SHORTCUTS, ids=[s[0] for s in PLAY_SHORTCUTS])
def test_play_shortcuts_send_the_async_sdks_frame_and_finish(
    emulator: RelayEmulator, client: RelayClient, name: str, start: Callable[[Call], PlayAction], fields: dict[str, Any]
) -> None:
    call = dial(emulator, client)

    play = start(call)

    assert isinstance(play, PlayAction)
    assert received(emulator, "calling.play") == on_call(call, control_id=play.control_id, **fields)
    event = play.wait(timeout=WAIT)
    assert isinstance(event, PlayEvent) and event.state == "finished" and play.completed


def test_play_tts_is_heard_by_the_phone(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    call.play_tts("Your order shipped").wait(timeout=WAIT)
    assert emulator.wait_for_transcript('played "Your order shipped"').call_id == call.call_id


def test_media_builders_make_the_play_list(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)

    play = call.play([media.tts("One moment"), media.silence(1), media.ringtone("gb")], loop=1)

    assert received(emulator, "calling.play")["play"] == [
        {"type": "tts", "params": {"text": "One moment"}},
        {"type": "silence", "params": {"duration": 1}},
        {"type": "ringtone", "params": {"name": "gb"}},
    ]
    assert play.wait(timeout=WAIT).state == "finished"


# -- the prompt shortcuts ---------------------------------------------------------------

DIGITS = {"digits": {"max": 1, "digit_timeout": 5.0}}


def test_prompt_tts_sends_play_and_collect_and_returns_the_digits(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client, digits="7")

    collect = call.prompt_tts("Press a key", DIGITS, language="en-GB", volume=2.0)

    assert isinstance(collect, CollectAction)
    assert received(emulator, "calling.play_and_collect") == on_call(
        call,
        control_id=collect.control_id,
        play=[{"type": "tts", "params": {"text": "Press a key", "language": "en-GB"}}],
        collect=DIGITS,
        volume=2.0,
    )
    event = collect.wait(timeout=WAIT)
    assert event.params["result"] == {"type": "digit", "params": {"digits": "7"}}


def test_prompt_audio_sends_play_and_collect_and_returns_the_speech(
    emulator: RelayEmulator, client: RelayClient
) -> None:
    call = dial(emulator, client, speech="sales please")
    speech = {"speech": {"end_silence_timeout": 1.0}}

    collect = call.prompt_audio("https://cdn.example.com/menu.wav", speech)

    assert received(emulator, "calling.play_and_collect") == on_call(
        call,
        control_id=collect.control_id,
        play=[{"type": "audio", "params": {"url": "https://cdn.example.com/menu.wav"}}],
        collect=speech,
    )
    assert collect.wait(timeout=WAIT).params["result"]["params"]["text"] == "sales please"


# -- the detect shortcuts -----------------------------------------------------------------


def test_detect_answering_machine_sends_only_the_settings_given(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client, machine=True)

    detect = call.detect_answering_machine(initial_timeout=4.5, machine_words_threshold=6, timeout=30)

    assert isinstance(detect, DetectAction)
    assert received(emulator, "calling.detect") == on_call(
        call,
        control_id=detect.control_id,
        detect={"type": "machine", "params": {"initial_timeout": 4.5, "machine_words_threshold": 6}},
        timeout=30,
    )
    assert detect.wait(timeout=WAIT).params["detect"]["params"]["event"] == "MACHINE"


def test_wait_for_beep_ends_on_the_beep_and_stays_off_the_wire(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client, machine=True)
    machine_verdicts: queue.Queue[RelayEvent] = queue.Queue()
    call.on("calling.call.detect", machine_verdicts.put)

    detect = call.detect_answering_machine(wait_for_beep=True)

    assert received(emulator, "calling.detect") == on_call(
        call, control_id=detect.control_id, detect={"type": "machine", "params": {}}
    )
    event = detect.wait(timeout=WAIT)
    assert event.params["detect"]["params"] == {"event": "READY", "beep": True}
    # The MACHINE verdict came first and did not end the action.
    assert machine_verdicts.get(timeout=WAIT).params["detect"]["params"]["event"] == "MACHINE"


def test_wait_for_beep_ends_at_once_for_a_person(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    detect = call.detect_answering_machine(wait_for_beep=True)
    assert detect.wait(timeout=WAIT).params["detect"]["params"]["event"] == "HUMAN"


def test_detect_fax_and_detect_digit(emulator: RelayEmulator, client: RelayClient) -> None:
    fax_line = dial(emulator, client, fax=True)
    fax = fax_line.detect_fax(tone="CED", timeout=10)
    assert received(emulator, "calling.detect") == on_call(
        fax_line, control_id=fax.control_id, detect={"type": "fax", "params": {"tone": "CED"}}, timeout=10
    )
    assert fax.wait(timeout=WAIT).params["detect"]["params"]["event"] == "CED"

    keypad = dial(emulator, client, AGENT, digits="5")
    digit = keypad.detect_digit(digits="0123456789")
    frame = emulator.wait_for_request("calling.detect", lambda p: p["call_id"] == keypad.call_id)["params"]
    assert frame == on_call(
        keypad, control_id=digit.control_id, detect={"type": "digit", "params": {"digits": "0123456789"}}
    )
    assert digit.wait(timeout=WAIT).params["detect"]["params"]["event"] == "5"


# -- the state waits ----------------------------------------------------------------------------


def test_state_waits_return_at_once_when_reached_and_wait_otherwise(
    emulator: RelayEmulator, client: RelayClient
) -> None:
    call = dial(emulator, client)
    assert call.wait_for_ringing(timeout=0.01).state == "answered"  # already past ringing
    assert call.wait_for_answered(timeout=0.01).state == "answered"
    with ThreadPoolExecutor(1) as pool:
        ending = pool.submit(call.wait_for_ending, WAIT)
        # Whether the waiter registered before the hangup or after, it returns the ending.
        call.hangup()
        assert ending.result(WAIT).state in ("ending", "ended")
    call.wait_for_ended(timeout=WAIT)
    assert call.wait_for_ending(timeout=0.01).state == "ended"  # past ending: at once


def test_wait_for_answered_blocks_until_answered_and_fails_when_the_call_ends(
    emulator: RelayEmulator, client: RelayClient
) -> None:
    def answer_then_hang_up(call: Call) -> tuple[str | None, str | None]:
        ringing = call.wait_for_ringing(timeout=WAIT).state
        with ThreadPoolExecutor(1) as pool:
            answered = pool.submit(call.wait_for_answered, WAIT)
            call.answer()
            return ringing, answered.result(WAIT).state

    outcomes = handle_calls(client, answer_then_hang_up)
    emulator.place_call(OFFICE, CALLER, context="office")
    assert outcomes.result(timeout=WAIT) == ("ringing", "answered")


def test_wait_for_answered_raises_call_ended_when_the_call_ends_unanswered(
    emulator: RelayEmulator, client: RelayClient
) -> None:
    def reject(call: Call) -> None:
        with ThreadPoolExecutor(1) as pool:
            answered = pool.submit(call.wait_for_answered, WAIT)
            call.hangup("decline")
            answered.result(WAIT)

    outcomes = handle_calls(client, reject)
    emulator.place_call(OFFICE, CALLER, context="office")
    with pytest.raises(CallEndedError) as raised:
        outcomes.result(timeout=WAIT)
    assert raised.value.code == "call_ended"


# -- pause(behavior), and the collect's pause/resume -------------------------------------------


def test_play_pause_sends_behavior_only_when_given(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    plays = watch(call, EVENT_CALL_PLAY)
    play = call.play_silence(600)
    next_state(plays, "playing")

    play.pause(behavior="skip")
    assert received(emulator, "calling.play.pause") == on_call(call, control_id=play.control_id, behavior="skip")
    assert next_state(plays, "paused").control_id == play.control_id
    play.resume()
    play.pause()
    assert emulator.requests("calling.play.pause")[-1]["params"] == on_call(call, control_id=play.control_id)
    play.stop()
    assert play.wait(timeout=WAIT).state == "finished"


def test_record_pause_with_behavior_and_a_behavior_the_server_refuses(
    emulator: RelayEmulator, client: RelayClient
) -> None:
    call = dial(emulator, client, message_seconds=600)
    records = watch(call, EVENT_CALL_RECORD)
    record = call.record({"beep": True})
    next_state(records, "recording")

    record.pause(behavior="silence")

    assert received(emulator, "calling.record.pause") == on_call(call, control_id=record.control_id, behavior="silence")
    assert next_state(records, "paused").control_id == record.control_id
    with pytest.raises(RelayError) as refused:
        record.pause(behavior="rewind")
    assert refused.value.code == "400"


def test_collect_action_pauses_and_resumes_the_prompt(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    plays = watch(call, EVENT_CALL_PLAY)
    long_prompt = " ".join(["please"] * 400)
    collect = call.prompt_tts(long_prompt, DIGITS)
    next_state(plays, "playing")

    collect.pause()
    assert received(emulator, "calling.play_and_collect.pause") == on_call(call, control_id=collect.control_id)
    assert next_state(plays, "paused").control_id == collect.control_id

    collect.resume()
    assert received(emulator, "calling.play_and_collect.resume") == on_call(call, control_id=collect.control_id)
    assert next_state(plays, "playing").control_id == collect.control_id
    collect.stop()
    assert collect.wait(timeout=WAIT).state == "finished"


# -- wire names that differ from the Python names -------------------------------------------------


def test_join_conference_sends_stream_obj_as_stream(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    conference = watch(call, "calling.conference")
    stream = {"url": "wss://media.example.com/conf", "track": "both"}

    call.join_conference("standup", muted=True, beep="onEnter", stream_obj=stream)

    assert received(emulator, "calling.join_conference") == on_call(
        call, name="standup", stream=stream, muted=True, beep="onEnter"
    )
    joined = conference.get(timeout=WAIT)
    assert isinstance(joined, ConferenceEvent) and joined.status == "joined" and joined.name == "standup"


def test_amazon_bedrock_sends_ai_params_as_params_and_the_agent_takes_messages(
    emulator: RelayEmulator, client: RelayClient
) -> None:
    call = dial(emulator, client)
    prompt = {"text": "You are a helpful agent"}

    call.amazon_bedrock(prompt=prompt, ai_params={"temperature": 0.2}, post_prompt_url="https://example.com/summary")

    assert received(emulator, "calling.amazon_bedrock") == on_call(
        call, prompt=prompt, params={"temperature": 0.2}, post_prompt_url="https://example.com/summary"
    )
    call.ai_message(message_text="The caller is a VIP", role="system")
    assert received(emulator, "calling.ai_message") == on_call(call, message_text="The caller is a VIP", role="system")
    call.ai_hold(timeout="30", prompt="Please hold")
    assert received(emulator, "calling.ai_hold") == on_call(call, timeout="30", prompt="Please hold")
    call.ai_unhold(prompt="Thanks for holding")
    assert received(emulator, "calling.ai_unhold") == on_call(call, prompt="Thanks for holding")


def test_plain_commands_match_the_async_sdks_frames(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    call.echo(timeout=5, status_url="https://example.com/echo")
    assert received(emulator, "calling.echo") == on_call(call, timeout=5, status_url="https://example.com/echo")
    call.bind_digit("*9", "calling.hold", realm="menu", max_triggers=2)
    assert received(emulator, "calling.bind_digit") == on_call(
        call, digits="*9", bind_method="calling.hold", realm="menu", max_triggers=2
    )
    call.clear_digit_bindings(realm="menu")
    assert received(emulator, "calling.clear_digit_bindings") == on_call(call, realm="menu")
    call.user_event(event={"kind": "vip"})
    assert received(emulator, "calling.user_event") == on_call(call, event={"kind": "vip"})
    queued = call.queue_enter("support", control_id="q-1", status_url="https://example.com/q")
    assert queued["code"] == "200"
    assert received(emulator, "calling.queue.enter") == on_call(
        call, control_id="q-1", queue_name="support", status_url="https://example.com/q"
    )
    call.send_digits("12#", control_id="d-1")
    assert received(emulator, "calling.send_digits") == on_call(call, control_id="d-1", digits="12#")


# -- on_completed gets the terminal event ---------------------------------------------------------


def test_on_completed_gets_the_terminal_event_of_an_action(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    completed: queue.Queue[RelayEvent] = queue.Queue()

    play = call.play_tts("Goodbye", on_completed=completed.put)

    event = completed.get(timeout=WAIT)
    assert isinstance(event, PlayEvent) and event.state == "finished" and event.control_id == play.control_id
    assert event is play.result


def test_send_message_on_completed_gets_the_terminal_state_event(emulator: RelayEmulator, client: RelayClient) -> None:
    completed: queue.Queue[RelayEvent] = queue.Queue()

    message = client.send_message(to_number=CUSTOMER, from_number=OFFICE, body="Shipped", on_completed=completed.put)

    event = completed.get(timeout=WAIT)
    assert isinstance(event, MessageStateEvent)
    assert event.message_state == "delivered" and event.message_id == message.message_id


# -- Node's dial(region, node_id), bridge and peer ---------------------------------------------------


def test_dial_sends_region_and_node_id(emulator: RelayEmulator, client: RelayClient) -> None:
    emulator.phone(CUSTOMER)
    call = client.dial(devices.phone(CUSTOMER, OFFICE, timeout=20), region="us-west", node_id="node-7", tag="t-1")

    assert received(emulator, "calling.dial") == {
        "tag": "t-1",
        "devices": [[{"type": "phone", "params": {"to_number": CUSTOMER, "from_number": OFFICE, "timeout": 20}}]],
        "region": "us-west",
        "node_id": "node-7",
    }
    assert call.state == "answered"


def test_dial_raises_dial_failed_when_no_device_answers(emulator: RelayEmulator, client: RelayClient) -> None:
    emulator.phone(CUSTOMER, busy=True)
    with pytest.raises(DialFailedError) as failed:
        client.dial(devices.phone(CUSTOMER, OFFICE), dial_timeout=WAIT)
    assert failed.value.code == "dial_failed" and "busy" in failed.value.message


def test_bridge_blocks_until_the_peer_answers_and_returns_it(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    connects = watch(call, EVENT_CALL_CONNECT)
    emulator.phone(AGENT, after=2)

    peer = call.bridge(devices.phone(AGENT, OFFICE), ringback=media.ringtone("us"), timeout=WAIT)

    assert received(emulator, "calling.connect") == on_call(
        call,
        devices=[[{"type": "phone", "params": {"to_number": AGENT, "from_number": OFFICE}}]],
        ringback=[{"type": "ringtone", "params": {"name": "us"}}],
    )
    assert call.peer is peer and peer.peer is call and peer.call_id != call.call_id
    assert peer.device["params"]["to_number"] == AGENT
    # The peer is a Call of its own: commands work on it, and its end is seen.
    peer.hangup()
    assert peer.wait_for_ended(timeout=WAIT).state == "ended"
    next_state(connects, "disconnected")
    assert call.peer is None and peer.peer is None
    assert call.state == "answered"


def test_bridge_raises_dial_failed_when_no_device_answers(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    emulator.phone(AGENT, busy=True)
    with pytest.raises(DialFailedError):
        call.bridge([[devices.phone(AGENT, OFFICE)]], timeout=WAIT)
    assert call.peer is None and call.state == "answered"


def test_bridge_times_out(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    connects = watch(call, EVENT_CALL_CONNECT)
    emulator.phone(AGENT, after=15)  # 0.15 s of real ringing at the test's time factor
    with pytest.raises(RelayTimeoutError):
        call.bridge(devices.phone(AGENT, OFFICE), timeout=0.01)
    # The attempt goes on: it connects later and the peer shows up.
    next_state(connects, "connected")
    assert call.peer is not None


def test_bridge_on_an_ended_call_raises_call_ended(emulator: RelayEmulator, client: RelayClient) -> None:
    call = dial(emulator, client)
    call.hangup()
    call.wait_for_ended(timeout=WAIT)
    with pytest.raises(CallEndedError):
        call.bridge(devices.phone(AGENT, OFFICE), timeout=WAIT)


# -- the builders on their own ----------------------------------------------------------------------


def test_device_builders_check_numbers_and_addresses() -> None:
    assert devices.sip("sip:desk@example.com", "sip:app@example.com", headers=[{"name": "X-Id", "value": "7"}]) == {
        "type": "sip",
        "params": {
            "to": "sip:desk@example.com",
            "from": "sip:app@example.com",
            "headers": [{"name": "X-Id", "value": "7"}],
        },
    }
    with pytest.raises(ValueError, match="E.164"):
        devices.phone("555-0100", OFFICE)
    with pytest.raises(ValueError, match="SIP address"):
        devices.sip("desk@example.com", "sip:app@example.com")


def test_media_builders_refuse_what_the_server_would() -> None:
    assert media.audio("https://x/y.mp3") == {"type": "audio", "params": {"url": "https://x/y.mp3"}}
    with pytest.raises(ValueError):
        media.tts("")
    with pytest.raises(ValueError):
        media.silence(0)
    with pytest.raises(ValueError):
        media.ringtone("")
