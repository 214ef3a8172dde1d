"""Settings every test client shares, and the check that no relay_sync thread
outlived its client. A plain module (conftest.py is pytest's, not imported)."""

from __future__ import annotations

import threading

# Fast settings so fault tests finish in well under a second.
FAST = {"request_timeout": 2.0, "ping_interval": 5.0, "reconnect_backoff": (0.05, 0.2)}


def relay_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("relay_sync")]
