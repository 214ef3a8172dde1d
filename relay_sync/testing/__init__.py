"""A real RELAY server on loopback for tests and demos (needs the ``testing`` extra: websockets)."""

from .server import JournalEntry, RelayTestServer, ServerSession

__all__ = ["JournalEntry", "RelayTestServer", "ServerSession"]
