"""The process's RelayClient: created and connected by the first request that needs it.

Request threads share it (it is thread-safe). In a forked worker the lock is
renewed and a client inherited from the parent logs in afresh on first use,
so pre-forking servers (gunicorn, uWSGI) need nothing special. Without
credentials (no ``SIGNALWIRE_*`` variables, nothing in ``RELAY_CLIENT_OPTIONS``)
it starts relay_sync's RELAY emulator in the process, so the project runs
with no account; ``emulator.transcript`` shows what the simulated phones saw.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.conf import settings

from relay_sync import ConnectionState, RelayClient

log = logging.getLogger(__name__)

_lock = threading.Lock()
_client: RelayClient | None = None
emulator: Any = None  # a RelayEmulator in this process, when there are no credentials


def get_client() -> RelayClient:
    global _client, emulator
    client = _client
    if client is not None and client.state is not ConnectionState.CLOSED:
        return client
    with _lock:
        # Made anew when another request thread has not won the race, or when the
        # one we had gave up reconnecting (closed for good: it would only raise).
        if _client is None or _client.state is ConnectionState.CLOSED:
            options = dict(getattr(settings, "RELAY_CLIENT_OPTIONS", {}))
            if not has_credentials(options):
                if emulator is None:
                    emulator = start_emulator()
                options = emulator.client_kwargs(**options)
            client = new_client(**options)
            client.connect()
            _client = client
        return _client


def shutdown() -> None:
    """Disconnect the process's client (at exit; also between tests)."""
    global _client, emulator
    with _lock:
        client, _client = _client, None
        running, emulator = emulator, None
    if client is not None:
        client.disconnect()
    if running is not None:
        running.stop()


def has_credentials(options: dict[str, Any]) -> bool:
    """Credentials in the client options or the environment (as RelayClient looks for them)."""
    given = options.get("project") or options.get("jwt_token")
    return bool(given or os.environ.get("SIGNALWIRE_PROJECT_ID") or os.environ.get("SIGNALWIRE_JWT_TOKEN"))


def start_emulator() -> Any:
    """relay_sync's RELAY emulator in this process (``pip install 'relay-sync[testing]'``)."""
    from relay_sync.testing import RelayEmulator

    log.warning("no SIGNALWIRE_* credentials: using a RELAY emulator in this process (simulated phones)")
    return RelayEmulator().start()


def new_client(**options: Any) -> RelayClient:
    """A RelayClient; a loopback space (``relay-sync emulator``) is reached over plain ws by itself."""
    return RelayClient(**options)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
