"""Outbound dials: each ``calling.dial`` in flight, keyed by its tag, until a
``calling.call.dial`` event answers or fails it, or ``dial_timeout`` passes.

While a dial rings, ``calling.call.state`` events carrying its tag put its
legs in the call table, so their events route before the dial resolves. The
winner stays; losers leave the table when they end; a failed or timed-out
dial takes its legs out at once (and a timed-out one hangs them up).

The network may still create or answer a leg after the dial failed or timed
out (a late answer): nobody waits for that call, so the callee would hear
silence and the call be billed. The tags of finished dials are kept for
``LATE_LEG_WINDOW`` seconds (at most ``FINISHED_DIALS_KEPT`` of them), and a
leg carrying one of them is hung up at once, with a warning.

``dial`` runs in the caller's thread and does not block. Events arrive on the
I/O thread and the timeout fires on the timer thread: both only update
tables, settle futures and send without waiting.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Generic, Protocol, TypeVar

from .commands import HANGUP, Devices, device_groups
from .config import check_duration
from .constants import (
    CALL_STATE_ANSWERED,
    CALL_STATE_ENDED,
    CALL_STATE_ENDING,
    DIAL_STATE_ANSWERED,
    DIAL_STATE_FAILED,
)
from .errors import ConnectionLostError, DialFailedError, RelayError, RelayTimeoutError
from .events import RelayEvent
from .futures import HandoffFuture, fail, settle
from .rpc import JSONDict, PendingRequest
from .timers import Timer

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)


# The dialer sees calls and the call table only through these two protocols:
# calls.py (Call, CallingService) imports this module, so naming its classes
# here, even for types, would put the two on an import cycle.
class Leg(Protocol):
    """A call a dial rang: what the dialer reads of it."""

    @property
    def call_id(self) -> str: ...

    @property
    def node_id(self) -> str | None: ...

    @property
    def state(self) -> str | None: ...


LegT = TypeVar("LegT", bound=Leg)


class CallTable(Protocol[LegT]):
    """The call table the dialer puts legs in and takes them out of (the CallingService)."""

    @property
    def session(self) -> Session: ...

    def adopt(self, params: Mapping[str, Any], *, state: str | None = None) -> LegT | None:
        """The table's call for the leg ``params`` describes (added when new); None once closed."""
        ...

    def forget(self, leg: LegT) -> None:
        """Take the leg out of the table."""
        ...


DEFAULT_DIAL_TIMEOUT = 120.0
DIAL_METHOD = "calling.dial"

# How long, and how many, tags of failed or timed-out dials are remembered to
# catch their late legs. A leg later than this is left alone (and logged at DEBUG).
LATE_LEG_WINDOW = 600.0
FINISHED_DIALS_KEPT = 1000
# Late legs hung up per finished dial (a dial rings a handful of devices); past it a
# server inventing call ids under one tag is ignored rather than remembered without end.
LATE_LEGS_PER_DIAL = 100


class _PendingDial(Generic[LegT]):
    __slots__ = ("future", "legs", "request", "tag", "timer")

    def __init__(self, tag: str, future: Future[LegT]) -> None:
        self.tag = tag
        self.future = future
        self.legs: dict[str, LegT] = {}
        self.timer: Timer | None = None
        self.request: PendingRequest | None = None  # its calling.dial, once submitted

    def sent(self) -> bool:
        """Its calling.dial went out on a socket (not still queued, or not yet made)."""
        return self.request is not None and self.request.sent

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


class _FinishedDial:
    """A dial that failed or timed out: late legs with its tag are hung up."""

    __slots__ = ("ended_at", "how", "hung_up")

    def __init__(self, how: str, hung_up: set[str]) -> None:
        self.how = how  # "failed" or "timed out", for the log
        self.ended_at = time.monotonic()
        self.hung_up = hung_up  # call ids already hung up: one calling.end per leg


class Dialer(Generic[LegT]):
    """The dials in flight for one client; ``LegT`` is the call type of its table (``Call``)."""

    def __init__(self, service: CallTable[LegT]) -> None:
        self._service = service
        self._lock = threading.Lock()  # guards _dials and _finished; taken before the service's lock
        self._dials: dict[str, _PendingDial[LegT]] = {}
        self._finished: OrderedDict[str, _FinishedDial] = OrderedDict()  # oldest first

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
    ) -> Future[LegT]:
        """Send ``calling.dial``; the returned future settles with the answering ``Call``
        or fails with ``RelayError`` (``DialFailedError`` when no device answered,
        ``RelayTimeoutError`` after ``dial_timeout``)."""
        groups = device_groups(devices)
        timeout = DEFAULT_DIAL_TIMEOUT if dial_timeout is None else check_duration("dial_timeout", dial_timeout)
        tag = tag or str(uuid.uuid4())
        params: JSONDict = {"tag": tag, "devices": groups}
        for name, value in (("max_duration", max_duration), ("region", region), ("node_id", node_id)):
            if value is not None:
                params[name] = value
        session = self._service.session
        dial: _PendingDial[LegT] = _PendingDial(tag, HandoffFuture(session.handler_pool()))
        with self._lock:
            if tag in self._dials:
                raise ValueError(f"a dial with tag {tag!r} is already in progress")
            self._dials[tag] = dial
        # Armed outside the lock: after a fork, call_later connects afresh, and
        # the session-start hooks that runs take this lock.
        try:
            timer = session.call_later(timeout, lambda: self._expire(tag, timeout))
        except BaseException:  # before connect() or after disconnect(): the dial never started
            self._withdraw(dial)
            raise
        with self._lock:
            if self._dials.get(tag) is dial:
                dial.timer = timer
            else:  # already over (its answer or failure came first): nothing to time out
                timer.cancel()
        try:
            pending = session.submit(DIAL_METHOD, params)
        except BaseException:  # closed, backlog full, or params that are not JSON: nothing went out
            self._withdraw(dial)
            raise
        dial.request = pending
        pending.future.add_done_callback(lambda request: self._request_done(tag, request))
        return dial.future

    def _withdraw(self, dial: _PendingDial[LegT]) -> None:
        """Forget a dial whose request never went out: no legs can come, so its tag is free at once."""
        with self._lock:
            if self._dials.get(dial.tag) is dial:
                del self._dials[dial.tag]
        dial.cancel_timer()

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

    def claim_leg(self, event: RelayEvent) -> LegT | None:
        """A state event for a call not in the table: if its tag is a ringing
        dial's, add the leg to the table and return it. A late leg of a dial that
        already failed or timed out is hung up instead."""
        tag = event.tag
        if tag is None:
            return None
        with self._lock:
            dial = self._dials.get(tag)
            if dial is None:
                late = self._late_leg(tag, event.call_id, event.state)
            else:
                call = self._service.adopt(event.params)
                if call is not None:
                    dial.legs[call.call_id] = call
                return call
        if late is not None:
            self._hang_up_late_leg(tag, late, event.params)
        return None

    def _late_leg(self, tag: str, call_id: str | None, state: str | None) -> str | None:
        """How the dial ended, if ``call_id`` is a late leg of it still to hang up (lock held)."""
        finished = self._finished.get(tag)
        if finished is None or call_id is None or state in (CALL_STATE_ENDING, CALL_STATE_ENDED):
            return None
        if time.monotonic() - finished.ended_at > LATE_LEG_WINDOW:
            log.debug("call %s of dial %s came too late to be recognised; leaving it alone", call_id, tag)
            return None
        if call_id in finished.hung_up:
            return None
        if len(finished.hung_up) >= LATE_LEGS_PER_DIAL:
            log.debug("call %s of dial %s: too many late legs for one dial; leaving it alone", call_id, tag)
            return None
        finished.hung_up.add(call_id)
        return finished.how

    def _hang_up_late_leg(self, tag: str, how: str, leg: JSONDict) -> None:
        call_id = leg.get("call_id")
        log.warning("hanging up call %r: it showed up for dial %r, which already %s", call_id, tag, how)
        self._send_hang_up(leg.get("node_id"), call_id)

    def _remember_finished(self, tag: str, how: str, hung_up: set[str]) -> None:
        """Keep a failed or timed-out dial's tag to catch its late legs (lock held)."""
        self._finished[tag] = _FinishedDial(how, hung_up)
        self._finished.move_to_end(tag)
        horizon = time.monotonic() - LATE_LEG_WINDOW
        while self._finished:
            oldest = next(iter(self._finished.values()))
            if len(self._finished) <= FINISHED_DIALS_KEPT and oldest.ended_at >= horizon:
                break
            self._finished.popitem(last=False)

    def on_dial_event(self, event: RelayEvent) -> None:
        tag, state = event.tag, event.state
        if tag is None:
            log.debug("dropping a calling.call.dial event without a tag")
        elif state == DIAL_STATE_ANSWERED:
            self._answered(tag, event)
        elif state == DIAL_STATE_FAILED:
            reason = event.params.get("reason")
            reason = reason if isinstance(reason, str) and reason else None
            why = f" ({reason})" if reason else ""
            self._end(tag, DialFailedError(f"dial {tag} failed: no device answered{why}", reason), how="failed")

    def _answered(self, tag: str, event: RelayEvent) -> None:
        leg = event.params.get("call")
        leg = leg if isinstance(leg, dict) else {}
        with self._lock:
            dial = self._dials.pop(tag, None)
            late = None
            if dial is None:
                call_id = leg.get("call_id")
                late = self._late_leg(tag, call_id if isinstance(call_id, str) else None, None)
        if late is not None:
            self._hang_up_late_leg(tag, late, leg)
            return
        if dial is None:
            log.debug("ignoring an answer for dial %s, which is over", tag)
            return
        dial.cancel_timer()
        call_id = event.call_id
        winner = dial.legs.get(call_id) if call_id is not None else None
        if winner is None:  # no state event named this leg before the answer
            winner = self._service.adopt(leg, state=CALL_STATE_ANSWERED)
        if winner is None:
            fail(dial.future, DialFailedError(f"dial {tag} was answered by a call without a call_id"))
            return
        log.debug("dial %s answered by call %s", tag, winner.call_id)
        settle(dial.future, winner)

    # -- any thread -------------------------------------------------------------

    def _expire(self, tag: str, timeout: float) -> None:
        """Timer thread: the dial rang for ``dial_timeout`` seconds; hang up its legs and fail it."""
        self._end(
            tag, RelayTimeoutError(f"dial {tag} was not answered within {timeout:g} s"), how="timed out", hang_up=True
        )

    def _end(self, tag: str, error: BaseException, *, how: str = "failed", hang_up: bool = False) -> None:
        """Fail a dial and take its legs out of the call table; its tag is remembered
        to catch legs that show up later."""
        with self._lock:
            dial = self._dials.pop(tag, None)
            if dial is not None:
                self._remember_finished(tag, how, set(dial.legs) if hang_up else set())
        if dial is None:
            return
        dial.cancel_timer()
        for leg in dial.legs.values():
            self._service.forget(leg)
            if hang_up and leg.state != CALL_STATE_ENDED:
                self._send_hang_up(leg.node_id, leg.call_id)
        fail(dial.future, error)

    def _send_hang_up(self, node_id: object, call_id: object) -> None:
        """``calling.end`` without waiting for its answer (I/O or timer thread)."""
        try:
            self._service.session.submit(HANGUP.method, {"node_id": node_id, "call_id": call_id, "reason": "cancel"})
        except RelayError as error:
            log.debug("could not hang up call %s of a finished dial: %s", call_id, error)

    def close(self, error: RelayError) -> None:
        """Fail every dial in flight: the client closed."""
        self._fail_where(error, lambda dial: True)

    def session_lost(self, error: RelayError) -> int:
        """A reconnect did not resume the session (I/O thread, before the backlog goes out):
        fail the dials sent on the lost one, whose events now go nowhere; returns how many.

        A dial whose request is still queued (or not yet made) goes out on the new
        session and keeps waiting: failing it would leave its call placed, unseen.
        """
        return self._fail_where(error, _PendingDial.sent)

    def _fail_where(self, error: RelayError, which: Callable[[_PendingDial[LegT]], bool]) -> int:
        """Fail the dials ``which`` picks; their tags are kept, so a leg that shows up
        later is hung up rather than left ringing with nobody to take it."""
        with self._lock:
            dials = [dial for dial in self._dials.values() if which(dial)]
            for dial in dials:
                del self._dials[dial.tag]
                self._remember_finished(dial.tag, "failed", set())
        for dial in dials:
            dial.cancel_timer()
            fail(dial.future, error)
        return len(dials)
