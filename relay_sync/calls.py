"""Calls: ``Call`` (one live call, inbound or dialed, with every command on
it) and ``CallingService``, the client's table of live calls, which routes
``calling.*`` events, runs ``on_call`` handlers and keeps to ``max_active_calls``.

``CallingService.on_event`` and ``Call._handle_event`` run on the I/O thread:
they update state, settle futures and hand user code to the handler pool,
never block and never run user code. Commands run in the caller's thread and
block on the server's response.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable

from .actions import A, ActionFeed, CallLink, call_when_done, start_action
from .commands import PASS, CallCommands, Command, Devices, Media, OnCompleted, Operation, build_params
from .constants import (
    CALL_STATE_ANSWERED,
    CALL_STATE_CREATED,
    CALL_STATE_ENDED,
    CALL_STATE_ENDING,
    CALL_STATE_RINGING,
    EVENT_CALL_CONNECT,
    EVENT_CALL_DIAL,
    EVENT_CALL_RECEIVE,
    EVENT_CALL_STATE,
    EVENT_CALLING_ERROR,
)
from .dialing import Dialer
from .errors import (
    CallEndedError,
    CallPassedError,
    ClientClosedError,
    DialFailedError,
    RelayError,
    RelayTimeoutError,
    SessionLostError,
)
from .events import CallStateEvent, ConnectEvent, RelayEvent, parse_event, text_field
from .futures import HandoffFuture, copy_for_waiter, fail, settle, wait_result, wait_timeout
from .ordered import OrderedRunner
from .pool import run_user_code
from .rpc import JSONDict, new_id

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

CallHandler = Callable[["Call"], Any]
EventHandler = Callable[[RelayEvent], Any]

# The order a call goes through its states, for "has it reached X yet?".
_STATE_ORDER = (CALL_STATE_CREATED, CALL_STATE_RINGING, CALL_STATE_ANSWERED, CALL_STATE_ENDING, CALL_STATE_ENDED)
# The states on the way up: a call ending does not mean it rang or was answered.
_PROGRESS_STATES = (CALL_STATE_CREATED, CALL_STATE_RINGING, CALL_STATE_ANSWERED)
# connect_state values that end a bridge attempt.
_CONNECTED, _CONNECT_FAILED, _DISCONNECTED = "connected", "failed", "disconnected"

# Result codes meaning "that call no longer exists": not an error for a command on it.
GONE_CODES = frozenset({"404", "410"})


def _is_gone(error: RelayError) -> bool:
    return str(error.code) in GONE_CODES


class _Waiter:
    """One ``wait_for`` in progress: the I/O thread queues matching-type events
    (then an error if the call goes away); the waiting thread tests its
    predicate on them itself, so user code never runs on the I/O thread."""

    __slots__ = ("event_type", "inbox")

    def __init__(self, event_type: str) -> None:
        self.event_type = event_type
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()


class Call(CallCommands):
    """A live call: received by an ``on_call`` handler or returned by ``dial()``.

    Every command blocks until the server answered it and raises
    ``RelayError`` on failure, except ``404``/``410`` (the call is already
    gone), which return ``{}``. Operations such as ``play()`` return an
    :class:`~relay_sync.actions.Action` to ``wait()`` on.

    ``ended`` is a ``concurrent.futures.Future`` resolved with the
    ``calling.call.state`` event whose state is ``ended``.
    """

    def __init__(
        self,
        service: CallingService,
        params: Mapping[str, Any],
        *,
        direction: str | None = None,
        state: str | None = None,
    ) -> None:
        self._service = service
        self._session = service.session
        self._handler_pool = service.session.handler_pool()
        self.call_id: str = str(params["call_id"])
        self.node_id: str | None = text_field(params, "node_id")
        self.project_id: str | None = text_field(params, "project_id")
        # The call's own context (from the event), never the session's protocol string.
        self.context: str | None = text_field(params, "context")
        self.tag: str | None = text_field(params, "tag")
        self.direction: str | None = text_field(params, "direction") or direction
        device = params.get("device")
        self.device: JSONDict = dict(device) if isinstance(device, dict) else {}
        self.segment_id: str | None = text_field(params, "segment_id")
        self.ended: Future[RelayEvent] = HandoffFuture(self._handler_pool)
        # _lock guards _state, the tables below and how the call left (_ended_event / _detached).
        self._lock = threading.Lock()
        self._state: str | None = state or text_field(params, "call_state")
        self._actions: dict[str, ActionFeed] = {}  # by control_id: the running actions, fed on the I/O thread
        self._listeners: dict[str, list[EventHandler]] = {}
        self._waiters: list[_Waiter] = []
        self._ended_event: RelayEvent | None = None
        self._last_state_event: RelayEvent | None = None
        # The furthest of _PROGRESS_STATES the call reached, and its event (None: a state it started in).
        self._furthest: str | None = None
        self._furthest_event: RelayEvent | None = None
        self._note_progress(self._state, None)
        self._peer: Call | None = None
        self._detached: RelayError | None = None  # passed back to routing, or the client closed
        self._listener_runner = OrderedRunner(self._handler_pool, f"call {self.call_id!r}")
        self._action_link = CallLink(self, self._send, self._handler_pool)  # what each action started here gets

    def __repr__(self) -> str:
        return f"<Call call_id={self.call_id!r} direction={self.direction!r} state={self._state!r}>"

    @property
    def state(self) -> str | None:
        """The latest call state: ``created``, ``ringing``, ``answered``, ``ending`` or ``ended``."""
        return self._state

    @property
    def waiting(self) -> int:
        """Threads blocked now waiting on this call's events (``wait_for``, ``wait_for_*``, ``bridge``): 0 once they
        have returned or raised (a diagnostic, and how a test knows a wait is in place)."""
        with self._lock:
            return len(self._waiters)

    @property
    def peer(self) -> Call | None:
        """The ``Call`` this call is bridged to (``bridge()``/``connect()``), or None."""
        return self._peer

    # -- lifecycle ------------------------------------------------------------

    def pass_(self, **extra: Any) -> JSONDict:
        """Hand the inbound call back to RELAY routing, so another client on its context may take it.

        The call leaves this client: its pending waits fail with ``CallPassedError`` (code ``"passed"``).
        """
        result = self._command(PASS, {}, extra)
        self._service.forget(self)
        self._detach(CallPassedError(f"call {self.call_id} was passed back to routing"))
        return result

    # -- events ---------------------------------------------------------------

    def on(self, event_type: str, handler: EventHandler) -> None:
        """Run ``handler(event)`` on the handler pool for each ``event_type`` event of this call.

        A call's listeners run one at a time, in event order; what a listener raises is logged.
        """
        with self._lock:
            self._listeners.setdefault(event_type, []).append(handler)

    def _add_waiter(self, waiter: _Waiter) -> RelayEvent | None:
        """Register ``waiter`` unless the call has already gone: returns the ended
        event if it ended (the waiter is then not registered), raises if it left."""
        with self._lock:
            ended, detached = self._ended_event, self._detached
            if ended is None and detached is None:
                self._waiters.append(waiter)
        if detached is not None:
            raise copy_for_waiter(detached)
        return ended

    def wait_for(
        self,
        event_type: str,
        predicate: Callable[[RelayEvent], bool] | None = None,
        timeout: float | None = None,
    ) -> RelayEvent:
        """Block until the next ``event_type`` event of this call for which ``predicate`` holds.

        Raises ``TimeoutError`` (``RelayTimeoutError``) when ``timeout`` passes,
        and ``RelayError`` when the call ends or leaves the client first.
        """
        waiter = _Waiter(event_type)
        ended = self._add_waiter(waiter)
        if ended is not None:
            if ended.event_type == event_type and (predicate is None or predicate(ended)):
                return ended
            raise CallEndedError(f"call {self.call_id} has ended; no {event_type} event will come")
        try:
            return self._next_match(waiter, predicate, timeout)
        finally:
            self._drop_waiter(waiter)

    def _drop_waiter(self, waiter: _Waiter) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def wait_for_ringing(self, timeout: float | None = None) -> RelayEvent:
        """Block until the call rings (at once if it is ringing or past it); returns the state event."""
        return self._wait_for_state(CALL_STATE_RINGING, timeout)

    def wait_for_answered(self, timeout: float | None = None) -> RelayEvent:
        """Block until the call is answered (at once if it was); ``CallEndedError`` if it ends unanswered."""
        return self._wait_for_state(CALL_STATE_ANSWERED, timeout)

    def wait_for_ending(self, timeout: float | None = None) -> RelayEvent:
        """Block until the call is ending (at once if it is ending or ended)."""
        return self._wait_for_state(CALL_STATE_ENDING, timeout)

    def _note_progress(self, state: str | None, event: RelayEvent | None) -> None:
        """Remember ``state`` if it is further up than any reached before (lock held, or construction)."""
        if state not in _PROGRESS_STATES:
            return
        if self._furthest is None or _PROGRESS_STATES.index(state) > _PROGRESS_STATES.index(self._furthest):
            self._furthest, self._furthest_event = state, event

    def _reached_now(self, target: str) -> RelayEvent | None:
        """The state event showing the call reached ``target`` (or went past it), else None (lock held).

        Ringing and answered are judged by the furthest state the call went through,
        not the latest: a call that ended unanswered never reached answered."""
        if target in _PROGRESS_STATES:
            state, event = self._furthest, self._furthest_event
            if state is None or _PROGRESS_STATES.index(state) < _PROGRESS_STATES.index(target):
                return None
        else:
            state, event = self._state, self._last_state_event
            if state not in _STATE_ORDER or _STATE_ORDER.index(state) < _STATE_ORDER.index(target):
                return None
        return event if event is not None else self._state_snapshot(state)

    def _wait_for_state(self, target: str, timeout: float | None) -> RelayEvent:
        """The async SDK's state waits: return at once when the call reached ``target`` or
        went past it, else wait for the state event that reaches it. Checked and registered
        under one lock hold, so a state event cannot slip between the two."""
        rank = _STATE_ORDER.index(target)

        def reached(event: RelayEvent) -> bool:
            state = event.state
            if state in (CALL_STATE_ENDING, CALL_STATE_ENDED) and rank < _STATE_ORDER.index(CALL_STATE_ENDING):
                return False  # it is ending without reaching the target: the ended event fails the wait
            return state in _STATE_ORDER and _STATE_ORDER.index(state) >= rank

        waiter = _Waiter(EVENT_CALL_STATE)
        with self._lock:
            now = self._reached_now(target)
            if now is None and self._ended_event is None and self._detached is None:
                self._waiters.append(waiter)
            ended, detached = self._ended_event, self._detached
        if now is not None:
            return now
        if detached is not None:
            raise copy_for_waiter(detached)
        if ended is not None:
            raise CallEndedError(f"call {self.call_id} ended before it was {target}")
        try:
            return self._next_match(waiter, reached, timeout)
        except CallEndedError:
            raise CallEndedError(f"call {self.call_id} ended before it was {target}") from None
        finally:
            self._drop_waiter(waiter)

    def _state_snapshot(self, state: str) -> RelayEvent:
        """A state event standing in for one the call never got (an inbound call starts
        ringing from its receive event)."""
        params = {"call_id": self.call_id, "node_id": self.node_id, "tag": self.tag, "call_state": state}
        return CallStateEvent(EVENT_CALL_STATE, params)

    def bridge(
        self,
        devices: Devices,
        *,
        ringback: Media | None = None,
        tag: str | None = None,
        max_duration: int | None = None,
        timeout: float | None = None,
        **extra: Any,
    ) -> Call:
        """Connect this call to another party and block until the bridge is up (Node's
        ``call.connect``); returns the peer ``Call``, also in :attr:`peer`.

        Raises ``DialFailedError`` when no device answered, ``RelayTimeoutError``
        after ``timeout`` seconds (the attempt may still go on: ``hangup()`` ends
        it), and ``CallEndedError`` when this call ends first.
        """
        waiter = _Waiter(EVENT_CALL_CONNECT)
        # Registered before connect goes out: its events may overtake the response.
        ended = self._add_waiter(waiter)
        if ended is not None:
            raise CallEndedError(f"call {self.call_id} has ended; it cannot be bridged")
        try:
            if not self.connect(devices, ringback=ringback, tag=tag, max_duration=max_duration, **extra):
                raise CallEndedError(f"call {self.call_id} is gone; it cannot be bridged")  # 404/410
            event = self._next_match(waiter, lambda e: e.state in (_CONNECTED, _CONNECT_FAILED), timeout)
        finally:
            self._drop_waiter(waiter)
        if event.state == _CONNECT_FAILED:
            reason = event.params.get("reason")
            reason = reason if isinstance(reason, str) and reason else None
            why = f" ({reason})" if reason else ""
            raise DialFailedError(f"call {self.call_id} could not be bridged: no device answered{why}", reason)
        peer = self._peer
        if peer is None:
            raise RelayError("bridge_failed", f"call {self.call_id} was bridged to a peer without a call_id")
        return peer

    def _next_match(
        self, waiter: _Waiter, predicate: Callable[[RelayEvent], bool] | None, timeout: float | None
    ) -> RelayEvent:
        limit = wait_timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                item = waiter.inbox.get(timeout=remaining)
            except queue.Empty:
                what = f"no matching {waiter.event_type} event on call {self.call_id}"
                raise RelayTimeoutError(f"{what} within {timeout:g} s") from None
            if isinstance(item, BaseException):
                raise item
            if predicate is None or predicate(item):
                event: RelayEvent = item
                return event

    def wait_for_ended(self, timeout: float | None = None) -> RelayEvent:
        """Block until the call ends; returns its ``ended`` state event."""
        event: RelayEvent = wait_result(self.ended, timeout, f"call {self.call_id}")
        return event

    # -- the command mechanism (caller's thread) -------------------------------

    def _send(self, method: str, fields: JSONDict) -> JSONDict:
        """Send ``method`` for this call; a 404/410 (the call is gone) is logged and gives ``{}``."""
        try:
            return self._session.request(method, self._wire_params(fields))
        except RelayError as error:
            if not _is_gone(error):
                raise
            log.info("%s: call %s is already gone (%s)", method, self.call_id, error.code)
            return {}

    def _wire_params(self, fields: JSONDict) -> JSONDict:
        return wire_params(self, fields)

    def _command(
        self, command: Command, fields: JSONDict, extra: Mapping[str, Any], control_id: str | None = None
    ) -> JSONDict:
        params = build_params(command, fields, extra)
        if command.control:
            params["control_id"] = control_id or new_id()
        return self._send(command.method, params)

    def _start(
        self,
        command: Operation[A],
        fields: JSONDict,
        extra: Mapping[str, Any],
        control_id: str | None,
        on_completed: OnCompleted,
        action_type: type[A] | None = None,
    ) -> A:
        params = build_params(command, fields, extra)
        control_id = control_id or new_id()
        params["control_id"] = control_id
        action, feed = start_action(
            action_type or command.action, self._action_link, command.method, control_id, params
        )
        # Registered before the request goes out: the server may report on the
        # operation before it answers the request.
        with self._lock:
            if control_id in self._actions:
                raise ValueError(f"control_id {control_id!r} is already in use by a running action on this call")
            ended, detached = self._ended_event, self._detached
            if ended is None and detached is None:
                self._actions[control_id] = feed
        if on_completed is not None:
            call_when_done(action, on_completed)
        try:
            self._session.request(command.method, self._wire_params(params))
        except BaseException as error:  # a RelayError, or params that are not JSON (TypeError): none may linger
            self._drop_action(feed)
            if not isinstance(error, RelayError) or not _is_gone(error):
                feed.fail(error)
                raise
            log.info("%s: call %s is already gone (%s); the action is done", command.method, self.call_id, error.code)
            feed.finish(self._gone_event(), completed=False)
            return action
        if detached is not None:
            feed.fail(detached)
        elif ended is not None:
            feed.finish(ended, completed=False)
        return action

    def _drop_action(self, feed: ActionFeed) -> None:
        control_id = feed.action.control_id
        with self._lock:
            if self._actions.get(control_id) is feed:
                del self._actions[control_id]

    def _gone_event(self) -> RelayEvent:
        """What an action on a vanished call resolves with: the call's ended event,
        or (when the server said 404/410 before any arrived) one standing in for it."""
        with self._lock:
            if self._ended_event is not None:
                return self._ended_event
        params = {"call_id": self.call_id, "node_id": self.node_id, "tag": self.tag, "call_state": CALL_STATE_ENDED}
        return CallStateEvent(EVENT_CALL_STATE, params)

    # -- fed by the CallingService (I/O thread) --------------------------------

    def _handle_event(self, event: RelayEvent) -> None:
        """Apply one event of this call; an ``ended`` state takes it out of the service's table."""
        finished: ActionFeed | None = None
        orphans: list[ActionFeed] = []
        left: list[_Waiter] = []
        peer = self._bridged_peer(event) if event.event_type == EVENT_CALL_CONNECT else self._peer
        with self._lock:
            if self._ended_event is not None or self._detached is not None:
                return  # a straggler after the end
            ended = False
            self._peer = peer
            if event.event_type == EVENT_CALL_STATE:
                state = event.state
                if state is not None:
                    self._state = state
                    self._last_state_event = event
                    self._note_progress(state, event)
                ended = state == CALL_STATE_ENDED
            control_id = event.control_id
            feed = self._actions.get(control_id) if control_id is not None else None
            if feed is not None and feed.observe(event):
                del self._actions[feed.action.control_id]
                finished = feed
            listeners = list(self._listeners.get(event.event_type, ()))
            waiters = [w for w in self._waiters if w.event_type == event.event_type]
            if ended:
                self._ended_event = event
                orphans = list(self._actions.values())
                self._actions.clear()
                left = list(self._waiters)
        if finished is not None:
            finished.finish(event, completed=True)
        for waiter in waiters:
            waiter.inbox.put(event)
        for listener in listeners:
            self._listener_runner.submit(listener, event)
        if ended:
            # Out of the table before anything observable resolves: whoever
            # wakes on call.ended (or on an action) finds the table without it.
            self._service.forget(self)
            for orphan in orphans:  # their operations died with the call
                orphan.finish(event, completed=False)
            gone = CallEndedError(f"call {self.call_id} ended")
            for waiter in left:  # each its own instance: each is raised in its own thread
                waiter.inbox.put(copy_for_waiter(gone))
            settle(self.ended, event)

    def _bridged_peer(self, event: RelayEvent) -> Call | None:
        """The peer after a ``calling.call.connect`` event: the table's ``Call`` for the
        answering leg once connected (so its events and commands work), None once the
        bridge is down. I/O thread, outside the call's lock (the table has its own)."""
        state = event.state
        if state == _CONNECTED and isinstance(event, ConnectEvent):
            peer = self._service.adopt(event.peer, state=CALL_STATE_ANSWERED)
            if peer is None:
                return None
            linked: Call = peer  # a Call, like self: its _link_peer is this class's own
            linked._link_peer(self, True)  # as in Node, the peer's peer is this call
            return peer
        if state in (_DISCONNECTED, _CONNECT_FAILED):
            if self._peer is not None:
                unlinked: Call = self._peer
                unlinked._link_peer(self, False)
            return None
        return self._peer

    def _link_peer(self, other: Call, linked: bool) -> None:
        """The other side of a bridge made by ``other`` came up (or went down)."""
        with self._lock:
            if linked:
                self._peer = other
            elif self._peer is other:
                self._peer = None

    def _detach(self, error: RelayError) -> None:
        """The call left this client without ending here (passed, or the client closed)."""
        with self._lock:
            if self._ended_event is not None or self._detached is not None:
                return
            self._detached = error
            orphans = list(self._actions.values())
            self._actions.clear()
            waiters = list(self._waiters)
        for orphan in orphans:
            orphan.fail(error)
        for waiter in waiters:  # each its own instance: each is raised in its own thread
            waiter.inbox.put(copy_for_waiter(error))
        fail(self.ended, error)


def wire_params(call: Call, fields: JSONDict) -> JSONDict:
    """``fields`` as a command for ``call`` goes out: with the call's node_id and call_id."""
    params = dict(fields)
    params["node_id"] = call.node_id
    params["call_id"] = call.call_id
    return params


def _still_up(call: Call) -> bool:
    """Not ended or ending, and still this client's (not passed, client not closed: those
    fail ``ended``). Read from the call's public state: an end the I/O thread is applying
    right now may show a moment later, and hanging up an ended call only gets a 404."""
    return not call.ended.done() and call.state not in (CALL_STATE_ENDING, CALL_STATE_ENDED)


def _hang_up_orphaned(call: Call) -> None:
    try:
        call.hangup()
    except ClientClosedError:  # the client is closing (perhaps why the handler raised): nothing to do
        log.debug("call %r not hung up after its handler raised: the client is closed", call.call_id)
    except RelayError as error:
        log.warning("could not hang up call %r after its handler raised: %r", call.call_id, error)


class CallingService:
    """The client's live calls: routes ``calling.*`` events, runs ``on_call``
    handlers on the handler pool, passes inbound calls beyond
    ``max_active_calls`` back to routing, and places outbound dials.

    An inbound call holds one of the ``max_active_calls`` slots from the moment
    it is handed to its handler until both the call has left the table and the
    handler has returned: a handler doing post-call work still counts, and so
    does a call whose handler returned early.
    """

    def __init__(self, session: Session, *, max_active_calls: int) -> None:
        self.session = session
        self.max_active_calls = max_active_calls
        # _lock guards the call table, the slot sets below and _closed.
        self._lock = threading.Lock()
        self._calls: dict[str, Call] = {}
        self._inbound: set[str] = set()  # inbound calls in the table
        self._handling: set[str] = set()  # calls whose on_call handler is running
        self._slots: set[str] = set()  # _inbound | _handling: what counts against max_active_calls
        self._handler: CallHandler | None = None
        self._closed = False
        self._passed = 0  # inbound calls handed back to routing for want of capacity
        self._dialer: Dialer[Call] = Dialer(self)
        session.on_session_start(self._session_started)

    def after_fork(self) -> None:
        """In a forked child: the parent's calls are not ours; keep only the handler."""
        self._lock = threading.Lock()
        self._calls = {}
        self._inbound = set()
        self._handling = set()
        self._slots = set()
        self._closed = False
        self._dialer = Dialer(self)

    @property
    def call_count(self) -> int:
        """Calls in the table (inbound and dialed, not yet ended)."""
        return len(self._calls)

    @property
    def dial_count(self) -> int:
        """Dials in flight: sent, not yet answered, failed or timed out."""
        return len(self._dialer)

    @property
    def passed_count(self) -> int:
        """Inbound calls passed back to routing: ``max_active_calls`` busy, or no handler thread free."""
        return self._passed

    @property
    def inbound_count(self) -> int:
        """Inbound calls in the table."""
        return len(self._inbound)

    @property
    def handlers_busy(self) -> int:
        """``on_call`` handlers running now (some may outlive their call)."""
        return len(self._handling)

    @property
    def slots_in_use(self) -> int:
        """Inbound calls counted against ``max_active_calls``: live, or with their handler still running."""
        return len(self._slots)

    # -- public entry points (RelayClient delegates here) ---------------------

    def on_call(self, handler: CallHandler) -> CallHandler:
        if not callable(handler):
            raise TypeError(f"on_call needs a function taking the Call, not {handler!r}")
        if self._handler is not None:
            log.warning("on_call: replacing handler %r with %r", self._handler, handler)
        self._handler = handler
        return handler

    def dial(
        self,
        devices: Devices,
        *,
        tag: str | None = None,
        max_duration: int | None = None,
        dial_timeout: float | None = None,
        region: str | None = None,
        node_id: str | None = None,
    ) -> Call:
        future = self.dial_future(
            devices, tag=tag, max_duration=max_duration, dial_timeout=dial_timeout, region=region, node_id=node_id
        )
        # The dial settles by itself: answered, failed, dial_timeout, or disconnect().
        call: Call = future.result()
        return call

    def dial_future(
        self,
        devices: Devices,
        *,
        tag: str | None = None,
        max_duration: int | None = None,
        dial_timeout: float | None = None,
        region: str | None = None,
        node_id: str | None = None,
    ) -> Future[Call]:
        return self._dialer.dial(
            devices, tag=tag, max_duration=max_duration, dial_timeout=dial_timeout, region=region, node_id=node_id
        )

    # -- events (I/O thread) ----------------------------------------------------

    def on_event(self, envelope: JSONDict) -> None:
        """Route one ``calling.*`` event envelope. Never blocks, never runs user code."""
        event = parse_event(envelope)
        event_type = event.event_type
        if event_type == EVENT_CALL_RECEIVE:
            self._receive(event)
            return
        if event_type == EVENT_CALL_DIAL:
            self._dialer.on_dial_event(event)
            return
        call_id = event.call_id
        if call_id is None:
            if event_type == EVENT_CALLING_ERROR:
                params = event.params
                # Text from the wire is logged with %r: a line break in it cannot forge a log line.
                log.warning("calling.error from the server: %r %r", params.get("code"), params.get("message"))
            else:
                log.debug("dropping a %s event without a call_id", event_type)
            return
        call = self.find(call_id)
        if call is None and event_type == EVENT_CALL_STATE:
            call = self._dialer.claim_leg(event)
        if call is None:
            log.debug("dropping a %s event for call %s, which is not ours (or no longer)", event_type, call_id)
            return
        call._handle_event(event)

    def _receive(self, event: RelayEvent) -> None:
        call_id = event.call_id
        if call_id is None:
            log.warning("dropping a calling.call.receive event without a call_id")
            return
        handler = self._handler
        if handler is None:
            log.warning("inbound call %r: no on_call handler is registered; leaving the call alone", call_id)
            return
        call = Call(self, event.params, direction="inbound")
        limit = self.max_active_calls
        with self._lock:
            if self._closed:
                return
            if call_id in self._calls:
                log.debug("ignoring a repeated calling.call.receive for call %s", call_id)
                return
            in_use = len(self._slots)
            if in_use >= limit:
                self._passed += 1
            else:
                self._calls[call_id] = call
                self._inbound.add(call_id)
                self._handling.add(call_id)
                self._slots.add(call_id)
        if in_use >= limit:
            log.warning(
                "inbound call %r passed back to routing: %d of max_active_calls=%d slots busy", call_id, in_use, limit
            )
            self._pass_back(call)
            return
        # A call must never sit in a queue unanswered: hand it over only if a
        # handler thread can take it now (other work may be holding them all).
        try:
            started = self.session.handler_pool().run_now(self._run_handler, handler, call)
        except RuntimeError:  # the pool is shut down: the client is closing
            log.debug("on_call handler for call %s not run: the client is closed", call_id)
            self._handler_done(call)
            return
        if not started:
            self._handler_done(call)
            self.forget(call)
            with self._lock:
                self._passed += 1
            log.warning("inbound call %r passed back to routing: every handler thread is busy", call_id)
            self._pass_back(call)

    def _pass_back(self, call: Call) -> None:
        """Send ``calling.pass`` without waiting (we are on the I/O thread); log a failure."""
        try:
            pending = self.session.submit(PASS.method, wire_params(call, {}))
        except RelayError as error:
            log.warning("could not pass call %r back to routing: %r", call.call_id, error)
            return

        def log_failure(request: Future[JSONDict]) -> None:
            error = request.exception()
            if error is not None:
                log.warning("calling.pass for call %r failed: %r", call.call_id, error)

        pending.future.add_done_callback(log_failure)

    def _run_handler(self, handler: CallHandler, call: Call) -> None:
        """Handler thread: run the user's handler; its slot is free once it returned.

        Nobody is left to drive a call whose handler raised: it is hung up rather
        than left with the caller in silence (hosted platforms do the same when an
        app errors)."""
        still_up = False

        def which_call() -> str:  # only after a raise: is there a call left to hang up?
            nonlocal still_up
            still_up = _still_up(call)
            return f" for call {call.call_id!r}" + ("; hanging the call up" if still_up else "")

        try:
            if not run_user_code(handler, call, what="on_call handler", detail=which_call) and still_up:
                _hang_up_orphaned(call)
        finally:
            self._handler_done(call)
            # After the slot is released, so whoever reads this knows the slot is free
            # once the call has left the table too.
            log.debug("on_call handler for call %r returned", call.call_id)

    def _handler_done(self, call: Call) -> None:
        with self._lock:
            self._handling.discard(call.call_id)
            if call.call_id not in self._inbound:
                self._slots.discard(call.call_id)

    # -- the call table ----------------------------------------------------------

    def find(self, call_id: str) -> Call | None:
        with self._lock:
            return self._calls.get(call_id)

    def adopt(self, params: Mapping[str, Any], *, state: str | None = None) -> Call | None:
        """The table's call for an outbound leg described by ``params`` (created
        and added when new); None once the service is closed."""
        call_id = params.get("call_id")
        if not isinstance(call_id, str):
            return None
        with self._lock:
            if self._closed:
                return None
            call = self._calls.get(call_id)
            if call is None:
                call = Call(self, params, direction="outbound", state=state)
                self._calls[call_id] = call
            return call

    def forget(self, call: Call) -> None:
        """Take a call out of the table (it ended, was passed or a dial dropped it)."""
        with self._lock:
            if self._calls.get(call.call_id) is call:
                del self._calls[call.call_id]
                self._inbound.discard(call.call_id)
                if call.call_id not in self._handling:
                    self._slots.discard(call.call_id)

    def close(self, error: RelayError) -> None:
        """The client closed: fail every dial, action and wait still pending."""
        with self._lock:
            self._closed = True
        self._dialer.close(error)
        self._drop_calls(error)

    def _session_started(self, resumed: bool) -> None:
        """After a reconnect that did not resume the session, the server sends the
        old session's call events nowhere: fail what waits on them instead of hanging."""
        if resumed:
            return
        error = SessionLostError()
        # Runs before the queued requests go out: dials still queued belong to the new session.
        dials = self._dialer.session_lost(error)
        dropped = self._drop_calls(error)
        if dropped or dials:
            log.warning("%d call(s) and %d dial(s) dropped: %s", dropped, dials, error.message)

    def _drop_calls(self, error: RelayError) -> int:
        """Empty the call table, failing what waits on each call; returns how many were dropped."""
        with self._lock:
            calls = list(self._calls.values())
            self._calls.clear()
            self._inbound.clear()
            self._slots = set(self._handling)  # handlers still running keep their slots
        for call in calls:
            call._detach(error)
        return len(calls)
