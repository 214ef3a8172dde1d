"""Run, demo and test RELAY apps with no account and no network.

- :class:`RelayEmulator`: a simulated RELAY space on loopback: phones that
  call in and answer, messages, tasks, REST endpoints, fault controls.
- :class:`RelayTestServer`: the bare session layer it is built on, for
  tests that script every answer themselves.
- The pytest plugin (``relay_sync.testing.plugin``, registered through the
  ``pytest11`` entry point) provides the ``relay_emulator`` and
  ``relay_client`` fixtures.

The servers need the ``testing`` extra (``pip install 'relay-sync[testing]'``,
which adds websockets). They are imported on first use, so that importing
this package (as pytest does for the plugin) works without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import CallHandle as CallHandle
    from .emulator import EmulatorLimitError as EmulatorLimitError
    from .emulator import Phone as Phone
    from .emulator import RelayEmulator as RelayEmulator
    from .emulator import TranscriptEntry as TranscriptEntry
    from .server import JournalEntry as JournalEntry
    from .server import RelayTestServer as RelayTestServer
    from .server import Reply as Reply
    from .server import ServerSession as ServerSession

_HOMES = {
    "CallHandle": "emulator",
    "EmulatorLimitError": "emulator",
    "Phone": "emulator",
    "RelayEmulator": "emulator",
    "TranscriptEntry": "emulator",
    "JournalEntry": "server",
    "RelayTestServer": "server",
    "Reply": "server",
    "ServerSession": "server",
}

__all__ = [
    "CallHandle",
    "EmulatorLimitError",
    "JournalEntry",
    "Phone",
    "RelayEmulator",
    "RelayTestServer",
    "Reply",
    "ServerSession",
    "TranscriptEntry",
]

MISSING_WEBSOCKETS = (
    "the RELAY emulator needs the websockets package: pip install 'relay-sync[testing]' (or pip install websockets)"
)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f".{home}", __name__)
    except ModuleNotFoundError as error:
        if error.name == "websockets" or (error.name or "").startswith("websockets."):
            raise ModuleNotFoundError(MISSING_WEBSOCKETS, name="websockets") from error
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value
