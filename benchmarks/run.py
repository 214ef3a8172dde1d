"""relay_sync against SignalWire's async SDK and the raw websocket-client floor.

    python benchmarks/run.py [--quick] [--json out.json]

Starts the benchmark RELAY server (``bench_server.py``) in its own process on
127.0.0.1, then runs each workload once per contender per round, every run
in a fresh client process (so peak RSS and thread counts are that run's own),
rotating the contenders' order from round to round. Prints the medians, the
ratios and whether each target (issues 7 and 15) holds. The async SDK takes part
when ``signalwire-sdk`` is installed (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CLIENTS = {"relay_sync": "client_relay_sync.py", "async_sdk": "client_async_sdk.py", "raw": "client_raw.py"}
LABELS = {"relay_sync": "relay_sync", "async_sdk": "async SDK", "raw": "raw floor"}

# relay_sync's default max_active_calls, for the thread-count target.
MAX_ACTIVE_CALLS = 1000
# Threads relay_sync may run beyond one per active call: main, I/O, timer and the pool's headroom.
THREAD_ALLOWANCE = 8

FULL: dict[str, Any] = {
    "rounds": 5,
    "rpc": {"warmup": 200, "count": 2000},
    "events": {"warmup": 2000, "count": 20000},
    "storm": {"count": 300, "settle_bound": 0.0},
    "messaging_2ms": {"count": 1000, "senders": 50, "state_ms": 2.0},
    "messaging_20ms": {"count": 1000, "senders": 50, "state_ms": 20.0},
    "reconnect": {"drops": 5},
    "idle": {"window": 30.0},
    # The storm round that also waits for the handler threads to retire, then
    # measures relay_sync's idle CPU from 10 s after the storm's last call.
    "settle_bound": 15.0,
    "idle_after_storm": 5.0,
}
QUICK: dict[str, Any] = {
    "rounds": 1,
    "rpc": {"warmup": 100, "count": 1000},
    "events": {"warmup": 1000, "count": 10000},
    "storm": {"count": 300, "settle_bound": 0.0},
    "messaging_2ms": {"count": 500, "senders": 50, "state_ms": 2.0},
    "messaging_20ms": {"count": 500, "senders": 50, "state_ms": 20.0},
    "reconnect": {"drops": 3},
    "idle": {"window": 5.0},
    "settle_bound": 15.0,
    "idle_after_storm": 2.0,
}
TIMED_WORKLOADS = ("rpc", "events", "storm", "messaging_2ms", "messaging_20ms")
WORKLOADS = (*TIMED_WORKLOADS, "reconnect", "idle")
# The client-side workload each one runs (the messaging variants differ only in the server's pace).
CLIENT_WORKLOAD = {"messaging_2ms": "messaging", "messaging_20ms": "messaging"}


# -- processes -----------------------------------------------------------------


class BenchServer:
    """bench_server.py in its own process; it exits when our pipe to it closes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "bench_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.process.kill()
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])

    def cpu_seconds(self) -> float:
        return _process_cpu(self.process.pid)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass  # the process just ended
    return 0


def start_client(
    contender: str, port: int, workload: str, params: dict[str, Any]
) -> tuple[subprocess.Popen[bytes], Any]:
    output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish_client
    command = [
        sys.executable,
        os.path.join(HERE, CLIENTS[contender]),
        "--port",
        str(port),
        "--workload",
        CLIENT_WORKLOAD.get(workload, workload),
    ]
    process = subprocess.Popen([*command, "--params", json.dumps(params)], stdout=output, stderr=subprocess.STDOUT)
    return process, output


def finish_client(process: subprocess.Popen[bytes], output: Any, timeout: float, watch_threads: bool) -> dict[str, Any]:
    """Wait for a client (sampling its thread count when asked); its RESULT line, or an error."""
    peak_threads = 0
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            return {"error": f"no result within {timeout:.0f} s"}
        if watch_threads:
            peak_threads = max(peak_threads, _threads_of(process.pid))
            time.sleep(0.002)
        else:
            try:
                process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
    output.seek(0)
    text = output.read().decode(errors="replace")
    output.close()
    for line in text.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            if watch_threads:
                result["peak_threads"] = peak_threads
            return result
    return {"error": text.strip().splitlines()[-1] if text.strip() else f"exit code {process.returncode}"}


def run_client(
    server: BenchServer, contender: str, workload: str, params: dict[str, Any], timeout: float = 120.0
) -> dict[str, Any]:
    cpu_before = server.cpu_seconds()
    process, output = start_client(contender, server.port, workload, params)
    result = finish_client(process, output, timeout, watch_threads=workload == "storm")
    result["server_cpu_s"] = server.cpu_seconds() - cpu_before
    return result


# -- the run -----------------------------------------------------------------------


def contenders() -> list[str]:
    names = ["relay_sync", "raw"]
    if importlib.util.find_spec("signalwire") is not None and importlib.util.find_spec("signalwire.relay") is not None:
        names.insert(1, "async_sdk")
    return names


def run_all(
    sizes: dict[str, Any], names: list[str], workloads: list[str], log: Callable[[str], None]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {c: [] for c in names} for w in (*TIMED_WORKLOADS, "reconnect", "idle")
    }
    server = BenchServer()
    try:
        for round_number in range(sizes["rounds"]):
            order = names[round_number % len(names) :] + names[: round_number % len(names)]
            for workload in (w for w in TIMED_WORKLOADS if w in workloads):
                params = dict(sizes[workload])
                if workload == "storm" and round_number == 0:
                    params["settle_bound"] = sizes["settle_bound"]
                    params["idle_window"] = sizes["idle_after_storm"]
                for contender in order:
                    result = run_client(server, contender, workload, params)
                    runs[workload][contender].append(result)
                    log(f"round {round_number + 1} {workload:<14} {LABELS[contender]:<10} {_brief(result)}")
        for contender in names if "reconnect" in workloads else ():
            result = run_client(server, contender, "reconnect", sizes["reconnect"])
            runs["reconnect"][contender].append(result)
            log(f"reconnect {LABELS[contender]:<10} {_brief(result)}")
        # Idle clients barely run, so they share one window instead of taking turns.
        started = [(c, *start_client(c, server.port, "idle", sizes["idle"])) for c in names if "idle" in workloads]
        for contender, process, output in started:
            result = finish_client(process, output, sizes["idle"]["window"] + 60, watch_threads=False)
            runs["idle"][contender].append(result)
            log(f"idle      {LABELS[contender]:<10} {_brief(result)}")
    finally:
        server.stop()
    return runs


def _brief(result: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in result.items() if not isinstance(v, list))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# -- the summary ---------------------------------------------------------------------


@dataclass
class Metric:
    key: str
    label: str
    unit: str
    lower_is_better: bool
    pick: Callable[[dict[str, Any]], float]


METRICS = [
    Metric("rpc_p50", "RPC round trip p50", "us", True, lambda r: r["p50_us"]),
    Metric("rpc_p99", "RPC round trip p99", "us", True, lambda r: r["p99_us"]),
    Metric("events", "Event dispatch", "events/s", False, lambda r: r["events_per_s"]),
    Metric("storm_wall", "Inbound storm cold wall time", "s", True, lambda r: r["wall_s"]),
    Metric("storm_warm", "Inbound storm warm wall time", "s", True, lambda r: r["warm_wall_s"]),
    Metric("storm_rss", "Inbound storm peak RSS", "MB", True, lambda r: r["peak_rss_kb"] / 1024),
    Metric("storm_threads", "Inbound storm peak threads", "", True, lambda r: r["peak_threads"]),
    Metric("messaging_2ms", "Messaging wall time, 2 ms states", "s", True, lambda r: r["wall_s"]),
    Metric("messaging_20ms", "Messaging wall time, 20 ms states", "s", True, lambda r: r["wall_s"]),
    Metric(
        "reconnect", "Reconnect recovery (median of drops)", "s", True, lambda r: statistics.median(r["recoveries_s"])
    ),
    Metric("idle", "Idle CPU", "% of a core", True, lambda r: 100 * r["cpu_s"] / r["window_s"]),
]
WORKLOAD_OF = {
    "rpc_p50": "rpc",
    "rpc_p99": "rpc",
    "events": "events",
    "storm_wall": "storm",
    "storm_warm": "storm",
    "storm_rss": "storm",
    "storm_threads": "storm",
    "messaging_2ms": "messaging_2ms",
    "messaging_20ms": "messaging_20ms",
    "reconnect": "reconnect",
    "idle": "idle",
}


def summarise(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    medians: dict[str, dict[str, float | None]] = {}
    for metric in METRICS:
        medians[metric.key] = {}
        for contender, results in runs[WORKLOAD_OF[metric.key]].items():
            values = [metric.pick(r) for r in results if "error" not in r]
            medians[metric.key][contender] = statistics.median(values) if values else None
    # Round 1's relay_sync storm run waited for its handler threads to retire.
    first_storm = runs["storm"].get("relay_sync", [])[:1]
    settled = first_storm[0] if first_storm and "error" not in first_storm[0] else None
    return {"medians": medians, "targets": check_targets(medians, settled), "errors": _errors(runs)}


def _errors(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    return [
        f"{workload} {LABELS[contender]}: {r['error']}"
        for workload, by_contender in runs.items()
        for contender, results in by_contender.items()
        for r in results
        if "error" in r
    ]


def _ratio(medians: dict[str, dict[str, float | None]], key: str, other: str) -> float | None:
    ours, theirs = medians[key].get("relay_sync"), medians[key].get(other)
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def check_targets(medians: dict[str, dict[str, float | None]], settled: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Issues 7 and 15's targets: (what, measured, goal, holds)."""
    targets: list[dict[str, Any]] = []

    def ratio_target(what: str, key: str, other: str, goal: float, at_most: bool = True) -> None:
        value = _ratio(medians, key, other)
        holds = None if value is None else (value <= goal if at_most else value >= goal)
        targets.append(
            {"target": what, "measured": value, "goal": f"{'<=' if at_most else '>='} {goal:g}x", "holds": holds}
        )

    ratio_target("RPC p50 vs async SDK", "rpc_p50", "async_sdk", 1.0)
    ratio_target("RPC p50 vs raw floor", "rpc_p50", "raw", 1.3)
    ratio_target("RPC p99 vs async SDK", "rpc_p99", "async_sdk", 1.2)
    ratio_target("Events/s vs async SDK", "events", "async_sdk", 1.2, at_most=False)
    ratio_target("Storm cold wall time vs async SDK", "storm_wall", "async_sdk", 1.0)
    ratio_target("Storm warm wall time vs async SDK", "storm_warm", "async_sdk", 0.8)
    ratio_target("Storm peak RSS vs async SDK", "storm_rss", "async_sdk", 1.5)
    ratio_target("Messaging (2 ms states) vs async SDK", "messaging_2ms", "async_sdk", 1.0)
    ratio_target("Messaging (20 ms states) vs async SDK", "messaging_20ms", "async_sdk", 1.0)

    peak = medians["storm_threads"].get("relay_sync")
    targets.append(
        {
            "target": "Storm peak threads <= max_active_calls + small constant",
            "measured": peak,
            "goal": f"<= {MAX_ACTIVE_CALLS + THREAD_ALLOWANCE}",
            "holds": None if peak is None else peak <= MAX_ACTIVE_CALLS + THREAD_ALLOWANCE,
        }
    )
    if settled is not None:
        targets.append(
            {
                "target": "Threads back to the baseline after the storm",
                "measured": f"{settled['threads_after']} (baseline {settled['threads_baseline']}, after {settled['settle_s']:.1f} s)",
                "goal": "== baseline within 10 s",
                "holds": settled["threads_after"] <= settled["threads_baseline"] and settled["settle_s"] <= 10.0,
            }
        )
        idle_after = settled.get("idle_after_storm_pct")
        targets.append(
            {
                "target": "Idle CPU from 10 s after the storm",
                "measured": idle_after,
                "goal": "<= 0.5 % of a core",
                "holds": None if idle_after is None else idle_after <= 0.5,
            }
        )
    recovery = medians["reconnect"].get("relay_sync")
    targets.append(
        {
            "target": "Reconnect recovery (median)",
            "measured": recovery,
            "goal": "<= 0.5 s",
            "holds": None if recovery is None else recovery <= 0.5,
        }
    )
    idle = medians["idle"].get("relay_sync")
    targets.append(
        {
            "target": "Idle CPU",
            "measured": idle,
            "goal": "<= 0.5 % of a core",
            "holds": None if idle is None else idle <= 0.5,
        }
    )
    return targets


def format_table(summary: dict[str, Any], names: list[str]) -> str:
    medians = summary["medians"]
    others = [n for n in names if n != "relay_sync"]
    header = ["Workload", "Unit", *(LABELS[n] for n in names), *(f"vs {LABELS[n]}" for n in others)]
    rows = [header]
    for metric in METRICS:
        values = medians[metric.key]
        row = [metric.label, metric.unit]
        row += [_number(values.get(n)) for n in names]
        row += [_times(_ratio(medians, metric.key, n)) for n in others]
        rows.append(row)
    lines = [
        _table(rows),
        "",
        _table(
            [["Target", "Measured", "Goal", "Holds"]]
            + [
                [
                    t["target"],
                    _times(t["measured"])
                    if isinstance(t["measured"], float) and "vs" in t["target"]
                    else _number(t["measured"])
                    if not isinstance(t["measured"], str)
                    else t["measured"],
                    t["goal"],
                    {True: "yes", False: "NO", None: "n/a"}[t["holds"]],
                ]
                for t in summary["targets"]
            ]
        ),
    ]
    if summary["errors"]:
        lines += ["", "Errors:"] + [f"  {e}" for e in summary["errors"]]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "+".join("-" * (w + 2) for w in widths)
    out = []
    for index, row in enumerate(rows):
        out.append(
            " | ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        )
        if index == 0:
            out.append(rule)
    return "\n".join(out)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None
            )
    except OSError:
        pass
    for package in ("websocket-client", "signalwire-sdk", "websockets"):
        try:
            from importlib.metadata import version

            info[package] = version(package)
        except Exception:  # noqa: BLE001 - not installed
            info[package] = None
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="one round, smaller workloads, a 5 s idle window (about a minute)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every run, the medians and the targets here")
    parser.add_argument("--verbose", action="store_true", help="print each run as it finishes")
    parser.add_argument("--workloads", help=f"a comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--contenders", help=f"a comma-separated subset of {','.join(CLIENTS)}")
    parser.add_argument("--rounds", type=int, help="rounds of the timed workloads (default: 5, 1 with --quick)")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    if args.rounds:
        sizes["rounds"] = args.rounds
    workloads = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    names = [n for n in contenders() if not args.contenders or n in args.contenders.split(",")]
    if "async_sdk" not in contenders():
        print(
            "signalwire-sdk is not installed: comparing with the raw floor only (pip install -e .[bench])",
            file=sys.stderr,
        )
    started = time.monotonic()
    runs = run_all(
        sizes,
        names,
        workloads,
        (lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else (lambda line: None),
    )
    summary = summarise(runs)
    info = machine()
    print(
        f"{info.get('cpu')} ({info['cpus']} cores), Python {info['python']}; "
        f"{'quick' if args.quick else 'full'} run, medians of {sizes['rounds']} round(s), {time.monotonic() - started:.0f} s"
    )
    print(format_table(summary, names))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": info, "sizes": sizes, "runs": runs, **summary}, out, indent=2)


if __name__ == "__main__":
    main()
