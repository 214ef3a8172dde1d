"""The six workloads driven through SignalWire's async SDK (``signalwire-sdk``,
module ``signalwire.relay``), installed with the ``bench`` extra; nothing of it
is copied here, only called.

That SDK always dials ``wss://``; for the loopback benchmark server the
``websockets`` module it calls is wrapped so the same connect goes to
``ws://`` (everything else it does is untouched).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from types import SimpleNamespace
from typing import Any

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import signalwire.relay.client as sdk_client
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
)
from signalwire.relay import RelayClient
from signalwire.relay.client import RelayError


def _plain_ws_connect(uri: str, **options: Any) -> Any:
    return websockets.connect(uri.replace("wss://", "ws://", 1), **options)


sdk_client.websockets = SimpleNamespace(connect=_plain_ws_connect, exceptions=websockets.exceptions)  # type: ignore[attr-defined]


def make_client(port: int) -> RelayClient:
    return RelayClient(project=PROJECT, token=TOKEN, host=f"127.0.0.1:{port}", contexts=[CONTEXT])


async def one_call(client: RelayClient) -> Any:
    calls: asyncio.Queue[Any] = asyncio.Queue()

    async def on_call(call: Any) -> None:
        await calls.put(call)

    client.on_call(on_call)
    await client.execute("bench.call", {})
    return await asyncio.wait_for(calls.get(), WAIT)


async def rpc(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    call = await one_call(client)
    commands = [call.hold, call.unhold]
    for i in range(params["warmup"]):
        await commands[i % 2]()
    latencies = []
    clock = time.perf_counter
    for i in range(params["count"]):
        start = clock()
        await commands[i % 2]()
        latencies.append(clock() - start)
    return latency_summary(latencies)


async def events(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    call = await one_call(client)
    seen = 0
    target = 0
    reached = asyncio.Event()

    def listener(event: object) -> None:
        nonlocal seen
        seen += 1
        if seen == target:
            reached.set()

    call.on("calling.call.play", listener)

    async def flood(count: int) -> float:
        nonlocal target
        target += count
        reached.clear()
        start = time.perf_counter()
        await client.execute("bench.events", {"call_id": call.call_id, "count": count})
        await asyncio.wait_for(reached.wait(), WAIT)
        return time.perf_counter() - start

    await flood(params["warmup"])
    elapsed = await flood(params["count"])
    return {"events_per_s": params["count"] / elapsed}


async def storm(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    """Two bursts: cold (the first after connect) and warm (right after)."""
    count = params["count"]
    ended = 0
    all_ended = asyncio.Event()

    @client.on_call
    async def handle(call: Any) -> None:
        nonlocal ended
        await call.answer()
        action = await call.play(PLAY_MEDIA)
        await action.wait(WAIT)
        await call.hangup()
        await call.wait_for_ended(WAIT)
        ended += 1
        if ended == count:
            all_ended.set()

    async def burst() -> float:
        nonlocal ended
        ended = 0
        all_ended.clear()
        start = time.perf_counter()
        await client.execute("bench.storm", {"count": count})
        await asyncio.wait_for(all_ended.wait(), WAIT)
        return time.perf_counter() - start

    baseline = proc_status()["Threads"]
    cold = await burst()
    warm = await burst()
    status = proc_status()
    return {
        "wall_s": cold,
        "warm_wall_s": warm,
        "peak_rss_kb": status["VmHWM"],
        "threads_baseline": baseline,
        "threads_after": status["Threads"],
        "settle_s": 0.0,
    }


async def messaging(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    senders, per_sender = params["senders"], params["count"] // params["senders"]
    await client.execute("bench.message_gap", {"ms": params["state_ms"]})

    async def sender() -> None:
        for _ in range(per_sender):
            message = await client.send_message(to_number=TO_NUMBER, from_number=FROM_NUMBER, body="benchmark")
            await message.wait(MESSAGE_WAIT)

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return {"wall_s": time.perf_counter() - start}


async def reconnect(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    recoveries = []
    for _ in range(params["drops"]):
        try:
            await client.execute("bench.drop", {})
        except RelayError:
            pass
        start = time.perf_counter()
        await asyncio.wait_for(client.execute("bench.echo", {}), WAIT)
        recoveries.append(time.perf_counter() - start)
    return {"recoveries_s": recoveries}


async def idle(client: RelayClient, params: dict[str, Any]) -> dict[str, Any]:
    before, start = cpu_seconds(), time.monotonic()
    await asyncio.sleep(params["window"])
    return {"cpu_s": cpu_seconds() - before, "window_s": time.monotonic() - start}


WORKLOADS = {"rpc": rpc, "events": events, "storm": storm, "messaging": messaging, "reconnect": reconnect, "idle": idle}


async def run(port: int, workload: str, params: dict[str, Any]) -> dict[str, Any]:
    client = make_client(port)
    if workload == "reconnect":
        # Reconnecting lives in the SDK's run loop (RelayClient.run), not in connect().
        forever = asyncio.ensure_future(client._run_forever())
        await asyncio.wait_for(client.execute("bench.echo", {}), WAIT)  # queued until the first login
        try:
            return await reconnect(client, params)
        finally:
            await client._shutdown()
            await forever
    await client.connect()
    try:
        return await WORKLOADS[workload](client, params)
    finally:
        await client.disconnect()


def main() -> None:
    port, workload, params = parse_args()
    report(asyncio.run(run(port, workload, params)))


if __name__ == "__main__":
    main()
