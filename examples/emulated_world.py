"""Shared by the example scripts: the client for your space, or a demo world.

With ``SIGNALWIRE_PROJECT_ID`` (or ``SIGNALWIRE_JWT_TOKEN``) set, a script
serves your space. Without, it runs its demo: relay_sync's RELAY emulator in
the same process, simulated phones driven from a second thread, and the
emulator's transcript printed at the end.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable

from relay_sync import RelayClient
from relay_sync.testing import RelayEmulator


def have_credentials() -> bool:
    return bool(os.environ.get("SIGNALWIRE_PROJECT_ID") or os.environ.get("SIGNALWIRE_JWT_TOKEN"))


def client_from_environment(**options: Any) -> RelayClient:
    """A client for the space in ``SIGNALWIRE_*`` (a loopback one, ``relay-sync emulator``, gets plain ws by itself)."""
    return RelayClient(**options)


def print_transcript(emulator: RelayEmulator) -> None:
    print("transcript:")
    for entry in emulator.transcript:
        print(f"  {entry}")


def run_demo(
    name: str,
    emulator: RelayEmulator,
    client: RelayClient,
    simulate: Callable[[], None],
    serve: Callable[[], None],
) -> int:
    """Run ``serve()`` (which blocks in ``client.run()``) while ``simulate()``
    plays the phones on another thread; print the transcript; 0 when all went well."""
    failures: list[BaseException] = []

    def world() -> None:
        try:
            emulator.wait_for_session(1, timeout=10)
            simulate()
        except BaseException as error:  # noqa: BLE001  # reported below
            failures.append(error)
            client.stop()

    phones = threading.Thread(target=world, name="demo-phones")
    phones.start()
    serve()
    phones.join(timeout=30)
    print_transcript(emulator)
    if failures:
        print(f"{name}: the demo failed: {failures[0]!r}", file=sys.stderr)
        return 1
    return 0
