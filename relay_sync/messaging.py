"""SMS/MMS and tasks over the RELAY socket: ``Message`` and the
MessagingService behind ``RelayClient.send_message``, ``on_message``,
``on_task`` and ``deliver_task``.

``send_message`` runs in the caller's thread and blocks on the
``messaging.send`` response. ``on_event`` runs on the I/O thread: it only
updates message state, settles futures and hands user code (handlers,
listeners, ``on_completed``) to the handler pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from . import rest
from .constants import (
    EVENT_MESSAGING_STATE,
    MESSAGE_STATE_QUEUED,
    MESSAGE_STATE_RECEIVED,
    MESSAGE_TERMINAL_STATES,
)
from .errors import RelayError, SessionLostError
from .events import (
    MessageReceiveEvent,
    MessageStateEvent,
    RelayEvent,
    TaskEvent,
    parse_event,
)
from .futures import HandoffFuture, fail, settle, wait_result
from .rpc import SESSION_PROTOCOL, JSONDict

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

Handler = TypeVar("Handler", bound=Callable[..., Any])
MessageListener = Callable[[MessageStateEvent], Any]
# Runs with the terminal MessageStateEvent, as in the async SDK.
CompletedCallback = Callable[[RelayEvent], Any]

# State events for message ids nobody has registered yet are kept this long,
# for at most this many ids (see MessagingService._keep_early for why).
EARLY_EVENT_MAX_AGE = 30.0
EARLY_EVENT_MAX_IDS = 1000
# A message passes through at most six states; more events for one unknown id are noise.
EARLY_EVENTS_PER_ID = 8


class Message:
    """One SMS/MMS: returned by ``client.send_message()`` (state ``queued``,
    then the server's ``messaging.state`` updates) or handed to
    ``on_message`` handlers (state ``received``).

    ``future`` is a real ``concurrent.futures.Future`` that resolves with the
    terminal ``MessageStateEvent`` (``delivered``, ``undelivered`` or
    ``failed``), so ``concurrent.futures.wait()`` works on a set of messages.
    It fails with ``RelayError`` when the client closes first. An inbound
    message is done from the start: its result is its ``messaging.receive``
    event.
    """

    def __init__(
        self,
        session: Session,
        *,
        message_id: str,
        context: str | None,
        direction: str,
        from_number: str | None,
        to_number: str | None,
        body: str | None,
        media: Sequence[str],
        tags: Sequence[str],
        state: str,
        segments: int | None = None,
        on_completed: CompletedCallback | None = None,
    ) -> None:
        self._message_id = message_id
        self._context = context
        self._direction = direction
        self._from_number = from_number
        self._to_number = to_number
        self._body = body
        self._media = list(media)
        self._tags = list(tags)
        self._state = state
        self._reason: str | None = None
        self._segments = segments
        self._on_completed = on_completed
        self.future: Future[RelayEvent] = HandoffFuture(session.handler_pool())
        # _lock guards the state fields above and the listeners.
        self._lock = threading.Lock()
        self._listeners: list[MessageListener] = []
        # Listeners and on_completed run one after another on the handler pool,
        # so they see the states in the order the server sent them (as a call's do).
        self._callbacks = session.ordered_runner(f"message {message_id!r}")

    @classmethod
    def _inbound(cls, session: Session, event: MessageReceiveEvent) -> Message:
        message = cls(
            session,
            message_id=event.message_id or "",
            context=event.context,
            direction=event.direction or "inbound",
            from_number=event.from_number,
            to_number=event.to_number,
            body=event.body,
            media=event.media,
            tags=event.tags,
            state=event.message_state or MESSAGE_STATE_RECEIVED,
            segments=event.segments,
        )
        settle(message.future, event)  # nothing follows an inbound message
        return message

    # -- properties ----------------------------------------------------------

    @property
    def message_id(self) -> str:
        return self._message_id

    @property
    def context(self) -> str | None:
        return self._context

    @property
    def direction(self) -> str:
        """``outbound`` for a sent message, ``inbound`` for a received one."""
        return self._direction

    @property
    def from_number(self) -> str | None:
        return self._from_number

    @property
    def to_number(self) -> str | None:
        return self._to_number

    @property
    def body(self) -> str | None:
        return self._body

    @property
    def media(self) -> list[str]:
        """URLs of the attached media (MMS)."""
        return list(self._media)

    @property
    def segments(self) -> int | None:
        """How many SMS segments the body needed, once the server said."""
        return self._segments

    @property
    def state(self) -> str:
        """The latest state: ``queued initiated sent delivered undelivered failed``, or ``received``."""
        return self._state

    @property
    def reason(self) -> str | None:
        """Why the message was not delivered, when the server said."""
        return self._reason

    @property
    def tags(self) -> list[str]:
        return list(self._tags)

    @property
    def is_done(self) -> bool:
        """True once the message reached a terminal state (or the client closed)."""
        return self.future.done()

    @property
    def result(self) -> RelayEvent | None:
        """The terminal event once done; ``None`` before, or when the client closed first."""
        if not self.future.done() or self.future.exception() is not None:
            return None
        return self.future.result()

    # -- waiting and listening -----------------------------------------------

    def wait(self, timeout: float | None = None) -> RelayEvent:
        """Block until the message is ``delivered``, ``undelivered`` or ``failed``; returns that event.

        Raises ``TimeoutError`` (a ``RelayTimeoutError``) when ``timeout``
        seconds pass first, leaving the message usable, and ``RelayError``
        when the client closes before the outcome is known.
        """
        event: RelayEvent = wait_result(self.future, timeout, f"message {self._message_id} (state {self._state})")
        return event

    def on(self, handler: MessageListener) -> MessageListener:
        """Call ``handler(event)`` on the handler pool for each later ``messaging.state`` event.

        Listeners run in the order they were added, one event at a time, in
        the order the server sent the events. Usable as a decorator.
        """
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        with self._lock:
            self._listeners.append(handler)
        return handler

    # -- updates (I/O thread, or the sender's thread replaying early events) --

    def _apply(self, event: MessageStateEvent) -> None:
        """Take one ``messaging.state`` event; settles ``future`` on a terminal state."""
        state = event.message_state
        terminal = state in MESSAGE_TERMINAL_STATES
        with self._lock:
            if self.future.done():
                log.debug("ignoring a state event for message %s, which is already done", self._message_id)
                return
            if state is not None:
                self._state = state
            if event.reason is not None:
                self._reason = event.reason
            if event.segments is not None:
                self._segments = event.segments
            # Handed over under the lock: events of one message queue in the order applied.
            for listener in self._listeners:
                self._callbacks.submit(listener, event)
            if terminal and self._on_completed is not None:
                self._callbacks.submit(self._on_completed, event, what="on_completed callback")
        if terminal:
            settle(self.future, event)

    def __repr__(self) -> str:
        return f"<Message {self._message_id} {self._direction} state={self._state!r}>"


class _EarlyEvents:
    __slots__ = ("events", "first_seen")

    def __init__(self, first_seen: float) -> None:
        self.first_seen = first_seen
        self.events: list[MessageStateEvent] = []


class MessagingService:
    """Outbound messages in flight, inbound message and task handlers."""

    def __init__(self, session: Session, rest_options: Mapping[str, Any]) -> None:
        self._session = session
        self._rest_options = dict(rest_options)
        # _lock guards _outbound, _early and _closed_error; it is held while an
        # event is applied to a message so replayed and live events never interleave.
        self._lock = threading.Lock()
        self._outbound: dict[str, Message] = {}
        self._early: OrderedDict[str, _EarlyEvents] = OrderedDict()
        self._closed_error: BaseException | None = None
        self._message_handlers: list[Callable[[Message], Any]] = []
        self._task_handlers: list[Callable[[TaskEvent], Any]] = []
        # The session's protocol, and the last one a reconnect did not resume (see _session_started).
        self._protocol: str | None = None
        self._lost_protocol: str | None = None
        session.on_session_start(self._session_started)

    def after_fork(self) -> None:
        """In a forked child: the parent's messages are not ours; keep only the handlers."""
        self._lock = threading.Lock()
        self._outbound = {}
        self._early = OrderedDict()
        self._closed_error = None
        self._protocol = self._lost_protocol = None

    @property
    def in_flight(self) -> int:
        """Outbound messages still waiting for their final state."""
        return len(self._outbound)

    @property
    def early_ids(self) -> int:
        """Message ids whose state events came before the message was known, held for replay."""
        with self._lock:
            return len(self._early)

    # -- registration (any thread) -------------------------------------------

    def on_message(self, handler: Handler) -> Handler:
        self._message_handlers.append(_check_callable(handler))
        return handler

    def on_task(self, handler: Handler) -> Handler:
        self._task_handlers.append(_check_callable(handler))
        return handler

    # -- sending (caller's thread) -------------------------------------------

    def send_message(
        self,
        *,
        to_number: str,
        from_number: str,
        body: str | None = None,
        media: None | str | Sequence[str] = None,
        context: str | None = None,
        tags: None | str | Sequence[str] = None,
        region: str | None = None,
        on_completed: CompletedCallback | None = None,
    ) -> Message:
        _check_number("to_number", to_number)
        _check_number("from_number", from_number)
        media_urls = _string_list("media", media)
        tag_list = _string_list("tags", tags)
        if not body and not media_urls:
            raise ValueError("send_message needs body=... or media=[...] (or both)")
        if body is not None and not isinstance(body, str):
            raise ValueError(f"body must be a string, not {type(body).__name__}")
        if on_completed is not None:
            _check_callable(on_completed)
        # Without a context, the session's protocol: filled in as the frame goes out, since
        # one queued while reconnecting (or sent first in a forked child) cannot know it yet.
        params: JSONDict = {
            "context": context or SESSION_PROTOCOL,
            "to_number": to_number,
            "from_number": from_number,
        }
        if body:
            params["body"] = body
        if media_urls:
            params["media"] = media_urls
        if tag_list:
            params["tags"] = tag_list
        if region is not None:
            params["region"] = region

        result, filled_with = self._session.request_on_session("messaging.send", params)
        # The protocol the frame actually carried: the session may have changed since.
        context = context or filled_with
        message_id = result.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise RelayError("bad_response", "messaging.send was accepted but its result has no message_id")
        message = Message(
            self._session,
            message_id=message_id,
            context=context,
            direction="outbound",
            from_number=from_number,
            to_number=to_number,
            body=body,
            media=media_urls,
            tags=tag_list,
            state=MESSAGE_STATE_QUEUED,
            on_completed=on_completed,
        )
        self._register(message)
        return message

    def _register(self, message: Message) -> None:
        """Track an accepted message, first applying state events that beat us here."""
        with self._lock:
            early = self._early.pop(message.message_id, None)
            for event in early.events if early is not None else ():
                message._apply(event)
            if message.is_done:
                return
            if self._closed_error is not None:
                fail(message.future, self._closed_error)
                return
            if message.context is not None and message.context == self._lost_protocol:
                fail(message.future, _session_lost())  # accepted just before the session was lost
                return
            self._outbound[message.message_id] = message

    def _session_started(self, resumed: bool) -> None:
        """I/O thread (or connect()): a session was authenticated.

        The server addresses a message's state events to the context it was
        sent on, by default the session's protocol. When a reconnect does not
        resume the session, that protocol is gone: messages sent on it would
        wait (and stay in the table) forever, so they fail now. Messages sent
        on a named context the client still receives keep waiting.
        """
        previous, self._protocol = self._protocol, self._session.relay_protocol()
        if resumed or previous is None or previous == self._protocol:
            return
        with self._lock:
            self._lost_protocol = previous
            orphaned = [m for m in self._outbound.values() if m.context == previous]
            for message in orphaned:
                del self._outbound[message.message_id]
        if orphaned:
            log.warning("%d message(s) will get no more state updates: %s", len(orphaned), _session_lost().message)
        for message in orphaned:
            fail(message.future, _session_lost())

    def deliver_task(self, context: str, message: JSONDict) -> None:
        rest.deliver_task(context, message, **self._rest_options)

    # -- events (I/O thread: never blocks, never runs user code) -------------

    def on_event(self, envelope: JSONDict) -> None:
        event = parse_event(envelope)
        if isinstance(event, MessageStateEvent):
            self._on_state(event)
        elif isinstance(event, MessageReceiveEvent):
            self._on_receive(event)
        elif isinstance(event, TaskEvent):
            self._on_task(event)
        else:
            log.debug("dropping an event nobody handles: %s", event.event_type)

    def _on_state(self, event: MessageStateEvent) -> None:
        message_id = event.message_id
        if message_id is None:
            log.warning("dropping a %s event without a message_id", EVENT_MESSAGING_STATE)
            return
        with self._lock:
            message = self._outbound.get(message_id)
            if message is None:
                self._keep_early(message_id, event)
                return
            message._apply(event)
            if message.is_done:
                del self._outbound[message_id]

    def _keep_early(self, message_id: str, event: MessageStateEvent) -> None:
        """Hold a state event for a message id nobody registered (yet). Called with _lock held.

        The server may send ``messaging.state`` right behind (or even ahead
        of) the ``messaging.send`` response, and this thread handles those
        events before the sender's thread, woken by the response, has built
        and registered its Message. Keying a placeholder by request would not
        close the gap: the events carry only the message_id, known from the
        response. So events for unknown ids wait here and ``_register``
        replays them, under the same lock, before the message goes live.
        Events for ids that never register (a send that timed out, a raw
        ``execute("messaging.send")``) are dropped by age or count.
        """
        now = time.monotonic()
        while self._early:
            oldest_id, oldest = next(iter(self._early.items()))
            if now - oldest.first_seen < EARLY_EVENT_MAX_AGE and len(self._early) < EARLY_EVENT_MAX_IDS:
                break
            del self._early[oldest_id]
            log.debug("dropped %d state event(s) for unknown message %s", len(oldest.events), oldest_id)
        early = self._early.get(message_id)
        if early is None:
            early = self._early[message_id] = _EarlyEvents(now)
        if len(early.events) < EARLY_EVENTS_PER_ID:
            early.events.append(event)

    def _on_receive(self, event: MessageReceiveEvent) -> None:
        if not self._message_handlers:
            log.warning("inbound message on context %r dropped: no on_message handler", event.context)
            return
        message = Message._inbound(self._session, event)
        for handler in self._message_handlers:
            self._session.run_user(handler, message, what="on_message handler")

    def _on_task(self, event: TaskEvent) -> None:
        if not self._task_handlers:
            log.warning("task on context %r dropped: no on_task handler", event.context)
            return
        for handler in self._task_handlers:
            self._session.run_user(handler, event, what="on_task handler")

    def close(self, error: BaseException) -> None:
        """Fail every message still waiting for its final state (the client is closing)."""
        with self._lock:
            if self._closed_error is None:
                self._closed_error = error
            waiting = list(self._outbound.values())
            self._outbound.clear()
            self._early.clear()
        for message in waiting:
            fail(message.future, error)


def _session_lost() -> SessionLostError:
    return SessionLostError("the RELAY session the message was sent on was not resumed after a reconnect")


def _check_callable(handler: Handler) -> Handler:
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")
    return handler


def _check_number(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string such as '+15551234567', not {value!r}")


def _string_list(name: str, value: None | str | Sequence[str]) -> list[str]:
    """``None`` → ``[]``, one string → ``[it]``, a sequence of strings → a list of them."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise ValueError(f"{name} must be a list of non-empty strings, not {value!r}")
    return items
