"""Builders for the device objects ``dial``, ``connect`` and ``bridge`` ring,
so nobody hand-writes ``{"type": "phone", "params": {...}}``. Plain functions
returning plain dicts (the wire shape); they run in the caller's thread.

Those calls take a list of lists of devices: the outer list is tried in
series, each inner list rung in parallel. A single device is accepted too::

    from relay_sync import devices

    call = client.dial(devices.phone("+15551230000", "+15559870000", timeout=30))
    call = client.dial([[devices.phone(to, caller), devices.sip("sip:desk@example.com", "sip:app@example.com")]])
"""

from __future__ import annotations

import re
from typing import Any

from .rpc import JSONDict

# What RELAY accepts as a phone number: E.164, a "+" and up to 15 digits, no leading zero.
E164 = re.compile(r"\+[1-9]\d{1,14}")


def _check_number(name: str, value: Any) -> str:
    if not isinstance(value, str) or not E164.fullmatch(value):
        raise ValueError(f"{name} must be an E.164 number such as '+15551234567', not {value!r}")
    return value


def phone(to_number: str, from_number: str, *, timeout: int | None = None, **extra: Any) -> JSONDict:
    """A phone number to ring, from one of your numbers; ``timeout`` is seconds of ringing."""
    params: JSONDict = {
        "to_number": _check_number("to_number", to_number),
        "from_number": _check_number("from_number", from_number),
    }
    if timeout is not None:
        params["timeout"] = timeout
    params.update(extra)
    return {"type": "phone", "params": params}


def sip(
    to: str,
    from_: str,
    *,
    headers: list[JSONDict] | None = None,
    codecs: list[str] | None = None,
    webrtc_media: bool | None = None,
    timeout: int | None = None,
    **extra: Any,
) -> JSONDict:
    """A SIP endpoint (``sip:user@domain``) to ring; ``from_`` goes out as ``from``."""
    for name, value in (("to", to), ("from_", from_)):
        if not isinstance(value, str) or not value.startswith(("sip:", "sips:")):
            raise ValueError(f"{name} must be a SIP address such as 'sip:alice@example.com', not {value!r}")
    params: JSONDict = {"to": to, "from": from_}
    options: JSONDict = {"headers": headers, "codecs": codecs, "webrtc_media": webrtc_media, "timeout": timeout}
    params.update({name: value for name, value in options.items() if value is not None})
    params.update(extra)
    return {"type": "sip", "params": params}
