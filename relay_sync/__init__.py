"""relay_sync: the blocking, thread-based Python SDK for SignalWire RELAY.

Everything a user needs is importable from here::

    from relay_sync import RelayClient, RelayError
"""

import logging

from ._version import __version__
from .client import RelayClient
from .errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    RelayError,
    RelayTimeoutError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "RelayClient",
    "RelayError",
    "AuthenticationError",
    "ClientClosedError",
    "ConnectionLostError",
    "RelayTimeoutError",
]
