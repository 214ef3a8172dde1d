"""Ringing devices for ``calling.dial`` and ``calling.connect``: the outer
list of devices is tried in series, each inner list rung in parallel; the
first phone to answer wins and the other legs of its group are cancelled.

Runs on the network thread (started from a reply's ``then``) with the
network lock held; timers come back on the network thread and take it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..devices import E164
from ..rpc import JSONDict
from .legs import NETWORK, Leg
from .network import Network

log = logging.getLogger(__name__)


BUSY_SECONDS = 0.5  # simulated seconds before a busy phone rejects the call


def devices_problem(devices: Any) -> str | None:
    """What the server would refuse in a dial's or connect's ``devices`` (None: nothing):
    the nesting ``[[device, ...], ...]``, each device's type, and its numbers or addresses."""
    if not isinstance(devices, list) or not devices or not all(isinstance(g, list) and g for g in devices):
        return "devices must be a non-empty list of non-empty lists of devices"
    for group in devices:
        for device in group:
            problem = _device_problem(device)
            if problem is not None:
                return problem
    return None


def _device_problem(device: Any) -> str | None:
    if not isinstance(device, dict) or not isinstance(device.get("params"), dict):
        return "each device is an object with a type and params"
    kind, params = device.get("type"), device["params"]
    if kind == "phone":
        for name in ("to_number", "from_number"):
            number = params.get(name)
            if not isinstance(number, str) or not E164.fullmatch(number):
                return f"phone device {name} must be an E.164 number such as '+15551234567', not {number!r}"
        return None
    if kind == "sip":
        for name in ("to", "from"):
            address = params.get(name)
            if not isinstance(address, str) or not address.startswith(("sip:", "sips:")):
                return f"sip device {name} must be a SIP address such as 'sip:alice@example.com', not {address!r}"
        return None
    return f"unknown device type {kind!r} (phone or sip)"


def device_number(device: JSONDict) -> str:
    """The number (or SIP address) a device rings."""
    params = device.get("params") or {}
    return str(params.get("to_number") or params.get("to") or "?")


class Ringer:
    """One dial or connect attempt.

    ``start_leg(leg)`` is told about each leg created (to send its state
    events or not); ``on_answer(leg)`` gets the winner, ``on_fail(reason)``
    the end of the last group without one. ``end_leg(leg, reason)`` ends a
    ringing leg (busy, noAnswer, cancel).
    """

    def __init__(
        self,
        net: Network,
        devices: list[list[JSONDict]],
        *,
        owner: str | None,
        tag: str | None,
        silent: bool,
        on_state: Callable[[Leg], None],
        on_answer: Callable[[Leg], None],
        on_fail: Callable[[str], None],
        end_leg: Callable[[Leg, str], None],
    ) -> None:
        self.net = net
        self._groups = devices
        self._owner = owner
        self._tag = tag
        self._silent = silent
        self._on_state = on_state
        self._on_answer = on_answer
        self._on_fail = on_fail
        self._end_leg = end_leg
        self._group = -1
        self._ringing: list[Leg] = []
        self._last_reason = "noAnswer"
        self.done = False

    def start(self) -> None:
        self._next_group()

    def cancel(self) -> None:
        """Stop ringing (the caller hung up): every ringing leg ends with ``cancel``."""
        self.done = True
        for leg in list(self._ringing):
            self._end_leg(leg, "cancel")
        self._ringing.clear()

    def _next_group(self) -> None:
        self._group += 1
        if self._group >= len(self._groups):
            self.done = True
            self._on_fail(self._last_reason)
            return
        for device in self._groups[self._group]:
            self._ring(device)

    def _ring(self, device: JSONDict) -> None:
        number = device_number(device)
        line = self.net.phones.line(number)
        leg = Leg("outbound", line, device, tag=self._tag, owner=self._owner, silent=self._silent)
        self.net.legs[leg.call_id] = leg
        self._ringing.append(leg)
        self._on_state(leg)  # created
        phone = line.phone
        if phone.busy:
            self.net.note(NETWORK, f"{number} is busy", leg)
            leg.timers.append(self.net.scheduler.after(BUSY_SECONDS, self._locked(lambda: self._failed(leg, "busy"))))
            return
        leg.state = "ringing"
        self._on_state(leg)
        self.net.note(NETWORK, f"{number} is ringing", leg)
        timeout = _timeout(device, self.net.limits.ring_timeout)
        if phone.answers and phone.after < timeout:
            leg.timers.append(self.net.scheduler.after(phone.after, self._locked(lambda: self._answered(leg))))
        else:
            leg.timers.append(self.net.scheduler.after(timeout, self._locked(lambda: self._failed(leg, "noAnswer"))))

    def _locked(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with self.net.lock:
                work()

        return run

    def _answered(self, leg: Leg) -> None:
        if self.done or leg not in self._ringing:
            return
        self.done = True
        self._ringing.remove(leg)
        leg.cancel_timers()
        for loser in list(self._ringing):
            self._end_leg(loser, "cancel")
        self._ringing.clear()
        leg.state = "answered"
        leg.answered.set()
        self.net.note(NETWORK, f"{device_number(leg.device)} answered", leg)
        self._on_state(leg)
        self._on_answer(leg)

    def _failed(self, leg: Leg, reason: str) -> None:
        if self.done or leg not in self._ringing:
            return
        self._ringing.remove(leg)
        self._last_reason = reason
        if reason == "noAnswer":
            self.net.note(NETWORK, f"{device_number(leg.device)} did not answer", leg)
        self._end_leg(leg, reason)
        if not self._ringing:
            self._next_group()


def _timeout(device: JSONDict, default: float) -> float:
    value = (device.get("params") or {}).get("timeout")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return default
    return float(value)
