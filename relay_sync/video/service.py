"""The Video service behind ``client.video``: room sessions, their event
subscriptions, and the routing of ``video.*`` events to ``listen()``
handlers and to recording/playback/stream handles.

It holds the narrow ``Session`` every service gets (request, submit, an
ordered-runner factory, the handler pool), never the client. Threads:

* ``listen``, ``get_room_session(s)`` and every ``RoomSession`` command run
  in the caller's thread and block on the server's answer;
* ``on_event`` runs on the I/O thread: it updates the member list and the
  handles and hands each handler to the room's ordered runner, so handlers
  run on the handler pool, one at a time per room (and one at a time for
  the project-wide ``video.rooms`` channel), in the order the server sent
  the events;
* ``session_started`` (connecting or I/O thread) resubmits the
  subscriptions without waiting for the answers; once a room's renewal is
  confirmed, ``_reconcile`` (on the handler pool) asks the server which of
  the room's recordings, playbacks and streams still run, since those that
  ended while the client was away said so to a connection that is gone.

A room's state is kept while something holds it: a subscription, a live
handle, or a start()/get_*() call in progress. When the last one lets go, the
room is forgotten and no longer renewed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from ..errors import LINK_DOWN_ERRORS, RelayError, RoomEndedError
from ..futures import fail, settle
from ..ordered import OrderedRunner
from ..rpc import JSONDict
from ..session import Session
from . import payload as read
from . import wire
from .events import RoomAudienceCount, RoomLayout
from .handles import COMPLETED, HANDLE_CLASSES, RoomAction
from .members import RoomMember
from .renewals import Renewals
from .room import RoomSession, bad_response
from .subscription import Handler, VideoSubscription

log = logging.getLogger(__name__)

ROOM_LISTENERS = wire.listener_table(wire.ROOM_LISTENERS)
VIDEO_LISTENERS = wire.listener_table(wire.VIDEO_LISTENERS)
HANDLE_EVENTS = {"recording": wire.RECORDING_EVENTS, "playback": wire.PLAYBACK_EVENTS, "stream": wire.STREAM_EVENTS}

# Ended handles remembered per room (see _Room.ended).
RECENTLY_ENDED = 32

Dispatch = list[tuple[str, Any]]  # (dispatched event name, what its handlers receive)


@dataclass
class _Channel:
    """One subscribed event channel: the room's own, or the project-wide ``video.rooms``."""

    name: str
    runner: OrderedRunner
    subscribed: set[str] = field(default_factory=set)  # wire event types the server was asked for
    subscriptions: list[VideoSubscription] = field(default_factory=list)
    # The last renewal of ``subscribed`` failed: the server may send none of it, so
    # the next listen() asks for all of it again.
    unconfirmed: bool = False


@dataclass
class _Room:
    """What the client keeps for a room session it listens to or runs handles in."""

    room_session_id: str
    room_id: str | None
    channel: _Channel
    members: dict[str, JSONDict] = field(default_factory=dict)  # merged member state, by id
    handles: dict[str, RoomAction] = field(default_factory=dict)  # recordings, playbacks, streams not ended
    # The last few that ended: an end reported before the answer to its start
    # must still reach the handle that start returns.
    ended: OrderedDict[str, RoomAction] = field(default_factory=OrderedDict)
    # start() calls waiting for their operation's "<kind>.started" (see VideoService.start).
    claims: list[tuple[str, Future[RoomAction]]] = field(default_factory=list)
    # start() and get_*() calls between _ready() and tracking what the server answered.
    busy: int = 0


class VideoService:
    """``client.video``: watch rooms start and end, look rooms up, moderate them."""

    def __init__(self, session: Session, *, request_timeout: float) -> None:
        """``request_timeout``: seconds a start waits for its ``*.started`` event when
        the answer does not describe the operation."""
        self._session = session
        self._request_timeout = request_timeout
        # _lock guards _rooms, _rooms_channel and everything inside them.
        self._lock = threading.Lock()
        self._rooms: dict[str, _Room] = {}
        self._rooms_channel = _Channel(wire.ROOMS_CHANNEL, session.ordered_runner("video.rooms"))
        self._renewals = self._new_renewals()
        self._closed_error: RelayError | None = None  # set once the client closed

    # -- public: client.video ------------------------------------------------------------

    def listen(self, **listeners: Handler) -> VideoSubscription:
        """Run ``on_room_started(room)`` / ``on_room_ended(room)`` on the handler pool
        whenever a room session of the project starts or ends; returns the subscription.

        Blocks until the server confirmed the subscription; it is renewed
        after a reconnect. ``room`` is a ``RoomSession``.
        """
        handlers, events = _resolve(VIDEO_LISTENERS, listeners, "client.video.listen")
        channel = self._rooms_channel
        subscription = VideoSubscription(wire.ROOMS_CHANNEL, handlers, self._detach)
        with self._lock:
            channel.subscriptions.append(subscription)
            missing = _to_subscribe(channel, events)
        if missing:
            try:
                self._subscribe(channel, missing)
            except BaseException:
                subscription.close()
                raise
        return subscription

    def get_room_sessions(self) -> list[RoomSession]:
        """The room sessions running now in the project."""
        result = self.request("video.rooms.get", {})
        return [RoomSession(self, fields) for fields in read.objects(result, "rooms")]

    def get_room_session(self, room_session_id: str) -> RoomSession:
        """One room session by id (``RelayError`` from the server when there is no such room)."""
        if not isinstance(room_session_id, str) or not room_session_id:
            raise ValueError(f"room_session_id must be a non-empty string, not {room_session_id!r}")
        result = self.request("video.room.get", {"room_session_id": room_session_id})
        room = result.get("room")
        if not isinstance(room, dict):
            raise bad_response("video.room.get", "room")
        return RoomSession(self, room)

    # -- RoomHost: what RoomSession objects call (caller's thread) -------------------------

    def request(self, method: str, params: JSONDict) -> JSONDict:
        return self._session.request(method, params)

    def member(self, fields: JSONDict, room_session_id: str) -> RoomMember:
        return RoomMember(self.request, fields, room_session_id=room_session_id)

    def listen_room(self, room: RoomSession, listeners: Mapping[str, Handler]) -> VideoSubscription:
        handlers, events = _resolve(ROOM_LISTENERS, listeners, "room.listen")
        subscription = VideoSubscription(room.id, handlers, self._detach)
        # Registered before the subscribe goes out: the server may send the
        # initial state ahead of its answer.
        self._ready(room, events, subscription)
        return subscription

    def start(self, room: RoomSession, kind: str, method: str, params: JSONDict) -> RoomAction:
        """Start a recording, playback or stream and return its handle.

        The room is subscribed to the operation's events first, so the handle
        learns how it ends even when the end follows the answer at once.
        """
        state = self._ready(room, set(HANDLE_EVENTS[kind]))  # busy until the finally below
        # The realtime SDK takes the first "<kind>.started" of the room as the
        # operation it started; we read the answer, and fall back to that event
        # when the answer does not describe the operation.
        claim: Future[RoomAction] = Future()
        with self._lock:
            state.claims.append((kind, claim))
        try:
            result = self.request(method, {"room_session_id": room.id, **params})
            fields = result.get(kind)
            if isinstance(fields, dict) and read.text(fields, "id"):
                with self._lock:
                    return self._track_answer(state, kind, fields)
            try:
                return claim.result(self._request_timeout)
            except FutureTimeout:
                raise bad_response(method, f"{kind}, and no {kind}.started event followed") from None
        finally:
            with self._lock:
                if (kind, claim) in state.claims:
                    state.claims.remove((kind, claim))
                state.busy -= 1
                self._release_if_idle(state)

    def handles(self, room: RoomSession, kind: str, method: str) -> list[Any]:
        state = self._ready(room, set(HANDLE_EVENTS[kind]))
        try:
            result = self.request(method, {"room_session_id": room.id})
            with self._lock:
                listed = read.objects(result, f"{kind}s")
                return [self._track_answer(state, kind, fields) for fields in listed if fields.get("id")]
        finally:
            with self._lock:
                state.busy -= 1
                self._release_if_idle(state)

    # -- subscriptions (caller's thread) ------------------------------------------------------

    def _ready(self, room: RoomSession, events: set[str], subscription: VideoSubscription | None = None) -> _Room:
        """The client's state for ``room``, its channel subscribed to ``events`` (and the
        baseline); held by ``subscription``, registered first, or else marked busy: the
        caller lowers ``busy`` when done. On failure nothing is left behind."""
        channel = room.event_channel
        if not channel:
            raise RelayError(
                "no_event_channel",
                f"room session {room.id} came without an event_channel: fetch it with client.video.get_room_session()",
            )
        with self._lock:
            state = self._rooms.get(room.id)
            if state is None:
                state = _Room(room.id, room.room_id, _Channel(channel, self._session.ordered_runner(f"room {room.id}")))
                self._rooms[room.id] = state
            if not state.members:
                state.members = {m["id"]: m for m in read.objects(room.fields, "members") if read.text(m, "id")}
            if subscription is not None:
                state.channel.subscriptions.append(subscription)
            else:
                state.busy += 1
            missing = _to_subscribe(state.channel, events | set(wire.ROOM_BASELINE_EVENTS))
            if wire.MEMBER_JOINED in missing:
                # Members were not followed until now, so the map may lack those who
                # joined meanwhile: the initial state brings the current list.
                missing.add(wire.ROOM_SUBSCRIBED)
        if missing:
            try:
                self._subscribe(state.channel, missing)
            except BaseException:
                if subscription is not None:
                    subscription.close()  # its detach releases the room
                else:
                    with self._lock:
                        state.busy -= 1
                        self._release_if_idle(state)
                raise
        return state

    def _subscribe(self, channel: _Channel, events: set[str]) -> None:
        """Ask the server for ``events`` on ``channel``; from then on a new session asks again."""
        self.request(wire.SUBSCRIBE_METHOD, wire.subscribe_params(channel.name, events))
        with self._lock:
            channel.subscribed |= events
            channel.unconfirmed = False
            held = channel.subscriptions if channel is self._rooms_channel else self._room_on(channel.name)
            if held:
                self._renewals.remember(
                    channel.name, wire.SUBSCRIBE_METHOD, wire.subscribe_params(channel.name, channel.subscribed)
                )

    def _room_on(self, channel_name: object) -> _Room | None:
        """The room kept for ``channel_name`` (lock held)."""
        return next((room for room in self._rooms.values() if room.channel.name == channel_name), None)

    def _release_if_idle(self, state: _Room) -> None:
        """Forget a room nothing holds any more, and renew its channel no more (lock held).

        Nothing is sent: the server keeps sending this connection the room's events,
        which are dropped, until the next reconnect, which no longer subscribes them."""
        if state.channel.subscriptions or state.handles or state.claims or state.busy:
            return
        if self._rooms.get(state.room_session_id) is state:
            del self._rooms[state.room_session_id]
            self._renewals.forget(state.channel.name)

    def _detach(self, subscription: VideoSubscription) -> None:
        with self._lock:
            channel = self._rooms_channel
            if subscription in channel.subscriptions:
                channel.subscriptions.remove(subscription)
                if not channel.subscriptions:
                    channel.subscribed.clear()  # the next listen() subscribes again
                    channel.unconfirmed = False
                    self._renewals.forget(channel.name)
                return
            for state in list(self._rooms.values()):
                if subscription in state.channel.subscriptions:
                    state.channel.subscriptions.remove(subscription)
                    self._release_if_idle(state)
                    return

    def session_started(self, resumed: bool) -> None:
        self._renewals.session_started(resumed)

    def _new_renewals(self) -> Renewals:
        return Renewals(self._session.submit, self._session.call_later, self._renewal_failed, self._renewed)

    def _renewal_failed(self, channel_name: object, error: BaseException) -> None:
        """I/O thread: a renewal failed. A room the server no longer knows ended while
        we were away: release what waits on it (and renew it no more). A refusal or
        a timeout on a live link leaves the channel unconfirmed (Renewals retries it)."""
        if isinstance(error, LINK_DOWN_ERRORS):
            return  # a lost or closing connection: the next session renews again
        with self._lock:
            state = self._room_on(channel_name)
            if isinstance(error, RelayError) and str(error.code) == "404":
                if state is not None:
                    self._forget_room(state)
                return
            if channel_name == self._rooms_channel.name:
                self._rooms_channel.unconfirmed = True
            elif state is not None:
                state.channel.unconfirmed = True
        log.error(
            "video events of %s may not arrive: the server did not renew the subscription (%s)", channel_name, error
        )

    def _renewed(self, channel_name: object) -> None:
        """I/O thread: a renewal was confirmed; have the room's live handles checked."""
        with self._lock:
            if channel_name == self._rooms_channel.name:
                self._rooms_channel.unconfirmed = False
                return
            state = self._room_on(channel_name)
            if state is None:
                return
            state.channel.unconfirmed = False
            if not state.handles:
                return
        self._session.run_user(
            self._reconcile, state, what=f"checking the handles of room session {state.room_session_id}"
        )

    def _reconcile(self, state: _Room) -> None:
        """Handler pool: end the handles of ``state`` the server no longer lists (or lists as completed).

        Only handles live before the lists were asked for are judged: one started
        later may be missing from an answer that was already on its way."""
        with self._lock:
            live = dict(state.handles)
        for kind in sorted({handle.kind for handle in live.values()}):
            try:
                result = self.request(wire.LIST_METHODS[kind], {"room_session_id": state.room_session_id})
            except RelayError as error:
                log.warning("could not check the %ss of room session %s: %s", kind, state.room_session_id, error)
                continue
            listed = {read.text(fields, "id"): fields for fields in read.objects(result, f"{kind}s")}
            with self._lock:
                if self._rooms.get(state.room_session_id) is not state:
                    return  # forgotten meanwhile (ended, released or closed): its handles were settled
                for handle_id, handle in live.items():
                    if handle.kind != kind or state.handles.get(handle_id) is not handle:
                        continue
                    fields = listed.get(handle_id)
                    if fields is None:
                        log.info("%s %s ended while the client was away", kind, handle_id)
                        self._track(state, kind, {"id": handle_id, "state": COMPLETED})
                    elif read.text(fields, "state") == COMPLETED:
                        self._track(state, kind, fields)
                self._release_if_idle(state)

    # -- events (I/O thread) --------------------------------------------------------------------

    def on_event(self, envelope: JSONDict) -> None:
        event_type = envelope.get("event_type")
        params = envelope.get("params")
        if not isinstance(event_type, str) or not isinstance(params, dict):
            log.warning("dropping a video event without params: %r", event_type)
            return
        event_channel = read.text(envelope, "event_channel") or ""
        name = event_type.removeprefix("video.")
        if event_channel.startswith(wire.ROOMS_CHANNEL):
            self._on_project_event(name, params)
            return
        room_session_id = read.room_session_id_of(params)
        with self._lock:
            state = self._rooms.get(room_session_id or "")
            if state is None:
                log.debug("dropping %s for room session %s: nothing listens to it", event_type, room_session_id)
                return
            channel = state.channel
            wanted = frozenset().union(*(subscription.events for subscription in channel.subscriptions))
            dispatch = self._interpret(state, name, params, wanted)
            deliveries = _deliveries(channel.subscriptions, dispatch)
            if name == "room.ended":
                self._forget_room(state)
            else:
                self._release_if_idle(state)  # its last handle may have ended
        for subscription, event, argument in deliveries:
            channel.runner.submit(subscription.deliver, event, argument)

    def _on_project_event(self, name: str, params: JSONDict) -> None:
        if name not in ("room.started", "room.ended"):
            log.debug("ignoring %s on the video.rooms channel", name)
            return
        room = RoomSession(self, read.mapping(params, "room_session"))
        with self._lock:
            deliveries = _deliveries(self._rooms_channel.subscriptions, [(name, room)])
        for subscription, event, argument in deliveries:
            self._rooms_channel.runner.submit(subscription.deliver, event, argument)

    def _interpret(self, state: _Room, name: str, params: JSONDict, wanted: frozenset[str]) -> Dispatch:
        """Update what the client keeps for the room; returns what the handlers get (lock held).
        ``wanted``: the events some handler listens to (others may be left out)."""
        family = name.partition(".")[0]
        if family == "room":
            return self._room_event(state, name, params)
        if family == "member":
            return self._member_event(state, name, params, wanted)
        if family in HANDLE_CLASSES:
            fields = params.get(family)
            if not isinstance(fields, dict) or not read.text(fields, "id"):
                log.warning("dropping %s without a %s id", name, family)
                return []
            known = read.text(fields, "id") in state.handles or read.text(fields, "id") in state.ended
            handle = self._track(state, family, fields)
            if name.endswith(".started") and not known:
                self._hand_to_claim(state, family, handle)
            return [(name, handle)]
        if name == "layout.changed":
            return [(name, RoomLayout.from_payload(params))]
        log.debug("ignoring an unknown video event %s", name)
        return []

    def _room_event(self, state: _Room, name: str, params: JSONDict) -> Dispatch:
        if name == "room.audience_count":
            return [(name, RoomAudienceCount.from_payload(params))]
        fields = read.mapping(params, "room_session")
        if name == "room.subscribed":
            members = read.objects(fields, "members")
            state.members = {m["id"]: m for m in members if read.text(m, "id")}
        return [(name, RoomSession(self, fields))]

    def _member_event(self, state: _Room, name: str, params: JSONDict, wanted: frozenset[str]) -> Dispatch:
        update = params.get("member")
        member_id = read.text(update, "id") if isinstance(update, dict) else None
        if not isinstance(update, dict) or not member_id:
            log.warning("dropping %s without a member id", name)
            return []
        if name == "member.left":
            merged = {**state.members.pop(member_id, {}), **update}
        else:
            # member.updated and member.talking carry only what changed: merge it into what we know.
            merged = {**state.members.get(member_id, {}), **update}
            state.members[member_id] = merged
        member = self.member(merged, state.room_session_id)
        dispatch: Dispatch = []
        if name == "member.updated":
            changed = read.texts(update, "updated")
            dispatch.extend((f"member.updated.{key}", member) for key in changed if key in wire.MEMBER_UPDATABLE_FIELDS)
        dispatch.append((name, member))
        if name == "member.talking" and isinstance(update.get("talking"), bool):
            dispatch.append(("member.talking.started" if update["talking"] else "member.talking.ended", member))
        if name in ("member.joined", "member.updated", "member.left") and "member_list.updated" in wanted:
            # Built only for a listener: it costs a RoomMember per member, on the I/O thread.
            members = [self.member(fields, state.room_session_id) for fields in state.members.values()]
            dispatch.append(("member_list.updated", members))
        return dispatch

    def _track(self, state: _Room, kind: str, fields: JSONDict) -> RoomAction:
        """The handle for ``fields`` (kept until it ended), updated with them (lock held)."""
        handle_id = read.text(fields, "id") or ""
        ended = state.ended.get(handle_id)
        if ended is not None:
            return ended  # what came later cannot undo the end
        handle = state.handles.get(handle_id)
        if handle is None:
            handle = self._new_handle(state, kind, fields)
        else:
            handle._apply(fields)
        if handle.has_ended:
            state.handles.pop(handle_id, None)
            state.ended[handle_id] = handle
            if len(state.ended) > RECENTLY_ENDED:
                state.ended.popitem(last=False)
        else:
            state.handles[handle_id] = handle
        return handle

    def _new_handle(self, state: _Room, kind: str, fields: JSONDict) -> RoomAction:
        return HANDLE_CLASSES[kind](
            self.request,
            self._session.handler_pool(),
            fields,
            room_session_id=state.room_session_id,
            room_id=state.room_id,
        )

    def _track_answer(self, state: _Room, kind: str, fields: JSONDict) -> RoomAction:
        """The handle for an operation a start or list answer described (lock held).

        The room may have been forgotten while the answer was on its way (it ended,
        or the client closed): then no event will ever reach the handle, so it is
        failed now rather than left waiting."""
        if self._rooms.get(state.room_session_id) is state:
            return self._track(state, kind, fields)
        handle_id = read.text(fields, "id") or ""
        known = state.ended.get(handle_id) or state.handles.get(handle_id)
        if known is not None:
            return known  # settled when the room was forgotten
        handle = self._new_handle(state, kind, fields)
        fail(handle.future, self._closed_error or RoomEndedError(f"room session {state.room_session_id} ended first"))
        return handle

    def _hand_to_claim(self, state: _Room, kind: str, handle: RoomAction) -> None:
        """A new operation started: the oldest start() of its kind still waiting may take it."""
        for claimed_kind, claim in state.claims:
            if claimed_kind == kind and settle(claim, handle):
                return

    def _forget_room(self, state: _Room) -> None:
        """The room ended: what still waits on it will never hear more (lock held)."""
        self._rooms.pop(state.room_session_id, None)
        self._renewals.forget(state.channel.name)
        error = RoomEndedError(f"room session {state.room_session_id} ended first")
        _fail_all(state, error)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self, error: RelayError) -> None:
        """The client closed: fail what waits, stop every handler."""
        with self._lock:
            self._closed_error = error
            rooms, self._rooms = list(self._rooms.values()), {}
            subscriptions = list(self._rooms_channel.subscriptions)
            self._rooms_channel.subscriptions.clear()
        for room in rooms:
            subscriptions.extend(room.channel.subscriptions)
            _fail_all(room, error)
        for subscription in subscriptions:
            subscription.close()  # its detach finds nothing left to remove

    def after_fork(self) -> None:
        """In a forked child: fresh locks, and runners on the child's handler pool.
        Subscriptions stay: the child's first login renews them."""
        self._lock = threading.Lock()
        # First: releasing a room below forgets its renewal, and the parent's Renewals
        # has a lock another parent thread may have held at the fork.
        self._renewals = self._new_renewals()
        self._rooms_channel.runner = self._session.ordered_runner("video.rooms")
        for room in list(self._rooms.values()):
            room.channel.runner = self._session.ordered_runner(f"room {room.room_session_id}")
            # Handles, and the calls waiting on them, belong to the parent's pool and
            # threads: only subscriptions hold a room in the child.
            room.handles.clear()
            room.claims.clear()
            room.busy = 0
            self._release_if_idle(room)
        for channel in [self._rooms_channel, *(room.channel for room in self._rooms.values())]:
            if channel.subscribed:
                self._renewals.remember(
                    channel.name, wire.SUBSCRIBE_METHOD, wire.subscribe_params(channel.name, channel.subscribed)
                )


def _to_subscribe(channel: _Channel, events: set[str]) -> set[str]:
    """What to ask the server for so that ``channel`` sends ``events`` (lock held): what it
    was not asked for yet, or everything when its last renewal failed."""
    if channel.unconfirmed:
        return channel.subscribed | events
    return events - channel.subscribed


def _fail_all(room: _Room, error: RelayError) -> None:
    """Nothing more will be heard of this room: fail its handles and the starts waiting for one."""
    for handle in room.handles.values():
        fail(handle.future, error)
    room.handles.clear()
    for _, claim in room.claims:
        fail(claim, error)


def _resolve(
    table: Mapping[str, wire.Listener], listeners: Mapping[str, Handler], where: str
) -> tuple[dict[str, Handler], set[str]]:
    """Check ``listeners`` against ``table``; returns handlers by dispatched event name and the
    wire events to subscribe to."""
    if not listeners:
        raise ValueError(f"{where} needs at least one listener, such as {next(iter(table))}=handler")
    handlers: dict[str, Handler] = {}
    events: set[str] = set()
    for name, handler in listeners.items():
        listener = table.get(name)
        if listener is None:
            raise TypeError(f"{where} has no listener {name!r}; the listeners are: {', '.join(table)}")
        if not callable(handler):
            raise TypeError(
                f"{name} must be callable (it receives a {listener.receives}), not {type(handler).__name__}"
            )
        handlers[listener.event] = handler
        events.update(listener.subscribe)
    return handlers, events


def _deliveries(
    subscriptions: Iterable[VideoSubscription], dispatch: Dispatch
) -> list[tuple[VideoSubscription, str, Any]]:
    return [
        (subscription, event, argument)
        for event, argument in dispatch
        for subscription in subscriptions
        if subscription.handler_for(event) is not None
    ]
