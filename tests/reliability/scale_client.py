"""One client process of the scale-out test (run as a script, not collected).

Connects with the SIGNALWIRE_* environment the test gives it, serves inbound
calls on ``office`` with ``run()``, and reports on stdout, one JSON object a
line: ``ready``, ``handled`` (call_id) for each call it answered, ``stopped``
with the relay_sync threads still alive. A ``holding`` client keeps every call
it takes (so it stays at capacity and passes the rest back) until the test
writes ``release`` on stdin. Closing stdin makes ``run()`` return.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from relay_sync import Call, RelayClient

_print_lock = threading.Lock()


def report(**fields: Any) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-active-calls", type=int, required=True)
    parser.add_argument("--holding", action="store_true")
    options = parser.parse_args()

    client = RelayClient(
        contexts=["office"],
        max_active_calls=options.max_active_calls,
        scheme="ws",
        request_timeout=10.0,
        reconnect_backoff=(0.05, 0.5),
    )
    released = threading.Event()

    @client.on_call
    def take(call: Call) -> None:
        call.answer()
        report(event="handled", call_id=call.call_id)
        if options.holding:
            released.wait(60)
        call.play([{"type": "tts", "params": {"text": "thanks for calling"}}]).wait(timeout=30)
        call.hangup()

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip() == "release":
                released.set()
        released.set()
        client.stop()

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    client.connect()
    report(event="ready")
    client.run()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("relay_sync")]
    report(event="stopped", threads=alive)


if __name__ == "__main__":
    main()
