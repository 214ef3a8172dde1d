"""Prometheus metrics for a RelayClient, from its ``stats()`` (extra ``relay-sync[prometheus]``).

::

    from prometheus_client import start_http_server
    from relay_sync.contrib.prometheus import register

    client = RelayClient(contexts=["office"])
    register(client)            # on prometheus_client's default registry
    start_http_server(9108)     # or serve the registry from your web app
    client.run()

``register`` adds a collector that reads ``client.stats()`` and
``client.healthy()`` when Prometheus scrapes, so nothing is counted twice
and the client does no extra work between scrapes. It runs on the thread
serving the scrape; ``stats()`` is safe from any thread.

Metrics (with the ``relay`` prefix by default, and the constant ``labels``
given to ``register``):

========================================  =========  ==========================================
name                                      type       meaning
========================================  =========  ==========================================
``relay_up``                              gauge      1 while ``client.healthy()``, else 0
``relay_connection_state{state=...}``     gauge      1 for the current ``ConnectionState``
``relay_connects_total``                  counter    successful logins
``relay_reconnects_total``                counter    logins after a lost link
``relay_requests_sent_total``             counter    requests sent (or queued to send)
``relay_requests_failed_total``           counter    error answers and requests lost with the link
``relay_requests_timed_out_total``        counter    requests given up on without an answer
``relay_calls_passed_total``              counter    inbound calls handed back (``max_active_calls``)
``relay_requests_in_flight``              gauge      requests awaiting their answer
``relay_requests_backlog``                gauge      requests queued until the link is back
``relay_active_calls``                    gauge      calls the client holds
``relay_handlers_busy``                   gauge      handler threads running user code
``relay_handler_threads``                 gauge      handler threads alive
``relay_last_rtt_seconds``                gauge      the latest answer's round trip
``relay_request_latency_seconds``         histogram  every answer's round trip
========================================  =========  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "relay_sync.contrib.prometheus needs prometheus_client: pip install 'relay-sync[prometheus]'"
    ) from error

from ..lifecycle import ConnectionState

__all__ = ["RelayCollector", "register"]


class StatsSource(Protocol):
    """What the collector reads: a RelayClient (or anything with the same two methods)."""

    def stats(self) -> dict[str, Any]: ...

    def healthy(self) -> bool: ...


# stats() key -> (metric name without prefix, help text). Counters get "_total" from prometheus_client.
COUNTERS = {
    "connects": ("connects", "Successful RELAY logins."),
    "reconnects": ("reconnects", "RELAY logins after a lost link."),
    "requests_sent": ("requests_sent", "JSON-RPC requests sent, or queued to be sent after a reconnect."),
    "requests_failed": ("requests_failed", "Requests answered with an error or lost with the link."),
    "requests_timed_out": ("requests_timed_out", "Requests given up on without an answer."),
    "calls_passed": ("calls_passed", "Inbound calls handed back to routing because max_active_calls were busy."),
}
GAUGES = {
    "in_flight": ("requests_in_flight", "Requests on the wire awaiting their answer."),
    "backlog": ("requests_backlog", "Requests queued until the link is back."),
    "active_calls": ("active_calls", "Calls the client holds."),
    "handlers_busy": ("handlers_busy", "Handler threads running user code."),
    "handler_threads": ("handler_threads", "Handler threads alive."),
}


class RelayCollector(Collector):
    """A Prometheus collector reading clients' ``stats()`` at each scrape.

    One collector serves every client of a process: give each its own value of
    the same ``labels`` (``add(client, labels={"client": "sales"})``).
    """

    def __init__(
        self, client: StatsSource, *, namespace: str = "relay", labels: Mapping[str, str] | None = None
    ) -> None:
        self._prefix = f"{namespace}_" if namespace else ""
        self._label_names = list(labels or {})
        self._sources: list[tuple[StatsSource, list[str]]] = []
        self.add(client, labels=labels)

    def add(self, client: StatsSource, *, labels: Mapping[str, str] | None = None) -> None:
        """Report another client too, under its own values of the same label names."""
        if list(labels or {}) != self._label_names:
            raise ValueError(f"every client of one collector needs the labels {self._label_names}, not {labels!r}")
        values = [str(value) for value in (labels or {}).values()]
        if any(existing == values for _, existing in self._sources):
            raise ValueError(f"a client with the labels {labels!r} is already reported")
        self._sources.append((client, values))

    def describe(self) -> list[Metric]:
        # The names alone, so that registering checks them without reading any client.
        return list(self._families([]))

    def collect(self) -> Iterator[Metric]:
        yield from self._families([(client.stats(), client.healthy(), values) for client, values in self._sources])

    def _families(self, readings: list[tuple[Mapping[str, Any], bool, list[str]]]) -> Iterator[Metric]:
        names, prefix = self._label_names, self._prefix

        up = GaugeMetricFamily(
            f"{prefix}up", "1 while the client is connected and hears from the server.", labels=names
        )
        for _, healthy, values in readings:
            up.add_metric(values, 1.0 if healthy else 0.0)
        yield up

        state = GaugeMetricFamily(
            f"{prefix}connection_state", "1 for the client's current connection state.", labels=[*names, "state"]
        )
        for stats, _, values in readings:
            for each in ConnectionState:
                state.add_metric([*values, each.value], 1.0 if stats["state"] == each else 0.0)
        yield state

        for key, (name, documentation) in COUNTERS.items():
            counter = CounterMetricFamily(f"{prefix}{name}", documentation, labels=names)
            for stats, _, values in readings:
                counter.add_metric(values, float(stats[key]))
            yield counter
        for key, (name, documentation) in GAUGES.items():
            gauge = GaugeMetricFamily(f"{prefix}{name}", documentation, labels=names)
            for stats, _, values in readings:
                gauge.add_metric(values, float(stats[key]))
            yield gauge

        rtt = GaugeMetricFamily(f"{prefix}last_rtt_seconds", "Round trip of the latest answered request.", labels=names)
        for stats, _, values in readings:
            if stats["last_rtt_ms"] is not None:  # no sample before the first answer
                rtt.add_metric(values, stats["last_rtt_ms"] / 1000)
        yield rtt

        histogram = HistogramMetricFamily(
            f"{prefix}request_latency_seconds", "Round trip of each answered request.", labels=names
        )
        for stats, _, values in readings:
            latency = stats["request_latency"]
            buckets = [(_bound(upper), float(count)) for upper, count in latency["buckets"]]
            buckets.append(("+Inf", float(latency["count"])))
            histogram.add_metric(values, buckets, float(latency["sum"]))
        yield histogram


def register(
    client: StatsSource,
    registry: CollectorRegistry = REGISTRY,
    *,
    namespace: str = "relay",
    labels: Mapping[str, str] | None = None,
) -> RelayCollector:
    """Register a :class:`RelayCollector` for ``client`` on ``registry`` (prometheus_client's
    default one unless given); returns it. More clients of the process join it with
    ``collector.add(other, labels=...)``; ``registry.unregister(collector)`` removes it."""
    collector = RelayCollector(client, namespace=namespace, labels=labels)
    registry.register(collector)
    return collector


def _bound(upper: float) -> str:
    """A bucket's ``le`` label as prometheus_client writes its own (``0.005``, ``1.0``)."""
    return repr(float(upper))
