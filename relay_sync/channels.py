"""Channel subscriptions shared by Chat and PubSub: the ``Subscription`` users
hold, the ``chat.subscribe``/``chat.unsubscribe`` requests behind it, the
routing of ``chat.*`` events to the handlers of the channel they name, and
the renewal of every subscription when a session starts again.

Both services use one wire (RELAY has no ``pubsub.*`` methods: PubSub is
Chat without members), so one :class:`ChannelHub` per client keeps every
subscription; a channel leaves the server only when no Chat or PubSub
subscription still holds it.

Threads: ``subscribe``/``unsubscribe`` run in the caller's thread and block
on the server's answer. ``on_event`` runs on the I/O thread: it only builds
the typed object and hands the handler to the channel's ordered runner, so
handlers run on the handler pool, one at a time per channel, in the order
the server sent the events. ``session_started`` runs on the connecting or
I/O thread and hands the (blocking) renewal to the handler pool; a renewal
the server refuses (or leaves unanswered) on a live link is tried again a few
times, from the timer thread through the pool.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable

from .errors import LINK_DOWN_ERRORS, RelayError, RelayTimeoutError
from .ordered import OrderedRunner
from .rpc import JSONDict
from .session import Session

log = logging.getLogger(__name__)

SUBSCRIBE_METHOD = "chat.subscribe"
UNSUBSCRIBE_METHOD = "chat.unsubscribe"
PUBLISH_METHOD = "chat.publish"

# What a request may end in without the server refusing it.
UNANSWERED: tuple[type[RelayError], ...] = (*LINK_DOWN_ERRORS, RelayTimeoutError)

# A refused or unanswered renewal is tried again this many times, after 1, 2, 4... seconds.
RENEWAL_RETRIES = 4
FIRST_RENEWAL_RETRY_AFTER = 1.0

# Event types the server sends (the event_type of a signalwire.event).
EVENT_CHANNEL_MESSAGE = "chat.channel.message"
EVENT_MEMBER_JOINED = "chat.member.joined"
EVENT_MEMBER_UPDATED = "chat.member.updated"
EVENT_MEMBER_LEFT = "chat.member.left"

# What chat.subscribe's "events" list names for each event type: the realtime
# SDK asks for "chat.message", not the "chat.channel.message" it then receives.
SUBSCRIBE_NAMES: Mapping[str, str] = {
    EVENT_CHANNEL_MESSAGE: "chat.message",
    EVENT_MEMBER_JOINED: EVENT_MEMBER_JOINED,
    EVENT_MEMBER_UPDATED: EVENT_MEMBER_UPDATED,
    EVENT_MEMBER_LEFT: EVENT_MEMBER_LEFT,
}


@dataclass(frozen=True)
class Route:
    """Where one event type goes for one subscription: ``handler(parse(channel, params))``."""

    handler: Callable[[Any], Any]
    parse: Callable[[str, JSONDict], Any]


# -- input checks: bad input fails in the caller's thread, before anything is sent --


def channel_name(value: Any, what: str = "channel") -> str:
    """``value`` if it is a usable channel name, else ``ValueError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    return value


def channel_list(value: Any) -> list[str]:
    """A list of channel names without repeats, in the given order; refuses a bare string,
    which would otherwise be read as a list of one-letter channels."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"channels must be a list of channel names, not the string {value!r}: write [{value!r}]")  # noqa: TRY004
    if not isinstance(value, Iterable):
        raise ValueError(f"channels must be a list of channel names, not {value!r}")  # noqa: TRY004
    names = [channel_name(item, "each channel") for item in value]
    if not names:
        raise ValueError("channels must name at least one channel")
    return list(dict.fromkeys(names))


def json_value(value: Any, what: str) -> Any:
    """``value`` if JSON can carry it (no NaN, no sets, no objects), else ``ValueError``."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be JSON (str, number, bool, list, dict): {error}") from None
    return value


def json_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, not {type(value).__name__}")  # noqa: TRY004
    return dict(json_value(value, what))


def wire_channels(channels: Iterable[str]) -> list[JSONDict]:
    """Channels as the chat methods send them: ``[{"name": ...}, ...]``."""
    return [{"name": name} for name in channels]


# -- subscriptions ------------------------------------------------------------------------


class Subscription:
    """Handlers listening on channels, from ``client.chat.listen()`` or ``client.pubsub.listen()``.

    ``close()`` unsubscribes (the channels leave the server once no other
    subscription holds them) and is idempotent; a ``with`` block closes it.
    """

    def __init__(self, hub: ChannelHub, kind: str, channels: list[str], closed: threading.Event) -> None:
        self._hub = hub
        self.kind = kind  # "chat" or "pubsub", for repr and log lines
        self.channels: tuple[str, ...] = tuple(channels)
        self._closed = closed  # set by the hub, which owns the subscription's routes and state

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Stop the handlers and unsubscribe; does nothing the second time.

        No event arriving after ``close()`` returns reaches a handler (one
        already handed to the pool may still be running or queued).

        Raises ``RelayError`` when the server refuses the unsubscribe (the
        handlers are stopped anyway). While the link is down (reconnecting) or
        after the client disconnected it only stops the handlers: the next
        session does not subscribe the channels again.
        """
        if self._closed.is_set():
            return
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Subscription {self.kind} channels={list(self.channels)!r} {state}>"


@dataclass(frozen=True)
class Listening:
    """What the hub keeps for one subscription: its routes, and the flag its
    ``Subscription`` handle reads as ``closed`` (only the hub sets it)."""

    subscription: Subscription
    routes: Mapping[str, Route]
    closed: threading.Event

    @property
    def channels(self) -> tuple[str, ...]:
        return self.subscription.channels

    def subscribe_names(self) -> list[str]:
        """What this subscription asks the server for, in chat.subscribe's ``events``."""
        return [SUBSCRIBE_NAMES[event_type] for event_type in self.routes]


class ChannelHub:
    """Every Chat and PubSub subscription of one client, and the routing of their events."""

    def __init__(self, session: Session) -> None:
        self._session = session
        # _lock guards _subscriptions and _runners (the I/O thread reads them for every event).
        self._lock = threading.Lock()
        self._subscriptions: list[Listening] = []
        self._runners: dict[str, OrderedRunner] = {}
        # Serialises subscribe/unsubscribe/renew requests, so that a channel one
        # subscription leaves and another joins never reaches the server as
        # "subscribe, then unsubscribe".
        self._wire_lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: fresh locks, and runners on the child's handler pool."""
        self._lock = threading.Lock()
        self._wire_lock = threading.Lock()
        self._runners = {channel: self._session.ordered_runner(f"channel {channel!r}") for channel in self._runners}

    # -- caller's thread -----------------------------------------------------------

    def subscribe(self, kind: str, channels: list[str], routes: Mapping[str, Route]) -> Subscription:
        """Register the handlers, then block until the server confirmed ``chat.subscribe``."""
        closed = threading.Event()
        subscription = Subscription(self, kind, channels, closed)
        listening = Listening(subscription, dict(routes), closed)
        with self._wire_lock:
            # Handlers are in place before the request goes out: the server may send
            # the first event right behind its answer.
            with self._lock:
                self._subscriptions.append(listening)
                for channel in channels:
                    if channel not in self._runners:
                        self._runners[channel] = self._session.ordered_runner(f"channel {channel!r}")
            try:
                self._session.request(
                    SUBSCRIBE_METHOD,
                    {"channels": wire_channels(channels), "events": listening.subscribe_names()},
                )
            except BaseException:
                self._forget(subscription)
                raise
        log.debug("subscribed to %d %s channel(s)", len(channels), kind)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._wire_lock:
            released = self._forget(subscription)
            if not released:
                return
            # The server forgets a connection's subscriptions with it, and the renewal
            # on the next session leaves these channels out: with the link down there is
            # nothing to undo, and a request would only wait in the backlog, holding the
            # wire lock, to time out.
            if not self._session.connected():
                log.debug("chat.unsubscribe not sent for %d channel(s): the link is down", len(released))
                return
            try:
                self._session.request(UNSUBSCRIBE_METHOD, {"channels": wire_channels(released)})
            except UNANSWERED as error:
                # The link went meanwhile (the same as above), or the server is slow:
                # the handlers are stopped and events on these channels are dropped.
                log.info("chat.unsubscribe not answered: %s", error)

    def _forget(self, subscription: Subscription) -> list[str]:
        """Drop ``subscription``; returns the channels no other subscription holds."""
        with self._lock:
            listening = next((each for each in self._subscriptions if each.subscription is subscription), None)
            if listening is None:  # closed already
                return []
            listening.closed.set()
            self._subscriptions.remove(listening)
            held = {channel for other in self._subscriptions for channel in other.channels}
            released = [channel for channel in subscription.channels if channel not in held]
            for channel in released:
                # Callbacks already queued on the runner still run; the runner drains its queue.
                self._runners.pop(channel, None)
        return released

    def close(self, error: RelayError) -> None:
        """The client closed: no handler runs any more (nothing to tell a closed session)."""
        with self._lock:
            subscriptions, self._subscriptions = self._subscriptions, []
            self._runners.clear()
        for listening in subscriptions:
            listening.closed.set()

    # -- I/O thread -----------------------------------------------------------------

    def on_event(self, envelope: JSONDict) -> None:
        """A ``chat.*`` event: hand each subscription's handler to the channel's runner."""
        event_type = envelope.get("event_type")
        params = envelope.get("params")
        channel = params.get("channel") if isinstance(params, dict) else None
        if not isinstance(event_type, str) or not isinstance(channel, str) or not isinstance(params, dict):
            log.warning("dropping a chat event without params.channel: %s", event_type)
            return
        with self._lock:
            runner = self._runners.get(channel)
            routes = [
                s.routes[event_type] for s in self._subscriptions if channel in s.channels and event_type in s.routes
            ]
        if runner is None or not routes:
            log.debug("dropping %s on channel %r: nobody listens", event_type, channel)
            return
        parsed: dict[Callable[[str, JSONDict], Any], Any] = {}  # Chat and PubSub read the same event differently
        for route in routes:
            if route.parse not in parsed:
                try:
                    parsed[route.parse] = route.parse(channel, params)
                except (KeyError, TypeError, ValueError) as error:
                    log.warning("dropping a malformed %s on channel %r: %s", event_type, channel, error)
                    return
            runner.submit(route.handler, parsed[route.parse])

    # -- connecting thread or I/O thread ----------------------------------------------

    def session_started(self, resumed: bool) -> None:
        """A session was authenticated: subscribe again to every channel still held.

        The server keeps subscriptions per connection, so a new socket, even one
        that resumed its protocol, starts with none (the realtime SDK renews them
        after every reconnect too). The request blocks, so it runs on the pool.
        """
        with self._lock:
            if not self._subscriptions:
                return
        self._session.run_user(self._renew, 0, what="chat subscription renewal")

    def _renew(self, attempt: int) -> None:
        with self._wire_lock:
            with self._lock:
                channels = list(dict.fromkeys(c for s in self._subscriptions for c in s.channels))
                names = list(dict.fromkeys(n for s in self._subscriptions for n in s.subscribe_names()))
            if not channels:
                return
            try:
                self._session.request(SUBSCRIBE_METHOD, {"channels": wire_channels(channels), "events": names})
            except LINK_DOWN_ERRORS as error:
                # Closing, or the socket went again: the next session start renews.
                log.info("chat subscriptions not renewed: %s", error)
                return
            except RelayError as error:
                # Refused, or unanswered on a live link: the subscriptions look open
                # but hear nothing, so try again (a later session start renews too).
                self._retry_renewal(attempt, len(channels), error)
                return
        log.info("renewed the subscription to %d chat channel(s)", len(channels))

    def _retry_renewal(self, attempt: int, count: int, error: RelayError) -> None:
        if attempt >= RENEWAL_RETRIES:
            log.error("could not renew the subscription to %d chat channel(s), giving up: %s", count, error)
            return
        delay = FIRST_RENEWAL_RETRY_AFTER * 2**attempt
        log.error(
            "could not renew the subscription to %d chat channel(s) (%s): no message arrives on them; "
            "trying again in %.0f s",
            count,
            error,
            delay,
        )
        try:
            self._session.call_later(
                delay, lambda: self._session.run_user(self._renew, attempt + 1, what="chat subscription renewal")
            )
        except RelayError as closed:  # the client closed meanwhile
            log.debug("not retrying the chat renewal: %s", closed)
