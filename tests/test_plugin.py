"""The pytest plugin as a user meets it: a separate pytest run on a test
file that uses ``relay_emulator``/``relay_client`` (found through the
``pytest11`` entry point), and the plugin loading without websockets."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# README's example: a user's handler and its test, in under ten lines.
USER_TESTS = """
import os

import pytest


def handle_call(call):  # the user's own handler
    call.answer()
    call.play([{"type": "tts", "params": {"text": "Welcome to Acme"}}]).wait(timeout=5)
    call.hangup()


def test_greeting(relay_emulator, relay_client):
    relay_client.on_call(handle_call)
    call = relay_emulator.place_call("+15550100", "+15550111")
    assert call.wait_ended(timeout=5) == "hangup"
    assert call.said() == ["Welcome to Acme"]


class TestOverrides:
    @pytest.fixture
    def relay_contexts(self):
        return ["office"]

    @pytest.fixture
    def relay_emulator_options(self):
        return {"time_factor": 0.02, "project": "acme"}

    def test_contexts_and_options(self, relay_emulator, relay_client):
        assert relay_client.contexts == ["office"]
        assert relay_client.connected and relay_emulator.project == "acme"
        assert relay_emulator.time_factor == 0.02

    def test_environment(self, relay_environment, relay_emulator):
        assert os.environ["SIGNALWIRE_SPACE"] == relay_emulator.relay_host
        assert os.environ["SIGNALWIRE_PROJECT_ID"] == "acme"


def test_sms_from_a_view(relay_emulator, relay_client):
    message = relay_client.send_message(to_number="+15550111", from_number="+15550100", body="Order shipped")
    assert message.wait(timeout=5).state == "delivered"
    assert relay_emulator.requests("messaging.send")[0]["params"]["body"] == "Order shipped"
"""


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        check=False,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_fixtures_work_from_a_users_test_file(tmp_path: Path) -> None:
    (tmp_path / "test_my_app.py").write_text(USER_TESTS)

    result = run_pytest(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_the_fixtures_are_listed(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--fixtures")

    for name in ("relay_emulator", "relay_client", "relay_contexts", "relay_emulator_options", "relay_environment"):
        assert name in result.stdout


def test_the_plugin_loads_without_websockets() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["websockets"] = None  # as if it were not installed
        import relay_sync.testing
        import relay_sync.testing.plugin
        try:
            relay_sync.testing.RelayEmulator
        except ModuleNotFoundError as error:
            print(error)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=30)

    assert result.returncode == 0, result.stderr
    assert "pip install 'relay-sync[testing]'" in result.stdout
