"""Request round-trip times in fixed buckets, for ``RelayClient.stats()`` and
the Prometheus collector (``relay_sync.contrib.prometheus``).

The histogram is updated by the I/O thread as responses arrive, under the
lock of the pending-request table that owns it; it is a few integers, so
``stats()`` can copy it from any thread at any rate.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

# Upper bounds in seconds (Prometheus' default buckets). A RELAY request answers
# in tens of milliseconds on a healthy link; seconds mean trouble.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class LatencyHistogram:
    """Counts of observed latencies per bucket, their sum and the latest one.

    Not locked itself: its owner updates and copies it under its own lock.
    """

    __slots__ = ("_counts", "count", "last", "total")

    def __init__(self) -> None:
        self._counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last slot: above every bound
        self.count = 0
        self.total = 0.0
        self.last: float | None = None

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds
        self.last = seconds

    def snapshot(self) -> dict[str, Any]:
        """``{"buckets": [(upper_bound, cumulative_count), ...], "count": n, "sum": seconds}``.
        Only finite bounds are listed (the result stays valid JSON): ``count`` is
        the cumulative count of the implicit ``+Inf`` bucket."""
        cumulative = []
        running = 0
        for bound, in_bucket in zip(LATENCY_BUCKETS, self._counts):
            running += in_bucket
            cumulative.append((bound, running))
        return {"buckets": cumulative, "count": self.count, "sum": self.total}
