"""Reading video payloads defensively: every accessor returns ``None`` (or an
empty dict/list) when a field is missing or has the wrong type, so nothing
the server sends can raise in the I/O thread. Pure functions; any thread.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from ..rpc import JSONDict

# Server timestamps are seconds since the epoch; anything beyond this is nonsense, not a date.
MAX_EPOCH_SECONDS = 253402300799  # 9999-12-31


def text(payload: JSONDict, key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) else None


def flag(payload: JSONDict, key: str) -> bool | None:
    value = payload.get(key)
    return value if isinstance(value, bool) else None


def number(payload: JSONDict, key: str) -> float | None:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def mapping(payload: JSONDict, key: str) -> JSONDict:
    value = payload.get(key)
    return dict(value) if isinstance(value, dict) else {}


def objects(payload: JSONDict, key: str) -> list[JSONDict]:
    value = payload.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def texts(payload: JSONDict, key: str) -> list[str]:
    value = payload.get(key)
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def moment(payload: JSONDict, key: str) -> datetime | None:
    """An aware UTC ``datetime`` from epoch seconds (the realtime SDK reads them the same way)."""
    seconds = number(payload, key)
    if seconds is None or not 0 < seconds <= MAX_EPOCH_SECONDS:
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def room_session_id_of(params: JSONDict) -> str | None:
    """The room session an event is about: top-level in most events, inside ``room_session`` in room events."""
    found = text(params, "room_session_id")
    if found:
        return found
    room_session = params.get("room_session")
    return text(room_session, "id") if isinstance(room_session, dict) else None
