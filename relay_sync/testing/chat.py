"""Chat and PubSub in the emulator: the ``chat.*`` methods, channel history
with paging cursors, members and their state, and ``chat.*`` events sent to
every subscribed session (the publisher's too, when it listens on the channel).

Subscriptions belong to a socket, not to a protocol: when a socket closes its
subscriptions end (its member leaves), and a client that reconnects, even one
that resumed its protocol, must subscribe again, as it must with RELAY. A
session's member id is derived from its protocol, so it stays the same across
reconnects. ``events`` in ``chat.subscribe`` filters what a session receives
(PubSub asks for ``chat.message`` only).

Runs on connection threads (requests, socket ends) and the caller's thread
(``publish`` from a test); one lock guards the channels, held while events are
pushed so every session sees a channel's events in one order.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..rpc import JSONDict
from .media import ok, refuse
from .network import Network
from .server import ServerSession

# Names a subscriber lists in chat.subscribe's "events", per event type it then receives.
WANTS = {
    "chat.channel.message": "chat.message",
    "chat.member.joined": "chat.member.joined",
    "chat.member.updated": "chat.member.updated",
    "chat.member.left": "chat.member.left",
}
PAGE_SIZE = 20  # messages per chat.messages.get page
MAX_HISTORY = 1000  # messages kept per channel; older ones are forgotten
MAX_IDLE_CHANNELS = 10_000  # channels nobody listens on kept for their history and states
_MEMBER_NAMESPACE = uuid.UUID("0c6b7c5e-55a4-4a5e-9d55-6d7b2a3f0c11")


def member_id_of(protocol: str) -> str:
    """The chat member id of the sessions speaking for ``protocol``."""
    return str(uuid.uuid5(_MEMBER_NAMESPACE, protocol))


@dataclass
class Listener:
    session: ServerSession
    member_id: str
    events: set[str] | None  # None: every event (the client did not say)

    def wants(self, event_type: str) -> bool:
        return self.events is None or WANTS[event_type] in self.events


@dataclass
class Channel:
    name: str
    history: deque[JSONDict] = field(default_factory=lambda: deque(maxlen=MAX_HISTORY))  # oldest first
    listeners: dict[int, Listener] = field(default_factory=dict)  # by session number
    states: dict[str, JSONDict] = field(default_factory=dict)  # by member id

    def present(self, member_id: str) -> bool:
        return any(listener.member_id == member_id for listener in self.listeners.values())

    def member(self, member_id: str) -> JSONDict:
        return {"id": member_id, "channel": self.name, "state": dict(self.states.get(member_id, {}))}


class ChatEngine:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.page_size = PAGE_SIZE
        self.outside_member = f"member-{uuid.uuid4().hex[:12]}"  # who emulator.chat_publish speaks for
        self._changed = threading.Condition()  # guards _channels; notified when subscribers change
        self._channels: dict[str, Channel] = {}

    def handlers(self) -> dict[str, Callable[[ServerSession, JSONDict], JSONDict]]:
        """The chat methods, by name (rows of the emulator's method table)."""
        return {
            "chat.subscribe": self.subscribe,
            "chat.unsubscribe": self.unsubscribe,
            "chat.publish": self.publish_request,
            "chat.messages.get": self.get_messages,
            "chat.members.get": self.get_members,
            "chat.member.set_state": self.set_state,
            "chat.member.get_state": self.get_state,
        }

    # -- what tests look at -------------------------------------------------------

    def members(self, channel: str) -> list[str]:
        """Ids of the members subscribed to ``channel`` now."""
        with self._changed:
            found = self._channels.get(channel)
            return list(dict.fromkeys(listener.member_id for listener in found.listeners.values())) if found else []

    def wait_for_members(self, channel: str, count: int, timeout: float = 5.0) -> list[str]:
        """Block until ``channel`` has exactly ``count`` members; returns their ids."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.members(channel)) == count, timeout):
                raise TimeoutError(f"channel {channel!r} did not reach {count} member(s) within {timeout} s")
        return self.members(channel)

    def table_sizes(self) -> dict[str, int]:
        with self._changed:
            return {"chat_channels": len(self._channels)}

    def history(self, channel: str) -> list[JSONDict]:
        """The messages published on ``channel``, oldest first."""
        with self._changed:
            found = self._channels.get(channel)
            return list(found.history) if found else []

    # -- requests (connection threads) ---------------------------------------------

    def subscribe(self, session: ServerSession, params: JSONDict) -> JSONDict:
        names = _channel_names(params.get("channels"))
        events = params.get("events")
        if names is None:
            return refuse("400", "chat.subscribe needs channels: [{name: ...}, ...]")
        if events is not None and (not isinstance(events, list) or not all(isinstance(e, str) for e in events)):
            return refuse("400", "chat.subscribe: events must be a list of event names")
        member_id = member_id_of(session.protocol or "")
        with self._changed:
            for name in names:
                channel = self._channel(name)
                joined = not channel.present(member_id)
                listener = channel.listeners.get(session.number)
                if listener is None:
                    channel.listeners[session.number] = Listener(
                        session, member_id, None if events is None else set(events)
                    )
                elif listener.events is not None:
                    listener.events = None if events is None else listener.events | set(events)
                if joined:
                    self._push(channel, "chat.member.joined", {"channel": name, "member": channel.member(member_id)})
            self._changed.notify_all()
        return ok("Subscribed")

    def unsubscribe(self, session: ServerSession, params: JSONDict) -> JSONDict:
        names = _channel_names(params.get("channels"))
        if names is None:
            return refuse("400", "chat.unsubscribe needs channels: [{name: ...}, ...]")
        with self._changed:
            for name in names:
                self._leave(name, session.number)
            self._changed.notify_all()
        return ok("Unsubscribed")

    def session_ended(self, session: ServerSession) -> None:
        """A socket closed: its subscriptions end with it."""
        with self._changed:
            for name in [n for n, c in self._channels.items() if session.number in c.listeners]:
                self._leave(name, session.number)
            self._changed.notify_all()

    def publish_request(self, session: ServerSession, params: JSONDict) -> JSONDict:
        channel, content, meta = params.get("channel"), params.get("content"), params.get("meta")
        if not isinstance(channel, str) or not channel:
            return refuse("400", "chat.publish needs a channel")
        if content is None:
            return refuse("400", "chat.publish needs content")
        if meta is not None and not isinstance(meta, dict):
            return refuse("400", "chat.publish: meta must be an object")
        self.publish(channel, content, member_id_of(session.protocol or ""), meta)
        return ok("Published")

    def get_messages(self, session: ServerSession, params: JSONDict) -> JSONDict:
        name, cursor = params.get("channel"), params.get("cursor")
        if not isinstance(name, str) or not name:
            return refuse("400", "chat.messages.get needs a channel")
        if cursor is not None and not isinstance(cursor, dict):
            return refuse("400", "chat.messages.get: cursor must be an object")
        with self._changed:
            channel = self._channels.get(name)
            newest_first = list(reversed(channel.history)) if channel else []
        ids = [message["id"] for message in newest_first]
        start, end = 0, self.page_size
        anchor = (cursor or {}).get("after") or (cursor or {}).get("before")
        if anchor is not None:
            if anchor not in ids:
                return refuse("400", f"chat.messages.get: unknown cursor {anchor!r}")
            if (cursor or {}).get("after") is not None:
                start = ids.index(anchor) + 1
                end = start + self.page_size
            else:
                end = ids.index(anchor)
                start = max(0, end - self.page_size)
        page = newest_first[start:end]
        return ok(
            "OK",
            messages=page,
            cursor={
                "before": page[0]["id"] if page else None,
                "after": page[-1]["id"] if page else None,
                "next": page[-1]["id"] if page and end < len(ids) else None,
                "previous": page[0]["id"] if page and start > 0 else None,
            },
        )

    def get_members(self, session: ServerSession, params: JSONDict) -> JSONDict:
        name = params.get("channel")
        if not isinstance(name, str) or not name:
            return refuse("400", "chat.members.get needs a channel")
        with self._changed:
            channel = self._channels.get(name)
            ids = self.members(name)
            members = [channel.member(member_id) for member_id in ids] if channel else []
        return ok("OK", members=members)

    def set_state(self, session: ServerSession, params: JSONDict) -> JSONDict:
        member_id, state = params.get("member_id"), params.get("state")
        names = _channel_names(params.get("channels"))
        if not isinstance(member_id, str) or not member_id:
            return refuse("400", "chat.member.set_state needs a member_id")
        if names is None or not isinstance(state, dict):
            return refuse("400", "chat.member.set_state needs channels and a state object")
        with self._changed:
            for name in names:
                channel = self._channel(name)
                channel.states[member_id] = dict(state)  # the previous state is replaced, not merged
                if channel.present(member_id):
                    self._push(channel, "chat.member.updated", {"channel": name, "member": channel.member(member_id)})
        return ok("OK")

    def get_state(self, session: ServerSession, params: JSONDict) -> JSONDict:
        member_id = params.get("member_id")
        if not isinstance(member_id, str) or not member_id:
            return refuse("400", "chat.member.get_state needs a member_id")
        given = params.get("channels")
        names = _channel_names(given)
        if given is not None and names is None:
            return refuse("400", "chat.member.get_state: channels must be [{name: ...}, ...]")
        with self._changed:
            if names is None:  # no channels given: every channel the member has a state on
                names = [n for n, c in self._channels.items() if member_id in c.states]
            states: JSONDict = {}
            for name in names:
                channel = self._channels.get(name)
                states[name] = {"state": dict(channel.states.get(member_id, {})) if channel else {}}
        return ok("OK", channels=states)

    # -- the shared core ----------------------------------------------------------------

    def publish(self, name: str, content: Any, member_id: str | None = None, meta: JSONDict | None = None) -> str:
        """Publish on channel ``name`` as ``member_id`` (default: someone outside); returns the message id."""
        member_id = member_id or self.outside_member
        with self._changed:
            channel = self._channel(name)
            message: JSONDict = {
                "id": str(uuid.uuid4()),
                "content": content,
                "published_at": time.time(),
                "member": channel.member(member_id),
            }
            if meta is not None:
                message["meta"] = meta
            channel.history.append(message)
            self._push(channel, "chat.channel.message", {"channel": name, "message": message})
        self.net.note("chat", f"{member_id} published on {name!r}: {content!r}")
        return str(message["id"])

    def _channel(self, name: str) -> Channel:
        channel = self._channels.get(name)
        if channel is None:
            if len(self._channels) >= MAX_IDLE_CHANNELS:
                self._forget_idle_channel()
            channel = self._channels[name] = Channel(name)
        return channel

    def _forget_idle_channel(self) -> None:
        for name, channel in self._channels.items():
            if not channel.listeners:
                del self._channels[name]
                return

    def _leave(self, name: str, session_number: int) -> None:
        channel = self._channels.get(name)
        listener = channel.listeners.pop(session_number, None) if channel else None
        if channel is None or listener is None or channel.present(listener.member_id):
            return
        self._push(channel, "chat.member.left", {"channel": name, "member": channel.member(listener.member_id)})

    def _push(self, channel: Channel, event_type: str, params: JSONDict) -> None:
        for listener in list(channel.listeners.values()):
            protocol = listener.session.protocol
            if protocol is not None and listener.wants(event_type):
                self.net.outbox.push(protocol, event_type, params)


def _channel_names(value: Any) -> list[str] | None:
    """Names from ``[{"name": ...}, ...]``; None when that is not what ``value`` is."""
    if not isinstance(value, list) or not value:
        return None
    names = [item.get("name") if isinstance(item, dict) else None for item in value]
    if not all(isinstance(name, str) and name for name in names):
        return None
    return [str(name) for name in names]
