"""PubSub over the RELAY session: ``client.pubsub`` (:class:`PubSubService`)
and ``PubSubMessage``.

PubSub is Chat's wire without members: ``chat.subscribe`` asking only for
messages, ``chat.publish``, and ``chat.channel.message`` events read without
their ``member``. ``listen`` and ``publish`` run in the caller's thread and
block on the server's answer; handlers run on the handler pool, in order
per channel (see :mod:`relay_sync.channels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from .channels import EVENT_CHANNEL_MESSAGE, PUBLISH_METHOD, ChannelHub, Subscription, channel_list
from .chat import handler_routes, message_event, publish_params
from .rpc import JSONDict
from .session import Session


@dataclass(frozen=True)
class PubSubMessage:
    """A message published on a PubSub channel; ``published_at`` is an aware UTC ``datetime``."""

    id: str
    channel: str
    content: Any
    meta: Any
    published_at: datetime | None


def pubsub_message_event(channel: str, params: JSONDict) -> PubSubMessage:
    """``chat.channel.message`` → ``PubSubMessage`` (the sender is left out: PubSub has no members)."""
    message = message_event(channel, params)
    return PubSubMessage(
        id=message.id,
        channel=message.channel,
        content=message.content,
        meta=message.meta,
        published_at=message.published_at,
    )


class PubSubService:
    """``client.pubsub``: publish to channels and listen on them."""

    def __init__(self, hub: ChannelHub, session: Session) -> None:
        self._hub = hub
        self._request = session.request

    def listen(self, channels: list[str], *, on_message: Callable[[PubSubMessage], Any]) -> Subscription:
        """Subscribe to ``channels``; returns once the server confirmed it.

        ``on_message(PubSubMessage)`` runs on the handler pool, one at a time
        per channel, in the order the server sent the messages; what it raises
        is logged. Renewed after a reconnect. ``ValueError`` for bad channels,
        ``RelayError`` when the server refuses.
        """
        names = channel_list(channels)
        routes = handler_routes({EVENT_CHANNEL_MESSAGE: on_message}, {EVENT_CHANNEL_MESSAGE: pubsub_message_event})
        return self._hub.subscribe("pubsub", names, routes)

    def publish(self, channel: str, content: Any, meta: dict[str, Any] | None = None) -> None:
        """Publish ``content`` (a string or any JSON value) on ``channel``; returns once the
        server accepted it. ``ValueError`` for an empty channel or non-JSON content."""
        self._request(PUBLISH_METHOD, publish_params(channel, content, meta))
