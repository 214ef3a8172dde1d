"""The fault matrix, ``run()`` rows: a service started before its server or
network is up, a first login cut off, credentials refused at boot, and a
process holding more than 1024 file descriptors.

``run()`` keeps trying what may heal (one WARNING per failure) and raises
what cannot; ``connect()`` stays fail-fast; and whichever way ``run()`` ends,
the client is disconnected with every thread gone.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import relay_sync
from relay_sync import AuthenticationError, ClientClosedError, RelayClient, RelayError
from relay_sync.testing import RelayTestServer

from .netfaults import LogWatch, refused_port
from .support import STEP, outcome_of, relay_thread_count, run_in_thread

FAST_BACKOFF = (0.05, 0.2)


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    yield
    assert relay_thread_count() == 0, "relay_sync threads left running"


def test_run_waits_for_a_server_that_is_not_up_yet() -> None:
    port = refused_port()
    client = RelayClient("test", "test", host=f"127.0.0.1:{port}", scheme="ws", reconnect_backoff=FAST_BACKOFF)
    with LogWatch() as logs:
        running = run_in_thread(client.run, name="test-run")
        failures = logs.wait_for(logging.WARNING, "could not connect", count=3, timeout=STEP * 2)
        with RelayTestServer(port=port) as server:  # the server comes up late
            server.wait_for_session(1, timeout=STEP * 2)
            client.stop()
            assert outcome_of(running, timeout=STEP) is None  # stop() ends run() normally
        attempts = logs.matching(logging.WARNING, "could not connect")
    # Each failed attempt is one WARNING, and nothing above INFO said anything else.
    assert [f"attempt {n}" in r.getMessage() for n, r in enumerate(failures, 1)] == [True] * len(failures)
    assert len({r.getMessage().split("):")[0] for r in attempts}) == len(attempts)
    assert [r for r in logs.records if r.levelno >= logging.WARNING and r not in attempts] == []
    assert not client.connected


def test_run_retries_a_first_login_cut_off() -> None:
    with RelayTestServer() as server, LogWatch() as logs:
        server.pause_logins()  # the first login hangs until the test drops its socket
        client = RelayClient(**server.client_kwargs(reconnect_backoff=FAST_BACKOFF))
        connected = threading.Event()
        client.on_connected(lambda resumed: connected.set())
        running = run_in_thread(client.run, name="test-run")
        server.wait_for_request("signalwire.connect")
        server.sessions[0].drop()
        logs.wait_for(logging.WARNING, "could not connect")
        server.resume_logins()
        assert connected.wait(STEP * 2)
        assert client.execute("after.boot", {}, timeout=STEP)["code"] == "200"
        client.stop()
        assert outcome_of(running) is None


def test_connect_stays_fail_fast() -> None:
    client = RelayClient("test", "test", host=f"127.0.0.1:{refused_port()}", scheme="ws")
    with LogWatch() as logs, pytest.raises(RelayError) as raised:
        client.connect(timeout=STEP)
    assert raised.value.code == "connect_failed"
    assert logs.matching(logging.WARNING, "could not connect") == []


def test_run_gives_up_after_three_credential_refusals_and_disconnects() -> None:
    with RelayTestServer() as server:
        server.reject_logins = True
        client = RelayClient(**server.client_kwargs(reconnect_backoff=FAST_BACKOFF))
        with pytest.raises(AuthenticationError):
            client.run()
        assert len(server.requests("signalwire.connect")) == 3
    with pytest.raises(ClientClosedError):  # run() disconnected in its finally
        client.connect()


def test_stop_during_the_retries_ends_run_normally() -> None:
    client = RelayClient(
        "test", "test", host=f"127.0.0.1:{refused_port()}", scheme="ws", reconnect_backoff=(30.0, 60.0)
    )
    with LogWatch() as logs:
        running = run_in_thread(client.run, name="test-run")
        logs.wait_for(logging.WARNING, "could not connect")  # now waiting out a backoff of 30 s or more
        client.stop()
        assert outcome_of(running, timeout=STEP) is None


# -- more than 1024 file descriptors -----------------------------------------------

HIGH_FD_SCRIPT = textwrap.dedent(
    """
    import os, resource, sys, threading
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    assert held[-1] >= 1024, held[-1]

    from relay_sync import RelayClient
    from relay_sync.stop_signal import StopSignal

    # Tell the test when run() starts waiting for its stop (so that the signal finds
    # it waiting, where select() used to fail), by wrapping that wait.
    def announced_wait(self, *args, **kwargs):
        print("waiting", flush=True)
        return plain_wait(self, *args, **kwargs)

    plain_wait, StopSignal.wait = StopSignal.wait, announced_wait
    client = RelayClient("test", "test", host=sys.argv[1], scheme="ws")
    try:
        client.run()  # ended by the SIGTERM the test sends
    finally:
        left = [t.name for t in threading.enumerate() if t.name.startswith("relay_sync")]
        print("stopped", "connected" if client.connected else "disconnected", left, flush=True)
    """
)


def test_run_works_with_more_than_1024_open_files(tmp_path: Path) -> None:
    resource = pytest.importorskip("resource")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard RLIMIT_NOFILE ({hard}) is too low to open 1100 files")
    script = tmp_path / "high_fds.py"
    script.write_text(HIGH_FD_SCRIPT)
    with RelayTestServer() as server:
        child = subprocess.Popen(
            [sys.executable, str(script), server.relay_host],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(relay_sync.__file__).parents[1]), *sys.path])},
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "waiting\n"
            session = server.wait_for_session(1, timeout=STEP * 3)
            # A few round trips through the child's I/O thread: each hands the child's
            # GIL back and forth, and the main thread, just announced, reaches its wait.
            for _ in range(3):
                session.wait_answer(session.ping(), timeout=STEP)
            child.send_signal(signal.SIGTERM)
            out, err = child.communicate(timeout=STEP * 3)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
    assert out.splitlines()[-1] == "stopped disconnected []", (out, err)
    assert child.returncode == 0, err
    assert "filedescriptor out of range" not in err
