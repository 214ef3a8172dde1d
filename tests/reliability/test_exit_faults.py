"""The fault matrix, process rows, each in a real process of its own: a script
that ends while a handler is blocked in an SDK wait exits (its clients are
closed at interpreter exit, after the script's own threads finished); Ctrl-C
with a busy handler says what it waits for, and a second Ctrl-C stops at
once, without a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from relay_sync.testing import RelayTestServer

from ..calling_support import push_inbound, script_call_lifecycle
from .support import STEP

CLIENT = """
import logging, sys, threading
from relay_sync import ClientClosedError, RelayClient
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
client = RelayClient(project="test", token="test", host=sys.argv[1], scheme="ws", contexts=["office"])
def say(text):
    print(text, flush=True)
"""

# The handler waits in the SDK for a call that never ends; the main thread just finishes.
HANDLER_IN_SDK_WAIT = """
in_handler = threading.Event()
@client.on_call
def handle(call):
    call.answer()
    in_handler.set()
    try:
        call.wait_for_ended()
    except ClientClosedError:
        say("handler unwound")
client.connect()
say("connected")
in_handler.wait()
"""

# As above, and a thread of the script's own still uses the client after the main thread ended.
STILL_USED_BY_A_SCRIPT_THREAD = (
    HANDLER_IN_SDK_WAIT
    + """
def later():
    sys.stdin.readline()
    say("script thread: " + client.execute("still.open", {})["code"])
threading.Thread(target=later).start()
say("main thread ends")
"""
)

# run() serves a call whose handler waits in the SDK.
HANDLER_WAITS_IN_RUN = """
@client.on_call
def handle(call):
    call.answer()
    say("handler waiting")
    try:
        call.wait_for_ended()
    except ClientClosedError:
        say("handler unwound")
client.run()
say("run returned")
"""

# The handler is stuck outside the SDK: nothing relay_sync does can end it.
HANDLER_STUCK_ELSEWHERE = """
stuck = threading.Event()
@client.on_call
def handle(call):
    say("handler busy")
    stuck.set()
    threading.Event().wait()
"""


def start(server: RelayTestServer, *parts: str) -> subprocess.Popen[str]:
    script = textwrap.dedent(CLIENT) + "".join(textwrap.dedent(part) for part in parts)
    return subprocess.Popen(
        [sys.executable, "-c", script, server.relay_host],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # log lines and prints, in the order they happened
        text=True,
    )


Processes = list[subprocess.Popen[str]]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(STEP)


def read_until(process: subprocess.Popen[str], text: str) -> list[str]:
    """Lines the process printed, up to the first containing ``text`` (the test's timeout bounds it)."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    raise AssertionError(f"the process ended without printing {text!r}: {lines}")


def finish(process: subprocess.Popen[str]) -> str:
    """What the process printed until it exited (it must exit within a few seconds)."""
    out, _ = process.communicate(timeout=STEP * 2)
    return out


def call_in(server: RelayTestServer) -> str:
    return push_inbound(server.wait_for_session(1))


# -- interpreter exit -------------------------------------------------------------------


def test_a_script_whose_handler_waits_in_the_sdk_exits(server: RelayTestServer, processes: Processes) -> None:
    script_call_lifecycle(server)
    process = start(server, HANDLER_IN_SDK_WAIT)
    processes.append(process)
    read_until(process, "connected")
    call_in(server)

    out = finish(process)  # the main thread ended: the client is closed, the handler unwinds
    assert process.returncode == 0, out
    assert "handler unwound" in out
    assert "interpreter exit: closing 1 RelayClient(s)" in out
    assert "Traceback" not in out


def test_the_client_stays_open_while_a_thread_of_the_script_still_runs(
    server: RelayTestServer, processes: Processes
) -> None:
    script_call_lifecycle(server)
    process = start(server, STILL_USED_BY_A_SCRIPT_THREAD)
    processes.append(process)
    read_until(process, "connected")
    call_in(server)
    assert "handler unwound" not in "".join(read_until(process, "main thread ends"))

    assert process.stdin is not None
    process.stdin.write("go\n")  # the script's thread uses the client after the main thread ended
    process.stdin.flush()
    out = finish(process)
    assert process.returncode == 0, out
    assert out.index("script thread: 200") < out.index("handler unwound")  # closed only after it finished


def test_ctrl_c_at_exit_with_a_handler_stuck_outside_the_sdk_stops_quietly(
    server: RelayTestServer, processes: Processes
) -> None:
    # The main thread ends once the handler is stuck.
    process = start(server, HANDLER_STUCK_ELSEWHERE, 'client.connect()\nsay("connected")\nstuck.wait()\n')
    processes.append(process)
    read_until(process, "connected")
    call_in(server)
    read_until(process, "handler busy")
    read_until(process, "interpreter exit: closing 1 RelayClient(s)")  # now waiting in the exit hook

    os.kill(process.pid, signal.SIGINT)
    out = finish(process)
    assert "left behind" in out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out


# -- Ctrl-C during run() ----------------------------------------------------------------------


def test_a_second_ctrl_c_stops_run_waiting_for_a_busy_handler(server: RelayTestServer, processes: Processes) -> None:
    process = start(server, HANDLER_STUCK_ELSEWHERE, 'client.run()\nsay("run returned")\n')
    processes.append(process)
    call_in(server)
    read_until(process, "handler busy")

    os.kill(process.pid, signal.SIGINT)
    read_until(process, "waiting for 1 handler(s); press Ctrl-C again to stop now")
    os.kill(process.pid, signal.SIGINT)
    out = finish(process)
    assert process.returncode == 0, out
    assert "run returned" in out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out


def test_one_ctrl_c_ends_run_when_the_handler_waits_in_the_sdk(server: RelayTestServer, processes: Processes) -> None:
    script_call_lifecycle(server)
    process = start(server, HANDLER_WAITS_IN_RUN)
    processes.append(process)
    call_in(server)
    read_until(process, "handler waiting")

    os.kill(process.pid, signal.SIGINT)
    out = finish(process)
    assert process.returncode == 0, out
    assert out.index("handler unwound") < out.index("run returned")
    assert "Traceback" not in out
