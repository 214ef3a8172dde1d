"""Outbound dials: each ``calling.dial`` in flight, keyed by its tag, until a
``calling.call.dial`` event answers or fails it, or ``dial_timeout`` passes.

While a dial rings, ``calling.call.state`` events carrying its tag put its
legs in the call table, so their events route before the dial resolves. The
winner stays; losers leave the table when they end; a failed or timed-out
dial takes its legs out at once (and a timed-out one hangs them up).

``dial`` runs in the caller's thread and does not block. Events arrive on the
I/O thread and the timeout fires on the timer thread: both only update
tables, settle futures and send without waiting.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future
from typing import TYPE_CHECKING

from .commands import HANGUP, Devices, device_groups
from .constants import CALL_STATE_ANSWERED, CALL_STATE_ENDED, DIAL_STATE_ANSWERED, DIAL_STATE_FAILED
from .errors import ConnectionLostError, DialFailedError, RelayError, RelayTimeoutError
from .events import RelayEvent
from .futures import HandoffFuture, fail, settle
from .rpc import JSONDict
from .timers import Timer

if TYPE_CHECKING:
    from .calls import Call, CallingService

log = logging.getLogger(__name__)

DEFAULT_DIAL_TIMEOUT = 120.0
DIAL_METHOD = "calling.dial"


class _PendingDial:
    __slots__ = ("future", "legs", "tag", "timer")

    def __init__(self, tag: str, future: Future[Call]) -> None:
        self.tag = tag
        self.future = future
        self.legs: dict[str, Call] = {}
        self.timer: Timer | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


class Dialer:
    """The dials in flight for one client."""

    def __init__(self, service: CallingService) -> None:
        self._service = service
        self._lock = threading.Lock()  # guards _dials; taken before the service's lock
        self._dials: dict[str, _PendingDial] = {}

    def __len__(self) -> int:
        return len(self._dials)

    def dial(
        self,
        devices: Devices,
        *,
        tag: str | None = None,
        max_duration: int | None = None,
        dial_timeout: float | None = None,
        region: str | None = None,
        node_id: str | None = None,
    ) -> Future[Call]:
        """Send ``calling.dial``; the returned future settles with the answering ``Call``
        or fails with ``RelayError`` (``DialFailedError`` when no device answered,
        ``RelayTimeoutError`` after ``dial_timeout``)."""
        groups = device_groups(devices)
        timeout = DEFAULT_DIAL_TIMEOUT if dial_timeout is None else float(dial_timeout)
        if not timeout > 0:
            raise ValueError(f"dial_timeout must be a positive number of seconds, not {dial_timeout!r}")
        tag = tag or str(uuid.uuid4())
        params: JSONDict = {"tag": tag, "devices": groups}
        for name, value in (("max_duration", max_duration), ("region", region), ("node_id", node_id)):
            if value is not None:
                params[name] = value
        client = self._service.client
        timers = client._timers  # raises RelayError before connect() and after disconnect()
        dial = _PendingDial(tag, HandoffFuture(client._handler_pool))
        with self._lock:
            if tag in self._dials:
                raise ValueError(f"a dial with tag {tag!r} is already in progress")
            self._dials[tag] = dial
            dial.timer = timers.call_later(timeout, lambda: self._expire(tag, timeout))
        try:
            pending = client._submit(DIAL_METHOD, params)
        except RelayError as error:
            self._end(tag, error)
            raise
        pending.future.add_done_callback(lambda request: self._request_done(tag, request))
        return dial.future

    # -- I/O thread -------------------------------------------------------------

    def _request_done(self, tag: str, request: Future[JSONDict]) -> None:
        error = request.exception()
        if error is None:
            return
        if isinstance(error, ConnectionLostError):
            # The server may have started dialing: if the session resumes, its
            # events still come. dial_timeout (or a lost session) ends the wait.
            log.info("dial %s: the link dropped before the server answered; waiting for its events", tag)
            return
        log.info("dial %s refused: %s", tag, error)
        self._end(tag, error)

    def claim_leg(self, event: RelayEvent) -> Call | None:
        """A state event for a call not in the table: if its tag is a ringing
        dial's, add the leg to the table and return it."""
        tag = event.tag
        if tag is None:
            return None
        with self._lock:
            dial = self._dials.get(tag)
            if dial is None:
                return None
            call = self._service.adopt(event.params)
            if call is not None:
                dial.legs[call.call_id] = call
            return call

    def on_dial_event(self, event: RelayEvent) -> None:
        tag, state = event.tag, event.state
        if tag is None:
            log.debug("dropping a calling.call.dial event without a tag")
        elif state == DIAL_STATE_ANSWERED:
            self._answered(tag, event)
        elif state == DIAL_STATE_FAILED:
            reason = event.params.get("reason")
            why = f" ({reason})" if isinstance(reason, str) else ""
            self._end(tag, DialFailedError(f"dial {tag} failed: no device answered{why}"))

    def _answered(self, tag: str, event: RelayEvent) -> None:
        with self._lock:
            dial = self._dials.pop(tag, None)
        if dial is None:
            log.debug("ignoring an answer for dial %s, which is over", tag)
            return
        dial.cancel_timer()
        call_id = event.call_id
        winner = dial.legs.get(call_id) if call_id is not None else None
        if winner is None:  # no state event named this leg before the answer
            leg = event.params.get("call")
            winner = self._service.adopt(leg if isinstance(leg, dict) else {}, state=CALL_STATE_ANSWERED)
        if winner is None:
            fail(dial.future, RelayError("dial_failed", f"dial {tag} was answered by a call without a call_id"))
            return
        log.debug("dial %s answered by call %s", tag, winner.call_id)
        settle(dial.future, winner)

    # -- any thread -------------------------------------------------------------

    def _expire(self, tag: str, timeout: float) -> None:
        """Timer thread: the dial rang for ``dial_timeout`` seconds; hang up its legs and fail it."""
        self._end(tag, RelayTimeoutError(f"dial {tag} was not answered within {timeout:g} s"), hang_up=True)

    def _end(self, tag: str, error: BaseException, *, hang_up: bool = False) -> None:
        """Fail a dial and take its legs out of the call table."""
        with self._lock:
            dial = self._dials.pop(tag, None)
        if dial is None:
            return
        dial.cancel_timer()
        for leg in dial.legs.values():
            self._service._forget(leg)
            if hang_up and leg.state != CALL_STATE_ENDED:
                self._hang_up(leg)
        fail(dial.future, error)

    def _hang_up(self, leg: Call) -> None:
        try:
            self._service.client._submit(HANGUP.method, leg._wire_params({"reason": "cancel"}))
        except RelayError as error:
            log.debug("could not hang up leg %s of a timed-out dial: %s", leg.call_id, error)

    def close(self, error: RelayError) -> None:
        """Fail every dial in flight (the client closed, or its session was lost)."""
        with self._lock:
            dials = list(self._dials.values())
            self._dials.clear()
        for dial in dials:
            dial.cancel_timer()
            fail(dial.future, error)

