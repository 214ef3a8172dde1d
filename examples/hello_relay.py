"""The smallest working relay_sync program.

With SIGNALWIRE_PROJECT_ID / SIGNALWIRE_API_TOKEN / SIGNALWIRE_SPACE set it
connects to your space; without them it starts relay_sync's loopback test
server in this process and connects to that, so it runs anywhere.
"""

from __future__ import annotations

import logging
import os
import time

from relay_sync import RelayClient


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if os.environ.get("SIGNALWIRE_PROJECT_ID") or os.environ.get("SIGNALWIRE_JWT_TOKEN"):
        # The scheme follows the space: wss, or plain ws for a loopback one (``relay-sync emulator``).
        run(RelayClient(contexts=["office"]))
        return
    from relay_sync.testing import RelayTestServer

    with RelayTestServer() as server:
        run(RelayClient(**server.client_kwargs(contexts=["office"])))


def run(client: RelayClient) -> None:
    with client:
        started = time.perf_counter()
        client.execute("signalwire.ping", {})
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"connected to {client.host}: protocol {client.relay_protocol}, ping {elapsed_ms:.1f} ms")


if __name__ == "__main__":
    main()
