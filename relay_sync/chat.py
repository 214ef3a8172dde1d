"""Chat over the RELAY session: ``client.chat`` (:class:`ChatService`) and
the values it hands out, ``ChatMessage``, ``ChatMember`` and ``ChatMessages``.

Every method runs in the caller's thread and blocks on the server's answer
(``listen`` until the subscription is confirmed, ``publish`` until the
message is accepted). The handlers given to ``listen`` run on the handler
pool, in order per channel (see :mod:`relay_sync.channels`); the parse
functions here run on the I/O thread and only read the event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from .channels import (
    EVENT_CHANNEL_MESSAGE,
    EVENT_MEMBER_JOINED,
    EVENT_MEMBER_LEFT,
    EVENT_MEMBER_UPDATED,
    PUBLISH_METHOD,
    ChannelHub,
    Route,
    Subscription,
    channel_list,
    channel_name,
    json_object,
    json_value,
    wire_channels,
)
from .rpc import JSONDict
from .session import Session

GET_MESSAGES_METHOD = "chat.messages.get"
GET_MEMBERS_METHOD = "chat.members.get"
SET_MEMBER_STATE_METHOD = "chat.member.set_state"
GET_MEMBER_STATE_METHOD = "chat.member.get_state"

CURSOR_KEYS = ("before", "after")

ChatHandler = Optional[Callable[[Any], Any]]


@dataclass(frozen=True)
class ChatMember:
    """A member of a chat channel and its state there (a dict; empty when none was set)."""

    id: str
    channel: str
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatMessage:
    """A message published on a chat channel. ``published_at`` is an aware UTC
    ``datetime`` and ``member`` the sender, each ``None`` if the server did not say."""

    id: str
    channel: str
    content: Any
    meta: Any
    member: ChatMember | None
    published_at: datetime | None


@dataclass(frozen=True)
class ChatMessages:
    """A page of a channel's history, newest first.

    ``cursor`` is the server's paging cursor (a dict with ``before``/``after``
    message ids and ``next``, set while older messages remain), or ``None``.
    Pass ``cursor={"after": page.cursor["after"]}`` for the next, older page.
    """

    messages: list[ChatMessage]
    cursor: dict[str, Any] | None

    @property
    def has_more(self) -> bool:
        """True when the server says older messages remain."""
        return bool(self.cursor and self.cursor.get("next"))


# -- reading the wire (I/O thread for events, caller's thread for results) -----------


def published_at(value: Any) -> datetime | None:
    """The server's ``published_at`` (epoch seconds) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # out of the platform's range
        return None


def parse_member(channel: str, member: Any) -> ChatMember:
    if not isinstance(member, dict) or not isinstance(member.get("id"), str):
        raise ValueError("a member without an id")  # noqa: TRY004
    state = member.get("state")
    own_channel = member.get("channel")
    return ChatMember(
        id=member["id"],
        channel=own_channel if isinstance(own_channel, str) else channel,
        state=dict(state) if isinstance(state, dict) else {},
    )


def parse_message(channel: str, message: Any) -> ChatMessage:
    if not isinstance(message, dict) or not isinstance(message.get("id"), str):
        raise ValueError("a message without an id")  # noqa: TRY004
    member = message.get("member")
    return ChatMessage(
        id=message["id"],
        channel=channel,
        content=message.get("content"),
        meta=message.get("meta"),
        member=parse_member(channel, member) if member is not None else None,
        published_at=published_at(message.get("published_at")),
    )


def message_event(channel: str, params: JSONDict) -> ChatMessage:
    """``chat.channel.message`` → ``ChatMessage``."""
    return parse_message(channel, params.get("message"))


def member_event(channel: str, params: JSONDict) -> ChatMember:
    """``chat.member.joined/updated/left`` → ``ChatMember``."""
    return parse_member(channel, params.get("member"))


def publish_params(channel: Any, content: Any, meta: Any) -> JSONDict:
    """``chat.publish`` params (Chat and PubSub send the same), after checking the input."""
    params: JSONDict = {"channel": channel_name(channel)}
    if content is None:
        raise ValueError("content is required (a string, or any JSON value)")
    params["content"] = json_value(content, "content")
    if meta is not None:
        params["meta"] = json_object(meta, "meta")
    return params


def handler_routes(
    handlers: Mapping[str, ChatHandler], parsers: Mapping[str, Callable[[str, JSONDict], Any]]
) -> dict[str, Route]:
    """Routes for the handlers given (by event type), refusing anything not callable."""
    routes: dict[str, Route] = {}
    for event_type, handler in handlers.items():
        if handler is None:
            continue
        if not callable(handler):
            raise ValueError(f"the handler for {event_type} must be callable, not {handler!r}")  # noqa: TRY004
        routes[event_type] = Route(handler, parsers[event_type])
    if not routes:
        raise ValueError("give at least one handler (on_message=...)")
    return routes


CHAT_PARSERS: Mapping[str, Callable[[str, JSONDict], Any]] = {
    EVENT_CHANNEL_MESSAGE: message_event,
    EVENT_MEMBER_JOINED: member_event,
    EVENT_MEMBER_UPDATED: member_event,
    EVENT_MEMBER_LEFT: member_event,
}


class ChatService:
    """``client.chat``: channels with members, member state and history."""

    def __init__(self, hub: ChannelHub, session: Session) -> None:
        self._hub = hub
        self._request = session.request

    def listen(
        self,
        channels: list[str],
        *,
        on_message: ChatHandler = None,
        on_member_joined: ChatHandler = None,
        on_member_updated: ChatHandler = None,
        on_member_left: ChatHandler = None,
    ) -> Subscription:
        """Subscribe to ``channels``; returns once the server confirmed it.

        ``on_message(ChatMessage)`` and ``on_member_*(ChatMember)`` run on the
        handler pool, one at a time per channel, in the order the server sent
        them; what they raise is logged. Only the events with a handler are
        asked for. The subscription is renewed after a reconnect. Raises
        ``ValueError`` for bad channels or no handler, ``RelayError`` when the
        server refuses.
        """
        names = channel_list(channels)
        routes = handler_routes(
            {
                EVENT_CHANNEL_MESSAGE: on_message,
                EVENT_MEMBER_JOINED: on_member_joined,
                EVENT_MEMBER_UPDATED: on_member_updated,
                EVENT_MEMBER_LEFT: on_member_left,
            },
            CHAT_PARSERS,
        )
        return self._hub.subscribe("chat", names, routes)

    def publish(self, channel: str, content: Any, meta: dict[str, Any] | None = None) -> None:
        """Publish ``content`` (any JSON value) on ``channel``; returns once the server accepted it.

        Subscribers of the channel, this client included, receive it as a ``ChatMessage``.
        """
        self._request(PUBLISH_METHOD, publish_params(channel, content, meta))

    def get_messages(self, channel: str, cursor: Mapping[str, Any] | None = None) -> ChatMessages:
        """A page of ``channel``'s history, newest first. ``cursor`` is ``{"after": id}``
        (older messages) or ``{"before": id}`` (newer), usually from the last page's cursor."""
        params: JSONDict = {"channel": channel_name(channel)}
        if cursor is not None:
            params["cursor"] = paging_cursor(cursor)
        result = self._request(GET_MESSAGES_METHOD, params)
        name = params["channel"]
        raw_messages = result.get("messages")
        messages = [parse_message(name, m) for m in raw_messages] if isinstance(raw_messages, list) else []
        raw_cursor = result.get("cursor")
        return ChatMessages(messages=messages, cursor=dict(raw_cursor) if isinstance(raw_cursor, dict) else None)

    def get_members(self, channel: str) -> list[ChatMember]:
        """The members present on ``channel`` now, with their state."""
        name = channel_name(channel)
        result = self._request(GET_MEMBERS_METHOD, {"channel": name})
        members = result.get("members")
        return [parse_member(name, m) for m in members] if isinstance(members, list) else []

    def set_member_state(self, member_id: str, channels: list[str], state: dict[str, Any]) -> None:
        """Replace ``member_id``'s state on each of ``channels`` with ``state`` (a JSON dict)."""
        params: JSONDict = {
            "member_id": channel_name(member_id, "member_id"),
            "channels": wire_channels(channel_list(channels)),
            "state": json_object(state, "state"),
        }
        self._request(SET_MEMBER_STATE_METHOD, params)

    def get_member_state(self, member_id: str, channels: list[str]) -> dict[str, dict[str, Any]]:
        """``member_id``'s state on each of ``channels``: ``{channel: state}``."""
        params: JSONDict = {
            "member_id": channel_name(member_id, "member_id"),
            "channels": wire_channels(channel_list(channels)),
        }
        result = self._request(GET_MEMBER_STATE_METHOD, params)
        by_channel = result.get("channels")
        if not isinstance(by_channel, dict):
            return {}
        states: dict[str, dict[str, Any]] = {}
        for name, entry in by_channel.items():
            # The server wraps each state: {"general": {"state": {...}}}.
            state = entry.get("state") if isinstance(entry, dict) else None
            states[name] = dict(state) if isinstance(state, dict) else {}
        return states


def paging_cursor(cursor: Mapping[str, Any]) -> JSONDict:
    if not isinstance(cursor, Mapping):
        raise ValueError(f"cursor must be a dict like {{'after': id}}, not {cursor!r}")  # noqa: TRY004
    given = [key for key in CURSOR_KEYS if cursor.get(key) is not None]
    if len(given) != 1:
        raise ValueError(f"cursor needs exactly one of 'before' or 'after', got {dict(cursor)!r}")
    key = given[0]
    return {key: channel_name(cursor[key], f"cursor[{key!r}]")}
