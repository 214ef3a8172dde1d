"""relay_sync.contrib.prometheus with the real prometheus_client: a /metrics
endpoint served on 127.0.0.1 is scraped while the emulator runs calls, and
what it shows agrees with client.stats(). The core never imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from relay_sync import RelayClient
from relay_sync.contrib.prometheus import register
from relay_sync.testing import RelayEmulator

MakeClient = Callable[..., RelayClient]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PACKAGE = Path(__file__).resolve().parent.parent / "relay_sync"
OFFICE = {"client": "office"}
PHONES = [f"+1555000010{n}" for n in range(4)]


@pytest.fixture
def server() -> Iterator[RelayEmulator]:
    with RelayEmulator(time_factor=0.01) as emulator:
        yield emulator


@pytest.fixture
def metrics_endpoint() -> Iterator[tuple[CollectorRegistry, Callable[[], Samples]]]:
    """A registry of our own, served over real HTTP by prometheus_client; and a scraper."""
    registry = CollectorRegistry()
    httpd, thread = start_http_server(0, addr="127.0.0.1", registry=registry)

    def scrape() -> Samples:
        url = f"http://127.0.0.1:{httpd.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.status == 200
            text = reply.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    yield registry, scrape
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset({**OFFICE, **labels}.items()))]


def test_a_scrape_while_calls_run_shows_the_client(
    server: RelayEmulator, make_client: MakeClient, metrics_endpoint: Any
) -> None:
    registry, scrape = metrics_endpoint
    client = make_client(ping_interval=60)  # no keepalive pings between the last scrape and stats()
    register(client, registry, labels=OFFICE)
    for number in PHONES:
        server.phone(number)

    def dial(number: str) -> Any:
        device = {"type": "phone", "params": {"to_number": number, "from_number": "+15550001000"}}
        call = client.dial([[device]], dial_timeout=30)
        call.play([{"type": "tts", "params": {"text": "metrics"}}]).wait(timeout=30)
        return call

    with ThreadPoolExecutor(max_workers=len(PHONES)) as pool:
        calls = list(pool.map(dial, PHONES))
    during = scrape()  # every call answered and still up
    assert value(during, "relay_active_calls") == len(PHONES)
    assert value(during, "relay_up") == 1
    assert value(during, "relay_connection_state", state="connected") == 1
    assert value(during, "relay_connection_state", state="reconnecting") == 0
    assert value(during, "relay_requests_sent_total") >= 2 * len(PHONES)  # each dial and play

    for call in calls:
        call.hangup()
        call.wait_for_ended(timeout=10)
    after = scrape()
    stats = client.stats()
    assert value(after, "relay_active_calls") == stats["active_calls"] == 0
    for key in ("connects", "reconnects", "requests_sent", "requests_failed", "requests_timed_out", "calls_passed"):
        assert value(after, f"relay_{key}_total") == stats[key], key
    assert value(after, "relay_requests_sent_total") > value(during, "relay_requests_sent_total")
    latency = stats["request_latency"]
    assert value(after, "relay_request_latency_seconds_count") == latency["count"] > 0
    assert value(after, "relay_request_latency_seconds_sum") == pytest.approx(latency["sum"])
    assert value(after, "relay_request_latency_seconds_bucket", le="+Inf") == latency["count"]
    counts = [value(after, "relay_request_latency_seconds_bucket", le=repr(float(le))) for le, _ in latency["buckets"]]
    assert counts == sorted(counts) and counts[-1] <= latency["count"]
    assert value(after, "relay_last_rtt_seconds") == pytest.approx(stats["last_rtt_ms"] / 1000)


def test_a_closed_client_reports_down(server: RelayEmulator, make_client: MakeClient, metrics_endpoint: Any) -> None:
    registry, scrape = metrics_endpoint
    client = make_client()
    register(client, registry, labels=OFFICE)
    assert value(scrape(), "relay_up") == 1
    client.disconnect()
    closed = scrape()
    assert value(closed, "relay_up") == 0
    assert value(closed, "relay_connection_state", state="closed") == 1


def test_two_clients_share_one_collector_under_their_own_labels(
    server: RelayEmulator, make_client: MakeClient, metrics_endpoint: Any
) -> None:
    registry, scrape = metrics_endpoint
    office, sales = make_client(), make_client(connect=False)
    collector = register(office, registry, labels=OFFICE)
    collector.add(sales, labels={"client": "sales"})
    with pytest.raises(ValueError, match="labels"):
        collector.add(sales, labels={"team": "x"})
    samples = scrape()
    assert value(samples, "relay_up") == 1
    assert samples[("relay_up", frozenset({"client": "sales"}.items()))] == 0
    assert samples[("relay_connection_state", frozenset({"client": "sales", "state": "disconnected"}.items()))] == 1


def test_the_core_never_imports_the_integration() -> None:
    # A fresh interpreter: importing and using relay_sync loads neither the contrib module nor prometheus_client.
    code = (
        "import sys, relay_sync, relay_sync.testing\n"
        "relay_sync.RelayClient(project='p', token='t').stats()\n"
        "loaded = [m for m in sys.modules if m.startswith(('prometheus_client', 'relay_sync.contrib'))]\n"
        "assert loaded == [], loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    # And no module outside relay_sync/contrib names it in an import.
    for path in PACKAGE.rglob("*.py"):
        if "contrib" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            else:
                continue
            assert not any("prometheus" in name or "contrib" in name for name in imported), path
