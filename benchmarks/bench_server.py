"""The benchmark's RELAY server: just enough of the protocol for the six
workloads, as fast as one asyncio process can make it, on loopback only.

Runs in its own process (``run.py`` starts it) so it never competes with the
client under test for the GIL. It prints ``PORT <n>`` once listening, and
exits when its standard input closes (the parent went away) or after
``--lifetime`` seconds, whichever comes first.

What it speaks:

* ``signalwire.connect``: any credentials; a new ``protocol`` per fresh
  login, the same one when the client resumes with it.
* answers to its own requests (event ACKs) are counted and otherwise ignored;
  ``signalwire.ping`` is answered.
* ``calling.answer`` answers, then pushes ``calling.call.state answered``;
  ``calling.play`` answers, pushes ``playing`` and, ``PLAY_MS`` later,
  ``finished``; ``calling.end`` answers, then pushes ``ending`` and ``ended``;
  every other ``calling.*`` command is answered with 200.
* ``messaging.send`` answers with a new ``message_id``; ``MESSAGE_MS`` later
  it pushes ``messaging.state`` ``initiated``, then ``sent`` and
  ``delivered``, each a gap after the one before (``MESSAGE_MS`` unless
  ``bench.message_gap`` changed it for the connection). The first state never
  comes sooner than ``MESSAGE_MS``: the async SDK drops state events that
  arrive before its ``send_message`` has registered the message.
* benchmark controls, sent as ordinary requests on the same socket:
  ``bench.call`` (offer one inbound call), ``bench.events`` (push ``count``
  ``calling.call.play`` events for ``call_id``), ``bench.storm`` (offer
  ``count`` inbound calls at once), ``bench.message_gap`` (set the
  connection's gap between message states to ``ms``), ``bench.drop`` (drop the TCP connection
  without an answer) and ``bench.echo`` (answer at once).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import threading
import time
import uuid
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

PLAY_MS = 5.0
MESSAGE_MS = 20.0
OK = {"code": "200", "message": "OK"}

_ids = itertools.count()
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class Session:
    """One client connection."""

    def __init__(self, ws: ServerConnection, protocols: set[str]) -> None:
        self.ws = ws
        self.protocols = protocols
        self.protocol = ""
        self.answers = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.message_ms = MESSAGE_MS

    # -- sending ---------------------------------------------------------------

    async def send(self, text: str) -> None:
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            pass

    async def reply(self, request_id: Any, result: dict[str, Any]) -> None:
        await self.send(_dumps({"jsonrpc": "2.0", "id": request_id, "result": result}))

    def event_frame(self, event_type: str, params: dict[str, Any]) -> str:
        return _dumps(
            {
                "jsonrpc": "2.0",
                "id": f"s{next(_ids)}",
                "method": "signalwire.event",
                "params": {
                    "event_type": event_type,
                    "event_channel": self.protocol,
                    "timestamp": time.time(),
                    "params": params,
                },
            }
        )

    async def push(self, event_type: str, params: dict[str, Any]) -> None:
        await self.send(self.event_frame(event_type, params))

    def later(self, delay_ms: float, frames: list[str]) -> None:
        """Push ``frames`` (in order) ``delay_ms`` from now."""

        def fire() -> None:
            self.spawn(self._send_all(frames))

        asyncio.get_running_loop().call_later(delay_ms / 1000.0, fire)

    async def _send_all(self, frames: list[str]) -> None:
        for frame in frames:
            await self.send(frame)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- pushes the workloads ask for --------------------------------------------

    def receive_params(self, call_id: str) -> dict[str, Any]:
        return {
            "call_id": call_id,
            "node_id": "bench-node",
            "context": "bench",
            "call_state": "created",
            "direction": "inbound",
            "tag": call_id,
            "device": {"type": "phone", "params": {"from_number": "+15550001111", "to_number": "+15550002222"}},
        }

    async def flood(self, call_id: str, count: int) -> None:
        """``count`` play events for one call, as fast as the socket takes them."""
        head = '{"jsonrpc":"2.0","id":"f'
        tail = _dumps(
            {
                "method": "signalwire.event",
                "params": {
                    "event_type": "calling.call.play",
                    "event_channel": self.protocol,
                    "timestamp": time.time(),
                    "params": {
                        "call_id": call_id,
                        "node_id": "bench-node",
                        "control_id": "bench-flood",
                        "state": "playing",
                    },
                },
            }
        )[1:]
        send = self.ws.send
        base = next(_ids)
        try:
            for n in range(count):
                await send(f'{head}{base}-{n}",{tail}')
        except ConnectionClosed:
            pass

    async def storm(self, count: int) -> None:
        frames = [
            self.event_frame("calling.call.receive", self.receive_params(f"storm-{uuid.uuid4()}")) for _ in range(count)
        ]
        await self._send_all(frames)

    # -- requests ------------------------------------------------------------------

    async def handle(self, frame: dict[str, Any]) -> bool:
        """Answer one request; False to drop the connection."""
        method = frame.get("method")
        request_id = frame.get("id")
        params = frame.get("params") or {}
        if method == "signalwire.connect":
            protocol = params.get("protocol")
            if not (isinstance(protocol, str) and protocol in self.protocols):
                protocol = f"bench-{uuid.uuid4()}"
                self.protocols.add(protocol)
            self.protocol = protocol
            result = {
                "protocol": protocol,
                "identity": "bench-identity",
                "authorization": {"project_id": "bench", "scopes": ["calling", "messaging"]},
                "sessionid": str(uuid.uuid4()),
            }
            await self.reply(request_id, result)
        elif method == "calling.answer":
            await self.reply(request_id, OK)
            await self.push("calling.call.state", self._state(params, "answered"))
        elif method == "calling.play":
            await self.reply(request_id, OK)
            play = {
                "call_id": params.get("call_id"),
                "node_id": params.get("node_id"),
                "control_id": params.get("control_id"),
            }
            await self.push("calling.call.play", {**play, "state": "playing"})
            self.later(PLAY_MS, [self.event_frame("calling.call.play", {**play, "state": "finished"})])
        elif method == "calling.end":
            await self.reply(request_id, OK)
            await self.push("calling.call.state", self._state(params, "ending"))
            await self.push("calling.call.state", {**self._state(params, "ended"), "end_reason": "hangup"})
        elif method == "messaging.send":
            message_id = str(uuid.uuid4())
            await self.reply(request_id, {"code": "200", "message": "Message accepted", "message_id": message_id})
            base = {
                "message_id": message_id,
                "context": params.get("context"),
                "direction": "outbound",
                "from_number": params.get("from_number"),
                "to_number": params.get("to_number"),
                "body": params.get("body"),
                "media": [],
                "tags": [],
                "segments": 1,
            }
            for step, state in enumerate(("initiated", "sent", "delivered")):
                frame = self.event_frame("messaging.state", {**base, "message_state": state})
                self.later(MESSAGE_MS + step * self.message_ms, [frame])
        elif method == "bench.call":
            await self.reply(request_id, OK)
            await self.push("calling.call.receive", self.receive_params(f"call-{uuid.uuid4()}"))
        elif method == "bench.events":
            await self.reply(request_id, OK)
            self.spawn(self.flood(str(params["call_id"]), int(params["count"])))
        elif method == "bench.storm":
            await self.reply(request_id, OK)
            self.spawn(self.storm(int(params["count"])))
        elif method == "bench.message_gap":
            self.message_ms = float(params["ms"])
            await self.reply(request_id, OK)
        elif method == "bench.drop":
            return False
        else:  # bench.echo, signalwire.ping, other calling.* commands
            await self.reply(request_id, OK)
        return True

    @staticmethod
    def _state(params: dict[str, Any], state: str) -> dict[str, Any]:
        return {
            "call_id": params.get("call_id"),
            "node_id": params.get("node_id"),
            "call_state": state,
            "direction": "inbound",
        }


async def serve_session(ws: ServerConnection, protocols: set[str]) -> None:
    session = Session(ws, protocols)
    try:
        async for text in ws:
            if isinstance(text, bytes):
                text = text.decode()
            if '"method"' not in text:  # an answer to one of our requests: an event ACK
                session.answers += 1
                continue
            frame = json.loads(text)
            if not await session.handle(frame):
                ws.transport.abort()  # no close frame: a dropped link
                return
    except ConnectionClosed:
        pass
    finally:
        for task in list(session.tasks):
            task.cancel()


async def main(port: int, lifetime: float) -> None:
    protocols: set[str] = set()

    async def handler(ws: ServerConnection) -> None:
        await serve_session(ws, protocols)

    async with serve(
        handler, "127.0.0.1", port, ping_interval=None, compression=None, max_queue=None, max_size=2**22
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {bound}", flush=True)
        await asyncio.sleep(lifetime)


def _exit_when_parent_goes() -> None:
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=900.0, help="seconds before the server exits by itself")
    args = parser.parse_args()
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    asyncio.run(main(args.port, args.lifetime))
