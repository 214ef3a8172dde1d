"""relay_sync.contrib.celery: a client per worker process, made on Celery's
worker_process_init and disconnected on worker_process_shutdown (the signals
sent for real, against the emulator), and a core that never imports Celery.

The prefork pool itself (a client per forked process, three sessions) is
exercised by tests/test_celery_campaign.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest
from celery import signals

from relay_sync import AuthenticationError, RelayClient, RelayError
from relay_sync.contrib import celery as relay_celery
from relay_sync.testing import RelayEmulator

WAIT = 10.0


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[RelayEmulator]:
    """An emulator, named by the SIGNALWIRE_* environment as a worker's space would be."""
    with RelayEmulator() as running:
        for name, value in running.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "4")
        yield running


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALWIRE_", "RELAY_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_each_worker_process_gets_a_client_at_init_and_loses_it_at_shutdown(emulator: RelayEmulator) -> None:
    relay_celery.setup(request_timeout=5)

    signals.worker_process_init.send(sender=None)  # what each prefork child sends after the fork
    emulator.wait_for_session(1, timeout=WAIT)
    client = relay_celery.get_client()

    assert client.connected and client.relay_protocol is not None
    assert relay_celery.get_client() is client  # one per process, whichever task asks
    client.execute("signalwire.ping", {})

    signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    assert not client.connected
    with pytest.raises(RuntimeError, match="shutting down"):
        relay_celery.get_client()


def test_a_client_that_gave_up_is_replaced_by_the_next_get_client(emulator: RelayEmulator) -> None:
    relay_celery.setup(reconnect_backoff=(0.05, 0.1))
    try:
        first = relay_celery.get_client()
        gave_up = threading.Event()
        first.on_disconnected(lambda error: isinstance(error, AuthenticationError) and gave_up.set())

        emulator.reject_logins = True  # an auth outage: every reconnect is refused
        emulator.drop_sessions()
        assert gave_up.wait(WAIT)  # refused three times: the client closed itself for good
        first.disconnect()  # returns once that closing is over (a no-op for the outcome)
        assert first.state == "closed"
        emulator.reject_logins = False  # the outage is over

        second = relay_celery.get_client()
        assert second is not first and second.connected
        second.execute("signalwire.ping", {})
        assert relay_celery.get_client() is second
    finally:
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)


def test_a_pool_without_process_init_makes_the_client_on_first_use(emulator: RelayEmulator) -> None:
    made: list[RelayClient] = []

    def factory() -> RelayClient:
        made.append(RelayClient(contexts=["campaign"]))
        return made[-1]

    relay_celery.setup(factory)  # solo and threads pools send no worker_process_init
    try:
        client = relay_celery.get_client()

        assert made == [client] and client.connected and client.contexts == ["campaign"]
        assert relay_celery.get_client() is client
    finally:
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    assert not made[0].connected


def test_process_init_logs_a_client_that_cannot_connect_and_get_client_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with RelayEmulator() as emulator:
        environment = emulator.environment()
    for name, value in environment.items():  # the emulator is gone: nothing listens there any more
        monkeypatch.setenv(name, value)
    relay_celery.setup(connect_timeout=2, request_timeout=2)
    try:
        signals.worker_process_init.send(sender=None)

        assert "could not connect to RELAY yet" in caplog.text
        with pytest.raises(RelayError):  # each task tries again, and fails with the reason
            relay_celery.get_client()
    finally:
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)


def test_options_and_a_factory_do_not_mix() -> None:
    with pytest.raises(TypeError, match="either a factory or RelayClient options"):
        relay_celery.setup(RelayClient, request_timeout=5)


def test_get_client_before_setup_says_what_to_call() -> None:
    result = run_python(
        """
        from relay_sync.contrib import celery as relay_celery
        try:
            relay_celery.get_client()
        except RuntimeError as error:
            print(error)
        """
    )

    assert result.returncode == 0, result.stderr
    assert "relay_sync.contrib.celery.setup() was not called" in result.stdout


def test_the_core_never_imports_celery() -> None:
    """Every relay_sync module but the Celery integration imports with Celery unavailable."""
    result = run_python(
        """
        import importlib, pkgutil, sys

        class NoCelery:
            def find_spec(self, name, path=None, target=None):
                if name == "celery" or name.startswith("celery."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, NoCelery())
        import relay_sync
        imported = ["relay_sync"]
        for module in pkgutil.walk_packages(relay_sync.__path__, "relay_sync."):
            if module.name not in ("relay_sync.contrib.celery", "relay_sync.__main__"):  # __main__ runs the CLI
                importlib.import_module(module.name)
                imported.append(module.name)
        assert not [name for name in sys.modules if name.split(".")[0] == "celery"], "celery was imported"
        try:
            import relay_sync.contrib.celery
        except ModuleNotFoundError as error:
            print("contrib:", error)
        print(len(imported), "modules imported")
        """
    )

    assert result.returncode == 0, result.stderr
    assert "contrib: relay_sync.contrib.celery needs Celery: pip install 'celery>=5.3'" in result.stdout
    imported = int(result.stdout.split()[-3])
    assert imported > 40  # the package, the testing emulator and contrib, not a near-empty walk
