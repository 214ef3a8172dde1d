"""What the three benchmark clients share: the command line ``run.py`` starts
them with, how they report, and readings of their own process."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

# Nothing in a workload may take longer than this (seconds): a stuck client fails, it never hangs the run.
WAIT = 60.0
# A message's delivery comes three state gaps (bench_server.py) after it was accepted: one still
# undelivered after this long was lost (the async SDK drops state events that overtake its
# own bookkeeping when it lags behind the socket).
MESSAGE_WAIT = 10.0

PROJECT = "bench"
TOKEN = "bench"
CONTEXT = "bench"
PLAY_MEDIA = [{"type": "silence", "params": {"duration": 0.005}}]
FROM_NUMBER = "+15550001111"
TO_NUMBER = "+15550002222"


def parse_args() -> tuple[int, str, dict[str, Any]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--params", default="{}", help="the workload's sizes, as JSON")
    args = parser.parse_args()
    return args.port, args.workload, json.loads(args.params)


def report(result: dict[str, Any]) -> None:
    """The one line run.py reads from a client's output."""
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def proc_status() -> dict[str, int]:
    """Threads, VmRSS and VmHWM (peak RSS) of this process, in kB where a size."""
    values: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("Threads", "VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(latencies: list[float]) -> dict[str, float]:
    return {"p50_us": percentile(latencies, 0.50) * 1e6, "p99_us": percentile(latencies, 0.99) * 1e6}


def wait_threads_settle(baseline: int, bound: float) -> tuple[int, float]:
    """Benchmark harness (not SDK code): poll this process's thread count until it
    is back to ``baseline`` or ``bound`` seconds passed; returns (threads, seconds)."""
    start = time.monotonic()
    while True:
        threads = proc_status()["Threads"]
        elapsed = time.monotonic() - start
        if threads <= baseline or elapsed >= bound:
            return threads, elapsed
        time.sleep(0.05)
