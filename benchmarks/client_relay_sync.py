"""The six workloads driven through relay_sync, the way a user would write them."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (
    CONTEXT,
    FROM_NUMBER,
    MESSAGE_WAIT,
    PLAY_MEDIA,
    PROJECT,
    TO_NUMBER,
    TOKEN,
    WAIT,
    cpu_seconds,
    latency_summary,
    parse_args,
    proc_status,
    report,
    wait_threads_settle,
)

from relay_sync import Call, ConnectionLostError, RelayClient


def make_client(port: int) -> RelayClient:
    return RelayClient(project=PROJECT, token=TOKEN, host=f"127.0.0.1:{port}", scheme="ws", contexts=[CONTEXT])


def one_call(client: RelayClient) -> Call:
    calls: queue.SimpleQueue[Call] = queue.SimpleQueue()
    client.on_call(calls.put)
    client.execute("bench.call", {})
    return calls.get(timeout=WAIT)


def rpc(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    call = one_call(client)
    commands: list[Callable[[], object]] = [call.hold, call.unhold]
    for i in range(params["warmup"]):
        commands[i % 2]()
    latencies = []
    clock = time.perf_counter
    for i in range(params["count"]):
        start = clock()
        commands[i % 2]()
        latencies.append(clock() - start)
    return latency_summary(latencies)


def events(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    call = one_call(client)
    seen = 0
    target = 0
    reached = threading.Event()

    def listener(event: object) -> None:
        nonlocal seen
        seen += 1
        if seen == target:
            reached.set()

    call.on("calling.call.play", listener)

    def flood(count: int) -> float:
        nonlocal target
        target += count
        reached.clear()
        start = time.perf_counter()
        client.execute("bench.events", {"call_id": call.call_id, "count": count})
        if not reached.wait(WAIT):
            raise TimeoutError(f"the listener saw {seen} of {target} events")
        return time.perf_counter() - start

    flood(params["warmup"])
    elapsed = flood(params["count"])
    return {"events_per_s": params["count"] / elapsed}


def storm(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    """Two bursts: cold (the first after connect) and warm (right after, handler workers still alive)."""
    count = params["count"]
    lock = threading.Lock()
    ended = 0
    all_ended = threading.Event()

    @client.on_call
    def handle(call: Call) -> None:
        nonlocal ended
        call.answer()
        call.play(PLAY_MEDIA).wait(WAIT)
        call.hangup()
        call.wait_for_ended(WAIT)
        with lock:
            ended += 1
            if ended == count:
                all_ended.set()

    def burst() -> float:
        nonlocal ended
        ended = 0
        all_ended.clear()
        start = time.perf_counter()
        client.execute("bench.storm", {"count": count})
        if not all_ended.wait(WAIT):
            raise TimeoutError(f"{ended} of {count} calls ended")
        return time.perf_counter() - start

    baseline = proc_status()["Threads"]
    cold = burst()
    warm = burst()
    last_call_ended = time.monotonic()
    status = proc_status()
    after, settle = wait_threads_settle(baseline, params["settle_bound"])
    result = {
        "wall_s": cold,
        "warm_wall_s": warm,
        "peak_rss_kb": status["VmHWM"],
        "threads_baseline": baseline,
        "threads_after": after,
        "settle_s": settle,
    }
    if params.get("idle_window"):
        # Idle cost after a storm: from 10 s after the last call ended, over idle_window seconds.
        time.sleep(max(0.0, last_call_ended + 10.0 - time.monotonic()))
        before, start = cpu_seconds(), time.monotonic()
        time.sleep(params["idle_window"])
        result["idle_after_storm_pct"] = 100 * (cpu_seconds() - before) / (time.monotonic() - start)
    return result


def messaging(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    senders, per_sender = params["senders"], params["count"] // params["senders"]
    client.execute("bench.message_gap", {"ms": params["state_ms"]})
    go = threading.Event()
    failures: list[BaseException] = []

    def sender() -> None:
        go.wait()
        try:
            for _ in range(per_sender):
                message = client.send_message(to_number=TO_NUMBER, from_number=FROM_NUMBER, body="benchmark")
                message.wait(MESSAGE_WAIT)
        except Exception as error:  # noqa: BLE001 - reported below, after the other senders
            failures.append(error)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if failures:
        raise failures[0]
    return {"wall_s": wall}


def reconnect(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    recoveries = []
    for _ in range(params["drops"]):
        try:
            client.execute("bench.drop", {})
        except ConnectionLostError:
            pass
        start = time.perf_counter()
        client.execute("bench.echo", {}, timeout=WAIT)
        recoveries.append(time.perf_counter() - start)
    return {"recoveries_s": recoveries}


def idle(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    before, start = cpu_seconds(), time.monotonic()
    time.sleep(params["window"])
    return {"cpu_s": cpu_seconds() - before, "window_s": time.monotonic() - start}


WORKLOADS = {"rpc": rpc, "events": events, "storm": storm, "messaging": messaging, "reconnect": reconnect, "idle": idle}


def main() -> None:
    port, workload, params = parse_args()
    client = make_client(port)
    client.connect()
    try:
        report(WORKLOADS[workload](client, params))
    finally:
        client.disconnect()


if __name__ == "__main__":
    main()
