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
