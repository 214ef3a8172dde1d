"""run() in a real process's main thread: SIGTERM and Ctrl-C end it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import threading
    from relay_sync import RelayClient
    from relay_sync.testing import RelayTestServer

    with RelayTestServer() as server:
        client = RelayClient(**server.client_kwargs())
        def announce():
            server.wait_for_session(1)
            print("ready", flush=True)
        threading.Thread(target=announce, daemon=True).start()
        client.run()
        ours = [t.name for t in threading.enumerate() if t.name.startswith("relay_sync")]
        print("run returned; threads left:", ours, flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_run_cleanly(signum: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signum)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "run returned; threads left: []" in out


FORK_SCRIPT = textwrap.dedent(
    """
    import os, signal, threading
    from relay_sync import RelayClient
    from relay_sync.testing import RelayTestServer

    with RelayTestServer() as server:
        client = RelayClient(**server.client_kwargs())

        def fork_and_terminate():
            server.wait_for_session(1)  # run() is listening for signals by now
            ready_read, ready_write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: a worker that should die of SIGTERM like any process
                os.write(ready_write, b"x")  # after the fork hooks ran
                threading.Event().wait(20)
                os._exit(3)
            os.read(ready_read, 1)
            os.kill(pid, signal.SIGTERM)
            ended = threading.Event()
            status = {}
            def reap():
                status["status"] = os.waitpid(pid, 0)[1]
                ended.set()
            threading.Thread(target=reap, daemon=True).start()
            if ended.wait(10):
                print("child status", os.waitstatus_to_exitcode(status["status"]), flush=True)
            else:
                print("child ignored SIGTERM", flush=True)
                os.kill(pid, signal.SIGKILL)
            client.stop()

        threading.Thread(target=fork_and_terminate).start()
        client.run()
        print("run returned", flush=True)
    """
)


def test_a_process_forked_while_run_listens_dies_of_its_own_sigterm() -> None:
    # The child inherits run()'s SIGTERM handler, bound to the parent's stop signal:
    # without putting the previous handler back, the child ignores SIGTERM.
    process = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert process.returncode == 0, process.stderr
    assert f"child status {-signal.SIGTERM}" in process.stdout, process.stdout + process.stderr
    assert "run returned" in process.stdout
