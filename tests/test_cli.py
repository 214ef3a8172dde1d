"""The ``relay-sync`` command, each subcommand run as a real subprocess:
the demo's transcript, the standalone emulator, and send-sms, dial and
check against an emulator in this process (credentials from the
environment, errors as one line, never a token on screen)."""

from __future__ import annotations

import os
import pty
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay_sync.testing import RelayEmulator

CONSOLE_SCRIPT = Path(sys.executable).with_name("relay-sync")
SECRET_TOKEN = "tok-9f3b2c71e4"
TIMESTAMPED = re.compile(r"^\[\s*\d+\.\d{3}\] ")


def clean_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALWIRE_", "RELAY_"))}
    environment.update(extra)
    return environment


def relay_sync(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay_sync", *args],
        check=False,
        env=env if env is not None else clean_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def emulator() -> Iterator[RelayEmulator]:
    with RelayEmulator("cli-project", SECRET_TOKEN, time_factor=0.01, ring_timeout=20) as running:
        yield running


@pytest.fixture
def space(emulator: RelayEmulator) -> dict[str, str]:
    """The environment of a user whose configured space is the emulator."""
    return clean_environment(**emulator.environment())


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("relay-sync: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert SECRET_TOKEN not in result.stdout + result.stderr


def test_demo_prints_the_whole_ivr_as_a_timestamped_transcript() -> None:
    result = relay_sync("demo", "--time-factor", "0.02")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in (
        "+15550111 calls +15550100",  # the first caller
        "answered the call",
        'played "Thanks for calling Acme. Press 1 for sales, or 2 to leave a message." and waits for input',
        "pressed 1",
        "connected to +15550199",  # the agent
        "the agent finished the call",
        "confirmation SMS to +15550111: delivered",
        "pressed 2",
        "started recording",
        "voicemail saved: 4 s",
        "confirmation SMS to +15550122: delivered",
        "posting a task over REST",
        "task received on context 'ivr'",
        "Demo complete: 2 calls answered, 1 connected to sales, 1 voicemail recorded, 2 SMS delivered, 1 task received.",
    ):
        assert step in out, f"missing {step!r} in:\n{out}"
    events = [line for line in out.splitlines() if line.startswith("[")]
    assert len(events) > 30 and all(TIMESTAMPED.match(line) for line in events)
    assert out.index("pressed 1") < out.index("pressed 2") < out.index("task received")


def test_the_console_script_is_installed() -> None:
    result = subprocess.run([str(CONSOLE_SCRIPT), "--version"], check=False, capture_output=True, text=True, timeout=30)

    assert result.returncode == 0
    assert result.stdout.startswith("relay-sync ")


def test_help_lists_every_command() -> None:
    result = relay_sync("--help")

    for command in ("demo", "emulator", "send-sms", "dial", "check"):
        assert command in result.stdout


def test_the_emulator_command_prints_where_and_how_to_connect_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "relay_sync", "emulator", "--port", "0", "--time-factor", "0.01"],
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert re.match(r"RELAY emulator listening on 127\.0\.0\.1:\d+ ", banner), banner
        printed = {}
        while len(printed) < 3:
            line = process.stdout.readline()
            match = re.match(r"\s+export (SIGNALWIRE_\w+)=(\S+)", line)
            if match:
                printed[match[1]] = match[2]
        assert printed["SIGNALWIRE_SPACE"] == banner.split()[4]

        check = relay_sync("check", env=clean_environment(**printed))
        assert check.returncode == 0, check.stderr

        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "emulator stopped" in out


def test_the_emulator_command_scripts_phones_and_prints_the_transcript() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "relay_sync", "emulator", "--port", "0", "--time-factor", "0.01", "--transcript",
         "--phone", "+15550111", "busy", "--phone", "+15550122", "no-answer,hangup-after=5"],
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        printed = {}
        while len(printed) < 3:
            match = re.match(r"\s+export (SIGNALWIRE_\w+)=(\S+)", process.stdout.readline())
            if match:
                printed[match[1]] = match[2]

        busy = relay_sync("dial", "--to", "+15550111", "--from", "+15550100", env=clean_environment(**printed))
        silent = relay_sync("dial", "--to", "+15550122", "--from", "+15550100", env=clean_environment(**printed))
        answers = relay_sync("dial", "--to", "+15550133", "--from", "+15550100", env=clean_environment(**printed))

        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert_one_line_error(busy, "(busy)")
    assert_one_line_error(silent, "(noAnswer)")
    assert answers.returncode == 0, answers.stderr
    assert re.search(r"app\s+dialing \+15550111 for client #0 \(tag [-\w]+\)", out), out
    assert re.search(r"app\s+dialing \+15550133 for client #2 ", out), out
    for happened in ("+15550111 is busy", "+15550122 did not answer", "+15550133 answered"):
        assert happened in out, out


def test_the_emulator_command_refuses_a_phone_behaviour_it_does_not_know() -> None:
    result = relay_sync("emulator", "--phone", "+15550111", "busy,sometimes")

    assert result.returncode == 2
    assert "unknown behaviour 'sometimes'" in result.stderr and "no-answer" in result.stderr


def test_send_sms_waits_for_delivery(emulator: RelayEmulator, space: dict[str, str]) -> None:
    result = relay_sync("send-sms", "--to", "+15550111", "--from", "+15550100", "--body", "Hi from the CLI", env=space)

    assert result.returncode == 0, result.stderr
    # The state printed on acceptance may already be past queued: its events race the print.
    assert re.search(r"message \S+ accepted \((queued|initiated|sent)\)", result.stdout)
    assert re.search(r"message \S+ delivered", result.stdout)
    assert emulator.requests("messaging.send")[0]["params"]["body"] == "Hi from the CLI"
    assert SECRET_TOKEN not in result.stdout + result.stderr


def test_send_sms_reports_an_undelivered_message(emulator: RelayEmulator, space: dict[str, str]) -> None:
    emulator.phone("+15550111", sms="undelivered")

    result = relay_sync("send-sms", "--to", "+15550111", "--from", "+15550100", "--body", "Hi", env=space)

    assert_one_line_error(result, "not delivered", "undelivered")


def test_dial_plays_the_text_and_hangs_up(emulator: RelayEmulator, space: dict[str, str]) -> None:
    result = relay_sync("dial", "--to", "+15550111", "--from", "+15550100", "--play", "Your order shipped", env=space)

    assert result.returncode == 0, result.stderr
    assert "answered" in result.stdout and "call ended (hangup)" in result.stdout
    said = [text for entry in emulator.transcript for text in entry.spoken]
    assert said == ["Your order shipped"]


def test_dial_reports_a_number_that_does_not_answer(emulator: RelayEmulator, space: dict[str, str]) -> None:
    emulator.phone("+15550111", answers=False)

    result = relay_sync("dial", "--to", "+15550111", "--from", "+15550100", env=space)

    assert_one_line_error(result)


def test_check_reports_protocol_and_round_trip(emulator: RelayEmulator, space: dict[str, str]) -> None:
    result = relay_sync("check", env=space)

    assert result.returncode == 0, result.stderr
    assert f"connected to {emulator.relay_host}" in result.stdout
    assert re.search(r"protocol:\s+signalwire_\w+", result.stdout)
    assert re.search(r"round trip: \d+\.\d ms min, \d+\.\d ms avg over 3 pings", result.stdout)
    assert SECRET_TOKEN not in result.stdout + result.stderr


def test_check_with_a_wrong_token_is_one_clear_line(emulator: RelayEmulator, space: dict[str, str]) -> None:
    result = relay_sync("check", env={**space, "SIGNALWIRE_API_TOKEN": "wrong-token"})

    assert_one_line_error(result, "refused the credentials", "SIGNALWIRE_API_TOKEN")
    assert "wrong-token" not in result.stderr


def test_check_against_nothing_fails_clearly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = clean_environment(
        SIGNALWIRE_SPACE=f"127.0.0.1:{port}", SIGNALWIRE_PROJECT_ID="p", SIGNALWIRE_API_TOKEN=SECRET_TOKEN
    )

    result = relay_sync("check", "--timeout", "2", env=env)

    assert_one_line_error(result, "could not connect")


def test_missing_credentials_without_a_terminal_name_the_variable(space: dict[str, str]) -> None:
    del space["SIGNALWIRE_API_TOKEN"]

    result = relay_sync("check", env=space)

    assert_one_line_error(result, "SIGNALWIRE_API_TOKEN is not set")


def test_debug_shows_the_traceback(emulator: RelayEmulator, space: dict[str, str]) -> None:
    result = relay_sync("--debug", "check", env={**space, "SIGNALWIRE_API_TOKEN": "wrong-token"})

    assert result.returncode != 0
    assert "Traceback" in result.stderr and "AuthenticationError" in result.stderr


def test_a_usage_error_exits_2() -> None:
    result = relay_sync("send-sms", "--to", "+15550111")

    assert result.returncode == 2
    assert "--from" in result.stderr


def start_dial(space: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "relay_sync", "dial", "--to", "+15550111", "--from", "+15550100", *args],
        env=space,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ctrl_c_while_ringing_leaves_no_call_up() -> None:
    with RelayEmulator("cli-project", SECRET_TOKEN, time_factor=0.1) as emulator:
        emulator.phone("+15550111", after=30)  # rings for 3 real seconds, then answers
        process = start_dial(clean_environment(**emulator.environment()))
        try:
            emulator.wait_for_transcript("+15550111 is ringing", timeout=30)
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err
        # The dial was settled before leaving: its answered call was hung up, not stranded.
        assert emulator.active_calls == 0


def test_a_play_that_outlasts_its_timeout_still_hangs_up() -> None:
    with RelayEmulator("cli-project", SECRET_TOKEN, time_factor=1.0) as emulator:
        long_text = " ".join(["word"] * 400)
        process = start_dial(clean_environment(**emulator.environment()), "--play", long_text, "--play-timeout", "1")
        try:
            _, err = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == 1, err
        assert "Traceback" not in err
        assert emulator.active_calls == 0


def test_dial_reports_a_callee_who_hung_up_during_the_message() -> None:
    with RelayEmulator("cli-project", SECRET_TOKEN, time_factor=0.1) as emulator:
        emulator.phone("+15550111", hangup_after=2)
        long_text = " ".join(["word"] * 100)

        result = relay_sync(
            "dial",
            "--to",
            "+15550111",
            "--from",
            "+15550100",
            "--play",
            long_text,
            env=clean_environment(**emulator.environment()),
        )

        assert_one_line_error(result, "not played to the end")
        assert "played:" not in result.stdout
        assert emulator.active_calls == 0


def test_ctrl_d_at_a_prompt_says_no_input() -> None:
    terminal, user_side = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "relay_sync", "check"],
            env=clean_environment(),
            stdin=user_side,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(terminal, b"\x04")  # Ctrl-D: end of input at the first prompt, whenever it reads
        out, err = process.communicate(timeout=30)
    finally:
        os.close(terminal)
        os.close(user_side)

    assert process.returncode == 1, err
    assert err.strip() == "relay-sync: error: SIGNALWIRE_SPACE is required (no input)"
    assert "EOFError" not in out + err


def test_an_emulator_port_out_of_range_is_a_usage_error() -> None:
    result = relay_sync("emulator", "--port", "70000")

    assert result.returncode == 2
    assert "must be 0 to 65535, not 70000" in result.stderr and "Traceback" not in result.stderr
