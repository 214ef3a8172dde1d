"""relay_sync: the blocking, thread-based Python SDK for SignalWire RELAY.

Everything a user needs is importable from here::

    from relay_sync import RelayClient, RelayError
"""

import logging

from ._version import __version__
from .actions import (
    Action,
    AIAction,
    CollectAction,
    DetectAction,
    FaxAction,
    PayAction,
    PlayAction,
    RecordAction,
    StandaloneCollectAction,
    StreamAction,
    TapAction,
    TranscribeAction,
)
from .calls import Call
from .client import RelayClient
from .errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    RelayError,
    RelayTimeoutError,
)
from .messaging import Message

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AIAction",
    "Action",
    "AuthenticationError",
    "Call",
    "ClientClosedError",
    "CollectAction",
    "ConnectionLostError",
    "DetectAction",
    "FaxAction",
    "Message",
    "PayAction",
    "PlayAction",
    "RecordAction",
    "RelayClient",
    "RelayError",
    "RelayTimeoutError",
    "StandaloneCollectAction",
    "StreamAction",
    "TapAction",
    "TranscribeAction",
    "__version__",
]
