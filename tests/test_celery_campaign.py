"""The Celery campaign example (examples/celery_campaign) on real parts: a
``redis-server`` on 127.0.0.1, ``relay-sync emulator`` in its own process with
scripted phones, a Celery worker with the prefork pool and three processes,
and ``producer.py``.

What happened is read from two independent records: the emulator's
transcript (each dial, with the client that made it and its tag) and the
campaign's report. Every number is called exactly once with the outcome its
phone was scripted for, and the calls are spread over the three worker
processes' sessions; then a worker process is killed mid-call and the
campaign still completes with no number lost or called twice.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import pytest

REDIS_SERVER = shutil.which("redis-server")

pytestmark = [
    pytest.mark.skipif(
        REDIS_SERVER is None,
        reason="redis-server is not installed (apt-get install redis-server); .ci/run installs it",
    ),
    pytest.mark.timeout(120),
]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "celery_campaign"
TIME_FACTOR = "0.1"  # the emulator's real seconds per simulated second: a number rings 20 s, so 2 s here
WAIT = 60.0  # seconds any one step may take on a slow, shared machine (each takes a few)
OUR_NUMBER = "+15550100"
TOKEN = "campaign-token"
LONG_MESSAGE = " ".join(["Hello from Acme, this is a long message about our spring sale."] * 9)  # ~4 s here

# Each number and the outcome its phone is scripted for. Those that ring longest
# come first: the first three tasks keep all three worker processes busy at once.
SCRIPT = {
    "+15550301": "no answer",
    "+15550302": "no answer",
    "+15550303": "no answer",
    "+15550304": "answered",
    "+15550305": "busy",
    "+15550306": "answered",
    "+15550307": "busy",
    "+15550308": "answered",
    "+15550309": "busy",
    "+15550310": "answered",
    "+15550311": "answered",
    "+15550312": "answered",
}
PHONE_BEHAVIOUR = {"busy": "busy", "no answer": "no-answer"}  # relay-sync emulator --phone NUMBER BEHAVIOUR


class Output:
    """A child process's output, read line by line on a thread of its own."""

    def __init__(self, name: str, stream: IO[str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        threading.Thread(target=self._read, args=(stream,), name=f"read-{name}", daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def matches(self, pattern: str) -> list[re.Match[str]]:
        with self._changed:
            return [m for m in map(re.compile(pattern).search, self.lines) if m]

    def wait_for(self, pattern: str, count: int = 1, timeout: float = WAIT) -> list[re.Match[str]]:
        """Block until ``count`` lines match ``pattern``; returns the matches."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.matches(pattern)) >= count or self._closed, timeout)
        found = self.matches(pattern)
        if len(found) < count:
            tail = "\n".join(self.lines[-60:])
            raise AssertionError(
                f"{self.name}: {len(found)} of {count} lines matching {pattern!r}; last lines:\n{tail}"
            )
        return found


class Child:
    """A process started for the test, its output merged and read as it comes; stopped at the end."""

    def __init__(self, name: str, command: list[str], **options: Any) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options
        )
        assert self.process.stdout is not None
        self.output = Output(name, self.process.stdout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=WAIT / 2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=WAIT / 2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load_ledger() -> ModuleType:
    """The example's ledger module, for the channel its changes are published on."""
    spec = importlib.util.spec_from_file_location("celery_campaign_ledger", EXAMPLE / "ledger.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on 127.0.0.1, in a directory of its own, keeping nothing on disk."""
    assert REDIS_SERVER is not None
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    server = Child(
        "redis-server",
        [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
         "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
    )  # fmt: skip
    try:
        server.output.wait_for("Ready to accept connections")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()


class Emulator:
    """``relay-sync emulator`` in its own process, phones scripted, transcript on its stdout."""

    def __init__(self) -> None:
        phones = [arg for number, outcome in SCRIPT.items() if outcome in PHONE_BEHAVIOUR
                  for arg in ("--phone", number, PHONE_BEHAVIOUR[outcome])]  # fmt: skip
        self.child = Child(
            "relay-sync emulator",
            [sys.executable, "-m", "relay_sync", "emulator", "--port", "0", "--project", "campaign",
             "--token", TOKEN, "--time-factor", TIME_FACTOR, "--transcript", *phones],
            env=clean_environment(),
        )  # fmt: skip
        exports = self.child.output.wait_for(r"^\s+export (SIGNALWIRE_\w+)=(\S+)$", count=3)
        self.environment = {match[1]: match[2] for match in exports}

    def dials(self, campaign: str, at_least: int = len(SCRIPT)) -> list[tuple[str, str]]:
        """(number, client) for each dial of the campaign, from the emulator's transcript
        (once ``at_least`` of its lines have been read: they come through a pipe)."""
        pattern = rf"app\s+dialing (\+\d+) for (client #\d+) \(tag {re.escape(campaign)}:\+\d+\)$"
        self.child.output.wait_for(pattern, count=at_least)
        return [(match[1], match[2]) for match in self.child.output.matches(pattern)]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    running = Emulator()
    try:
        yield running
    finally:
        running.child.stop()


def clean_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALWIRE_", "RELAY_", "CAMPAIGN_"))}
    environment.update(extra)
    return environment


@pytest.fixture
def campaign_environment(redis_url: str, emulator: Emulator) -> dict[str, str]:
    """What the worker and the producer run with: the emulator's credentials and the Redis URL."""
    return clean_environment(**emulator.environment, CAMPAIGN_REDIS_URL=redis_url)


@contextmanager
def celery_worker(environment: dict[str, str]) -> Iterator[Child]:
    """``celery worker`` with the prefork pool and 3 processes, each logged in to the emulator."""
    worker = Child(
        "celery worker",
        [sys.executable, "-m", "celery", "-A", "campaign", "worker", "--pool", "prefork", "--concurrency", "3",
         "--loglevel", "INFO", "--hostname", f"campaign-{uuid.uuid4().hex[:8]}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=EXAMPLE,
        env=environment,
    )  # fmt: skip
    try:
        worker.output.wait_for(r"worker process \d+ connected to RELAY", count=3)
        yield worker
    finally:
        worker.stop()


def producer_command(campaign: str, *options: str, numbers: tuple[str, ...] = tuple(SCRIPT)) -> list[str]:
    return [sys.executable, str(EXAMPLE / "producer.py"), "--campaign", campaign, "--from", OUR_NUMBER,
            "--json", "--timeout", str(WAIT), *options, *numbers]  # fmt: skip


def produce(environment: dict[str, str], campaign: str, *numbers: str) -> dict[str, dict[str, str]]:
    """Run producer.py to the end; its report."""
    produced = subprocess.run(
        producer_command(campaign, numbers=numbers), cwd=EXAMPLE, env=environment, capture_output=True, text=True,
        timeout=WAIT, check=False,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    return report_of(produced.stdout)


def report_of(stdout: str) -> dict[str, dict[str, str]]:
    """The producer's JSON report, as number -> that number's record."""
    report = json.loads(stdout.strip().splitlines()[-1])
    calls = report["calls"]
    assert Counter(call["outcome"] for call in calls) == Counter(report["outcomes"])
    return {call["number"]: call for call in calls}


def test_every_number_is_called_once_with_its_scripted_outcome_over_three_sessions(
    emulator: Emulator, redis_url: str, campaign_environment: dict[str, str]
) -> None:
    # A number whose call was claimed by a delivery that died while it rang (not in SCRIPT).
    lost_while_ringing = "+15550399"
    load_ledger().Ledger(redis_url).claim("spread", lost_while_ringing, worker="a worker process that died")

    with celery_worker(campaign_environment) as worker:
        report = produce(campaign_environment, "spread", *SCRIPT)
        again = produce(campaign_environment, "spread", *SCRIPT, lost_while_ringing)
    # Stopped, each worker process closed its session (worker_process_shutdown).
    worker.output.wait_for(r"worker process \d+ disconnected from RELAY", count=3)

    assert {number: call["outcome"] for number, call in report.items()} == SCRIPT
    assert all(call["message"] == "played" for call in report.values() if call["outcome"] == "answered")
    assert all(call["deliveries"] == "1" for call in report.values())
    assert len({call["session"] for call in report.values()}) == 3
    dials = emulator.dials("spread")
    assert sorted(number for number, _ in dials) == sorted(SCRIPT)  # each number once, and no other
    assert len({client for _, client in dials}) == 3
    # The same campaign again calls nobody: each task finds its number's record and reports it.
    assert {number: call["outcome"] for number, call in again.items()} == {**SCRIPT, lost_while_ringing: "unknown"}
    assert all(again[number]["deliveries"] == "2" for number in SCRIPT)
    assert sorted(number for number, _ in emulator.dials("spread")) == sorted(SCRIPT)


def test_a_worker_process_killed_mid_call_loses_no_number_and_calls_none_twice(
    emulator: Emulator, redis_url: str, campaign_environment: dict[str, str]
) -> None:
    import redis

    ledger = load_ledger()
    with redis.Redis.from_url(redis_url) as connection, connection.pubsub() as changes:
        changes.subscribe(ledger.channel("killed"))
        with celery_worker(campaign_environment) as worker:
            producer = Child(
                "producer", producer_command("killed", "--message", LONG_MESSAGE), cwd=EXAMPLE,
                env=campaign_environment,
            )  # fmt: skip
            try:
                victim = first_answered(changes)
                os.kill(int(victim["pid"]), signal.SIGKILL)  # mid-message: it plays for about 4 s
                assert producer.process.wait(timeout=WAIT) == 0, "\n".join(producer.output.lines)
            finally:
                producer.stop()
            worker.output.wait_for(rf"pid:{victim['pid']} exited with 'signal 9 \(SIGKILL\)'")
            # The pool replaced the dead process with one that logged in afresh.
            worker.output.wait_for(r"worker process \d+ connected to RELAY", count=4)

    report = report_of(producer.output.wait_for(r'^\{"campaign"')[0].string)
    assert {number: call["outcome"] for number, call in report.items()} == SCRIPT  # none lost
    assert sorted(number for number, _ in emulator.dials("killed")) == sorted(SCRIPT)  # none called twice
    # The killed task ran again, found its number's record and reported it without dialing.
    assert [number for number, call in report.items() if call["deliveries"] != "1"] == [victim["number"]]
    assert report[victim["number"]]["deliveries"] == "2"
    assert report[victim["number"]]["pid"] == victim["pid"]


def first_answered(changes: Any) -> dict[str, str]:
    """The first record published with the outcome ``answered``: a call whose message is playing."""
    deadline = time.monotonic() + WAIT
    while (remaining := deadline - time.monotonic()) > 0:
        change = changes.get_message(ignore_subscribe_messages=True, timeout=remaining)
        if change is not None:
            record: dict[str, str] = json.loads(change["data"])
            if record.get("outcome") == "answered":
                return record
    raise AssertionError(f"no call was answered within {WAIT} s")
