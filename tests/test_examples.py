"""The example scripts in examples/, each run as a real subprocess two ways:

* against a space named by the ``SIGNALWIRE_*`` variables, here an emulator
  in this process, so the test plays the phones' side and checks what the
  script did on the emulator's journal and transcript;
* as it is, without credentials: the script runs its own emulator and
  prints the transcript, which the test reads.

Scripts that serve forever get ``--calls N``/``--replies N`` and exit once
the test's calls are done; every wait is bounded.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

from relay_sync.testing import RelayEmulator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RUN_TIMEOUT = 60.0  # seconds a whole script run may take
STEP_TIMEOUT = 15.0  # seconds any one awaited step may take

IVR_NUMBER = "+15550100"
AGENT = "+15550199"
SALES_CALLER = "+15550111"
VOICEMAIL_CALLER = "+15550122"


def load_example(name: str) -> ModuleType:
    """The example module, for its constants (its main() is not run)."""
    if str(EXAMPLES) not in sys.path:  # as when Python runs the script: its folder comes first
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"relay_sync_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def environment(emulator: RelayEmulator | None = None) -> dict[str, str]:
    """This process's environment without SignalWire settings, plus the emulator's when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALWIRE_", "RELAY_"))}
    if emulator is not None:
        env.update(emulator.environment())
    return env


def run_example(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


class Running:
    """A serving example started with ``serving()``: ``finish()`` waits for it to exit on its own."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.stdout = ""
        self.stderr = ""

    def finish(self) -> int:
        self.stdout, self.stderr = self.process.communicate(timeout=RUN_TIMEOUT)
        return self.process.returncode


@contextmanager
def serving(name: str, *args: str, env: dict[str, str]) -> Iterator[Running]:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(process)
    try:
        yield running
    finally:
        if process.poll() is None:  # the test failed before the script was done
            process.kill()
            running.stdout, running.stderr = process.communicate(timeout=RUN_TIMEOUT)


@pytest.fixture
def emulator() -> Iterator[RelayEmulator]:
    """The 'real space' the scripts are pointed at: 100x faster than real time, unanswered calls ring 0.2 s."""
    with RelayEmulator("example-project", "example-token", time_factor=0.01, ring_timeout=20) as running:
        yield running


def texts_played(emulator: RelayEmulator) -> list[str]:
    return [
        item["params"]["text"]
        for frame in emulator.requests("calling.play") + emulator.requests("calling.play_and_collect")
        for item in frame["params"]["play"]
        if item["type"] == "tts"
    ]


# -- ivr.py -------------------------------------------------------------------


def test_ivr_serves_the_callers_of_a_configured_space(emulator: RelayEmulator) -> None:
    ivr = load_example("ivr")
    emulator.phone(SALES_CALLER, digits="1")
    emulator.phone(VOICEMAIL_CALLER, digits="2", message_seconds=2)
    emulator.phone(AGENT, after=1, hangup_after=2)

    with serving("ivr", "--context", "ivr", "--agent", AGENT, "--calls", "2", env=environment(emulator)) as ivr_app:
        emulator.wait_for_session(1, timeout=STEP_TIMEOUT)  # logged in and listening on "ivr"
        sales = emulator.place_call(IVR_NUMBER, SALES_CALLER, context="ivr")
        assert sales.wait_ended(timeout=STEP_TIMEOUT) == "hangup"
        voicemail = emulator.place_call(IVR_NUMBER, VOICEMAIL_CALLER, context="ivr")
        assert voicemail.wait_ended(timeout=STEP_TIMEOUT) == "hangup"
        assert ivr_app.finish() == 0, ivr_app.stderr  # --calls 2: it stops by itself

    # caller one heard the menu, pressed 1 and was connected to the agent
    assert sales.said() == [ivr.MENU, "Connecting you to an agent."]
    assert "phone: pressed 1" in sales.lines()
    assert f"network: connected to {AGENT}" in sales.lines()
    [connect] = emulator.requests("calling.connect")
    assert connect["params"]["devices"] == [
        [{"type": "phone", "params": {"to_number": AGENT, "from_number": IVR_NUMBER}}]
    ]
    # caller two pressed 2 and left a message, which was recorded
    assert voicemail.said() == [ivr.MENU, "Please leave a message after the tone.", "Thank you. Goodbye."]
    assert "phone: pressed 2" in voicemail.lines()
    assert any(line.startswith("network: recorded 2.0 s") for line in voicemail.lines())
    assert [frame["params"]["call_id"] for frame in emulator.requests("calling.record")] == [voicemail.call_id]
    # both were answered and hung up by the app
    assert len(emulator.requests("calling.answer")) == 2
    assert len(emulator.requests("calling.end")) == 2
    assert f"{SALES_CALLER} chose '1'" in ivr_app.stdout
    assert f"{VOICEMAIL_CALLER} chose '2'" in ivr_app.stdout


def test_ivr_without_credentials_runs_its_own_demo() -> None:
    result = run_example("ivr", env=environment())

    assert result.returncode == 0, result.stderr
    transcript = result.stdout.split("transcript:", 1)[1]
    for step in (
        f"phone   {SALES_CALLER} calls {IVR_NUMBER}",
        "phone   pressed 1",
        f"network connected to {AGENT}",
        f"phone   {VOICEMAIL_CALLER} calls {IVR_NUMBER}",
        "phone   pressed 2",
        "app     started recording",
        "network recorded",
        'app     played "Thank you. Goodbye."',
    ):
        assert step in transcript, step
    assert transcript.count("app     hung up (hangup)") == 2


# -- outbound_dialer.py --------------------------------------------------------------


def test_dialer_calls_every_number_at_once_and_reports(emulator: RelayEmulator) -> None:
    dialer = load_example("outbound_dialer")
    answers, later, busy, silent = "+15550101", "+15550102", "+15550103", "+15550104"
    emulator.phone(answers, after=10)  # rings long enough for every dial to go out first
    emulator.phone(later, after=15)
    emulator.phone(busy, busy=True)
    emulator.phone(silent, answers=False)

    result = run_example(
        "outbound_dialer", "--from", IVR_NUMBER, answers, later, busy, silent, env=environment(emulator)
    )

    assert result.returncode == 0, result.stderr
    # every number was dialed before the first one answered: in parallel
    dialed = [frame["params"]["devices"][0][0]["params"]["to_number"] for frame in emulator.requests("calling.dial")]
    assert sorted(dialed) == sorted([answers, later, busy, silent])
    happened = [entry.text for entry in emulator.transcript]
    last_dial = max(i for i, text in enumerate(happened) if text.startswith("dialing "))
    first_answer = min(i for i, text in enumerate(happened) if text.endswith(" answered"))
    assert last_dial < first_answer
    # the two who answered heard the message and were hung up on; the others were not reached
    assert texts_played(emulator) == [dialer.MESSAGE, dialer.MESSAGE]
    assert len(emulator.requests("calling.end")) == 2
    assert any(e.text == "the dial failed (busy)" for e in emulator.transcript)
    assert any(e.text == "the dial failed (noAnswer)" for e in emulator.transcript)
    report = result.stdout.split("report:", 1)[1]
    assert f"{answers}: message finished" in report
    assert f"{later}: message finished" in report
    assert f"{busy}: not reached" in report
    assert f"{silent}: not reached" in report
    assert "2 of 4 numbers heard the message" in report


def test_dialer_hangs_up_every_call_whose_message_outlasts_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    dialer = load_example("outbound_dialer")
    monkeypatch.setattr(dialer, "PLAY_TIMEOUT", 1.0)
    long_message = " ".join(["word"] * 400)  # many seconds of speech at time_factor 1
    with RelayEmulator(time_factor=1.0) as emulator:
        emulator.phone("+15550101")
        emulator.phone("+15550102", busy=True)
        with emulator.client() as client:
            outcomes = dialer.dial_all(client, ["+15550101", "+15550102"], IVR_NUMBER, long_message)

        assert outcomes == {"+15550101": "message did not finish in time", "+15550102": "not reached (dial_failed)"}
        assert emulator.active_calls == 0


def test_dialer_without_credentials_runs_its_own_demo() -> None:
    result = run_example("outbound_dialer", env=environment())

    assert result.returncode == 0, result.stderr
    assert "2 of 4 numbers heard the message" in result.stdout
    transcript = result.stdout.split("transcript:", 1)[1]
    assert transcript.count('app     played "Hello from Acme.') == 2
    assert "network the dial failed (busy)" in transcript
    assert "network the dial failed (noAnswer)" in transcript


# -- chat_monitor.py ----------------------------------------------------------------


def test_chat_monitor_prints_history_messages_and_member_changes(emulator: RelayEmulator) -> None:
    emulator.chat_publish("support", "Earlier", member_id="agent-bob")
    with serving("chat_monitor", "--channel", "support", "--messages", "2", env=environment(emulator)) as monitor:
        (monitor_id,) = emulator.chat.wait_for_members("support", 1, timeout=STEP_TIMEOUT)
        guest = emulator.client()
        guest.connect()
        try:
            with guest.chat.listen(["support"], on_message=lambda message: None):
                (guest_id,) = set(emulator.chat.wait_for_members("support", 2, timeout=STEP_TIMEOUT)) - {monitor_id}
                guest.chat.set_member_state(guest_id, ["support"], {"typing": True})
                guest.chat.publish("support", "Hello")
            emulator.chat_publish("support", "From outside", member_id="agent-ann")
        finally:
            guest.disconnect()
        assert monitor.finish() == 0, monitor.stderr  # --messages 2: both seen

    lines = monitor.stdout.splitlines()
    expected = [
        "monitor: [support] earlier, agent-bob: 'Earlier'",
        f"monitor: [support] {guest_id} joined",
        f"monitor: [support] {guest_id} is now {{'typing': True}}",
        f"monitor: [support] {guest_id}: 'Hello'",
        f"monitor: [support] {guest_id} left",
        "monitor: [support] agent-ann: 'From outside'",
    ]
    assert [line for line in lines if line in expected] == expected  # all of them, in this order


def test_chat_monitor_without_credentials_runs_its_own_demo() -> None:
    result = run_example("chat_monitor", env=environment())

    assert result.returncode == 0, result.stderr
    assert "monitor: [support] earlier, agent-ann: 'Welcome to support!'" in result.stdout
    assert "is now {'typing': True}" in result.stdout
    assert ": 'My order #42 has not arrived.'" in result.stdout
    transcript = result.stdout.split("transcript:", 1)[1]
    assert "published on 'support': 'Hello, is anyone there?'" in transcript


# -- sms_bot.py ----------------------------------------------------------------------


def test_sms_bot_replies_and_follows_delivery(emulator: RelayEmulator) -> None:
    bot = load_example("sms_bot")
    happy, landline = "+15550111", "+15550133"
    emulator.phone(landline, sms="failed")

    with serving("sms_bot", "--context", "sms", "--replies", "2", env=environment(emulator)) as bot_app:
        emulator.wait_for_session(1, timeout=STEP_TIMEOUT)
        emulator.send_sms(IVR_NUMBER, happy, "What are your hours?", context="sms")
        emulator.send_sms(IVR_NUMBER, landline, "hi", context="sms")
        assert bot_app.finish() == 0, bot_app.stderr  # --replies 2: both outcomes known

    replies = {frame["params"]["to_number"]: frame["params"] for frame in emulator.requests("messaging.send")}
    assert replies[happy]["body"] == bot.ANSWERS["hours"]
    assert replies[landline]["body"] == bot.HELP
    assert replies[happy]["from_number"] == IVR_NUMBER
    final_states = {
        event["params"]["to_number"]: event["params"]["message_state"]
        for event in emulator.events("messaging.state")
        if event["params"]["message_state"] in ("delivered", "undelivered", "failed")
    }
    assert final_states == {happy: "delivered", landline: "failed"}
    assert f"reply to {happy}: delivered" in bot_app.stdout
    assert f"reply to {landline}: failed" in bot_app.stdout


def test_sms_bot_without_credentials_runs_its_own_demo() -> None:
    result = run_example("sms_bot", env=environment())

    assert result.returncode == 0, result.stderr
    transcript = result.stdout.split("transcript:", 1)[1]
    assert 'phone   +15550111 texts +15550100: "What are your hours?"' in transcript
    assert 'app     sent an SMS +15550100 -> +15550111: "We are open' in transcript
    assert "network message to +15550133: undelivered" in transcript
    assert "reply to +15550133: undelivered" in result.stdout


# -- voicemail.py --------------------------------------------------------------------


def test_voicemail_records_and_downloads_the_message(emulator: RelayEmulator, tmp_path: Path) -> None:
    voicemail = load_example("voicemail")
    emulator.phone(VOICEMAIL_CALLER, message_seconds=3)
    saved = tmp_path / "voicemails"

    with serving("voicemail", "--calls", "1", "--save-to", str(saved), env=environment(emulator)) as app:
        emulator.wait_for_session(1, timeout=STEP_TIMEOUT)
        call = emulator.place_call(IVR_NUMBER, VOICEMAIL_CALLER, context="voicemail")
        assert call.wait_ended(timeout=STEP_TIMEOUT) == "hangup"
        assert app.finish() == 0, app.stderr

    assert call.said() == [voicemail.GREETING, "Thank you. Goodbye."]
    [record] = emulator.requests("calling.record")
    assert record["params"]["record"]["audio"]["beep"] is True
    [recorded] = [line for line in call.lines() if line.startswith("network: recorded 3.0 s: ")]
    # the recording the emulator made is the file the script saved
    [wav] = list(saved.iterdir())
    assert wav.name == f"{call.call_id}.wav"
    recording_id = recorded.rsplit("/", 1)[1].removesuffix(".wav")
    assert wav.read_bytes() == emulator.recordings.audio(recording_id)
    assert wav.read_bytes()[:4] == b"RIFF"
    assert f"saved to {wav}" in app.stdout


def test_voicemail_without_credentials_runs_its_own_demo(tmp_path: Path) -> None:
    result = run_example("voicemail", "--save-to", str(tmp_path), env=environment())

    assert result.returncode == 0, result.stderr
    assert "app     started recording" in result.stdout
    [wav] = list(tmp_path.iterdir())
    assert wav.read_bytes()[:4] == b"RIFF"
    assert f"saved to {wav}" in result.stdout


# -- hello_relay.py ------------------------------------------------------------------


def test_hello_relay_connects_to_the_configured_space_and_pings(emulator: RelayEmulator) -> None:
    result = run_example("hello_relay", env=environment(emulator))

    assert result.returncode == 0, result.stderr
    [login] = emulator.requests("signalwire.connect")
    assert login["params"]["contexts"] == ["office"]
    assert len(emulator.requests("signalwire.ping")) >= 1
    assert f"connected to {emulator.relay_host}: protocol" in result.stdout


def test_hello_relay_without_credentials_uses_a_server_of_its_own() -> None:
    result = run_example("hello_relay", env=environment())

    assert result.returncode == 0, result.stderr
    assert "connected to 127.0.0.1:" in result.stdout


# -- video_moderator.py ---------------------------------------------------------------


def test_video_moderator_records_every_room_and_mutes_where_the_policy_says(emulator: RelayEmulator) -> None:
    moderator = load_example("video_moderator")
    already_running = emulator.video.start_room("lobby")

    with serving("video_moderator", "--muted-rooms", "webinar", "--rooms", "3", env=environment(emulator)) as app:
        emulator.wait_for_request(
            "signalwire.subscribe", lambda p: p["event_channel"] == "video.rooms", timeout=STEP_TIMEOUT
        )
        town_hall = emulator.video.start_room("town-hall", meta=moderator.MUTED_POLICY)
        webinar = emulator.video.start_room("webinar")
        for room in (already_running, town_hall, webinar):
            name = emulator.video.room(room)["name"]
            emulator.wait_for_transcript(f"started recording room {name!r}", timeout=STEP_TIMEOUT)
        members = {
            room: [emulator.video.join(room, person) for person in ("ann", "ben")]
            for room in (town_hall, webinar, already_running)
        }
        for room in (town_hall, webinar):
            for member in members[room]:
                emulator.wait_for_request(
                    "video.member.audio_mute", lambda p, m=member: p["member_id"] == m, timeout=STEP_TIMEOUT
                )
        for room in (already_running, town_hall, webinar):
            emulator.video.end_room(room)
        assert app.finish() == 0, app.stderr  # --rooms 3: every recording ended

    muted = sorted(frame["params"]["member_id"] for frame in emulator.requests("video.member.audio_mute"))
    assert muted == sorted(members[town_hall] + members[webinar])  # nobody in the lobby
    recorded = sorted(frame["params"]["room_session_id"] for frame in emulator.requests("video.recording.start"))
    assert recorded == sorted([already_running, town_hall, webinar])
    assert app.stdout.count("moderator: recording of ") == 3
    assert "muted ann in 'town-hall' (room muted by policy)" in app.stdout
    assert "muted ben in 'webinar' (room muted by policy)" in app.stdout


def test_video_moderator_without_credentials_runs_its_own_demo() -> None:
    result = run_example("video_moderator", env=environment())

    assert result.returncode == 0, result.stderr
    transcript = result.stdout.split("transcript:", 1)[1]
    for step in (
        "network room 'town-hall' started",
        "app     started recording room 'town-hall'",
        "app     set audio_muted=True for alice in room 'town-hall'",
        "app     set audio_muted=True for bob in room 'town-hall'",
        "network recorded room 'town-hall'",
        "app     started recording room 'standup'",
        "network recorded room 'standup'",
    ):
        assert step in transcript, step
    assert "for carol" not in transcript  # standup is not muted by policy
