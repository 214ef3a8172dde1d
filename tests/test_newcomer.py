"""Rough edges a new user met, each fixed and kept fixed: the CLI's help and
error order, SIGNALWIRE_SPACE named in errors, whitespace around environment
values, printable transcripts, and the fixture's install hint."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay_sync import RelayClient
from relay_sync.testing import RelayEmulator

from .test_cli import assert_one_line_error, clean_environment, relay_sync


@pytest.fixture
def emulator() -> Iterator[RelayEmulator]:
    with RelayEmulator(time_factor=0.01) as running:
        yield running


@pytest.mark.parametrize("command", ["send-sms", "dial"])
def test_help_shows_plain_argument_names(command: str) -> None:
    result = relay_sync(command, "--help")
    assert result.returncode == 0
    assert "--from NUMBER" in result.stdout and "--to NUMBER" in result.stdout
    assert "FROM_" not in result.stdout


def test_a_bad_space_is_reported_before_missing_credentials() -> None:
    result = relay_sync("check", env=clean_environment(SIGNALWIRE_SPACE="https://example.signalwire.com"))
    assert_one_line_error(result, "SIGNALWIRE_SPACE must be a hostname", "not a URL")
    assert "PROJECT" not in result.stderr


def test_an_invalid_space_names_the_variable_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_SPACE", "example.signalwire.com/relay")
    with pytest.raises(ValueError, match=r"^SIGNALWIRE_SPACE must be a hostname"):
        RelayClient(project="p", token="t")
    with pytest.raises(ValueError, match=r"^host must be a hostname"):
        RelayClient(project="p", token="t", host="example.signalwire.com/relay")


def test_whitespace_around_environment_values_is_stripped(
    emulator: RelayEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    padded = {name: f" {value}\n" for name, value in emulator.environment().items()}
    for name, value in padded.items():
        monkeypatch.setenv(name, value)
    with RelayClient() as client:  # what a pasted "export SIGNALWIRE_SPACE=... " gives
        assert client.state == "connected"
        assert client.host == emulator.relay_host

    result = relay_sync("check", "--pings", "1", env=clean_environment(**padded))
    assert result.returncode == 0, result.stderr


def test_a_transcript_prints_as_readable_lines(emulator: RelayEmulator) -> None:
    emulator.phone("+15552222222")
    with emulator.client() as client:
        call = client.dial(
            [[{"type": "phone", "params": {"to_number": "+15552222222", "from_number": "+15551111111"}}]]
        )
        call.play([{"type": "tts", "params": {"text": "Hello there"}}]).wait(timeout=10)
        call.hangup()
        call.wait_for_ended(timeout=10)
    printed = "\n".join(map(str, emulator.transcript))
    lines = printed.splitlines()
    assert len(lines) == len(emulator.transcript) >= 3
    assert all(re.match(r"^\[\s*\d+\.\d{3}\] (app|phone|network)\s", line) for line in lines), printed
    assert any("Hello there" in line for line in lines)


def test_the_emulator_fixture_without_websockets_says_what_to_install(tmp_path: Path) -> None:
    # A project whose environment lacks websockets: None in sys.modules makes every import of it fail.
    (tmp_path / "conftest.py").write_text("import sys\nsys.modules['websockets'] = None\n")
    (tmp_path / "test_app.py").write_text("def test_uses_the_emulator(relay_emulator):\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "pip install 'relay-sync[testing]'" in result.stdout, result.stdout
