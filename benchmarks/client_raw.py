"""The raw floor: websocket-client (``skip_utf8_validation=True``) sending the
same frames as the SDKs, in one thread, with no SDK logic: json in and out,
an ACK for every server request, and per-workload bookkeeping in plain dicts."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any

import websocket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (
    CONTEXT,
    FROM_NUMBER,
    PLAY_MEDIA,
    PROJECT,
    TO_NUMBER,
    TOKEN,
    cpu_seconds,
    latency_summary,
    parse_args,
    proc_status,
    report,
)

_dumps = json.dumps
_loads = json.loads


class Raw:
    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}"
        self.protocol: str | None = None
        self.ws = self._open()

    def _open(self) -> websocket.WebSocket:
        ws = websocket.WebSocket(skip_utf8_validation=True)
        ws.connect(self.url)
        params: dict[str, Any] = {
            "version": {"major": 2, "minor": 0, "revision": 0},
            "agent": "raw-floor",
            "event_acks": True,
            "authentication": {"project": PROJECT, "token": TOKEN},
            "contexts": [CONTEXT],
        }
        if self.protocol:
            params["protocol"] = self.protocol
        self.ws = ws
        result = self.call("signalwire.connect", params)
        self.protocol = result["protocol"]
        return ws

    def send(self, method: str, params: dict[str, Any]) -> str:
        request_id = str(uuid.uuid4())
        self.ws.send(_dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
        return request_id

    def ack(self, frame: dict[str, Any]) -> None:
        self.ws.send(_dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))

    def recv(self) -> dict[str, Any]:
        """The next frame; server requests are ACKed on the way."""
        frame: dict[str, Any] = _loads(self.ws.recv())
        if "method" in frame:
            self.ack(frame)
        return frame

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request and read until its response (events in between are ACKed and dropped)."""
        request_id = self.send(method, params)
        while True:
            frame = self.recv()
            if frame.get("id") == request_id and "method" not in frame:
                result: dict[str, Any] = frame["result"]
                if method != "signalwire.connect" and not str(result.get("code", "200")).startswith("2"):
                    raise RuntimeError(f"{method} failed: {result}")
                return result

    def next_event(self) -> dict[str, Any]:
        while True:
            frame = self.recv()
            if frame.get("method") == "signalwire.event":
                params: dict[str, Any] = frame["params"]
                return params


def one_call(raw: Raw) -> dict[str, Any]:
    raw.call("bench.call", {})
    while True:
        event = raw.next_event()
        if event["event_type"] == "calling.call.receive":
            params: dict[str, Any] = event["params"]
            return params


def rpc(raw: Raw, params: dict[str, Any]) -> dict[str, Any]:
    call = one_call(raw)
    ids = {"node_id": call["node_id"], "call_id": call["call_id"]}
    methods = ("calling.hold", "calling.unhold")
    for i in range(params["warmup"]):
        raw.call(methods[i % 2], dict(ids))
    latencies = []
    clock = time.perf_counter
    for i in range(params["count"]):
        start = clock()
        raw.call(methods[i % 2], dict(ids))
        latencies.append(clock() - start)
    return latency_summary(latencies)


def events(raw: Raw, params: dict[str, Any]) -> dict[str, Any]:
    call = one_call(raw)

    def flood(count: int) -> float:
        start = time.perf_counter()
        raw.send("bench.events", {"call_id": call["call_id"], "count": count})
        seen = 0
        while seen < count:
            frame = raw.recv()
            if frame.get("method") == "signalwire.event" and frame["params"]["event_type"] == "calling.call.play":
                seen += 1
        return time.perf_counter() - start

    flood(params["warmup"])
    elapsed = flood(params["count"])
    return {"events_per_s": params["count"] / elapsed}


def storm(raw: Raw, params: dict[str, Any]) -> dict[str, Any]:
    """Two bursts (cold and warm, which for one thread are the same work)."""
    baseline = proc_status()["Threads"]
    cold = burst(raw, params["count"])
    warm = burst(raw, params["count"])
    status = proc_status()
    return {
        "wall_s": cold,
        "warm_wall_s": warm,
        "peak_rss_kb": status["VmHWM"],
        "threads_baseline": baseline,
        "threads_after": status["Threads"],
        "settle_s": 0.0,
    }


def burst(raw: Raw, count: int) -> float:
    """Every call's answer → play → (finished) → end → (ended) chain, interleaved in one loop."""
    next_step: dict[str, tuple[str, str]] = {}  # request id → (what it was, call id)
    nodes: dict[str, str] = {}
    ended = 0
    start = time.perf_counter()
    raw.send("bench.storm", {"count": count})
    while ended < count:
        frame = raw.recv()
        method = frame.get("method")
        if method is None:
            step = next_step.pop(frame.get("id"), None)
            if step is not None and step[0] == "answer":
                call_id = step[1]
                control_id = str(uuid.uuid4())
                request_id = raw.send(
                    "calling.play",
                    {"node_id": nodes[call_id], "call_id": call_id, "control_id": control_id, "play": PLAY_MEDIA},
                )
                next_step[request_id] = ("play", call_id)
            continue
        if method != "signalwire.event":
            continue
        event = frame["params"]
        event_type, inner = event["event_type"], event["params"]
        if event_type == "calling.call.receive":
            call_id = inner["call_id"]
            nodes[call_id] = inner["node_id"]
            next_step[raw.send("calling.answer", {"node_id": inner["node_id"], "call_id": call_id})] = (
                "answer",
                call_id,
            )
        elif event_type == "calling.call.play" and inner.get("state") == "finished":
            call_id = inner["call_id"]
            raw.send("calling.end", {"node_id": nodes[call_id], "call_id": call_id, "reason": "hangup"})
        elif event_type == "calling.call.state" and inner.get("call_state") == "ended":
            nodes.pop(inner["call_id"], None)
            ended += 1
    return time.perf_counter() - start


def messaging(raw: Raw, params: dict[str, Any]) -> dict[str, Any]:
    """``senders`` messages in flight at a time: each delivery lets the next one go."""
    total, window = params["count"], params["senders"]
    raw.call("bench.message_gap", {"ms": params["state_ms"]})
    sent = delivered = 0
    start = time.perf_counter()

    def send_one() -> None:
        nonlocal sent
        raw.send(
            "messaging.send",
            {"context": CONTEXT, "to_number": TO_NUMBER, "from_number": FROM_NUMBER, "body": "benchmark"},
        )
        sent += 1

    for _ in range(min(window, total)):
        send_one()
    while delivered < total:
        frame = raw.recv()
        if frame.get("method") != "signalwire.event":
            continue
        event = frame["params"]
        if event["event_type"] == "messaging.state" and event["params"].get("message_state") == "delivered":
            delivered += 1
            if sent < total:
                send_one()
    return {"wall_s": time.perf_counter() - start}


def reconnect(raw: Raw, params: dict[str, Any]) -> dict[str, Any]:
    recoveries = []
    for _ in range(params["drops"]):
        raw.send("bench.drop", {})
        try:
            while True:
                raw.recv()
        except (websocket.WebSocketException, OSError):
            pass
        start = time.perf_counter()
        raw.ws.close()
        raw._open()
        raw.call("bench.echo", {})
        recoveries.append(time.perf_counter() - start)
    return {"recoveries_s": recoveries}


def idle(raw: Raw, params: dict[str, Any]) -> dict[str, Any]:
    before, start = cpu_seconds(), time.monotonic()
    time.sleep(params["window"])
    return {"cpu_s": cpu_seconds() - before, "window_s": time.monotonic() - start}


WORKLOADS = {"rpc": rpc, "events": events, "storm": storm, "messaging": messaging, "reconnect": reconnect, "idle": idle}


def main() -> None:
    port, workload, params = parse_args()
    raw = Raw(port)
    try:
        report(WORKLOADS[workload](raw, params))
    finally:
        raw.ws.close()


if __name__ == "__main__":
    main()
