"""Messaging and tasks on the simulated network: ``messaging.send`` and the
state progression of an outbound message, inbound messages injected with
``emulator.send_sms()``, and tasks delivered over REST.

``send`` runs on a connection thread; the states after ``queued`` are timed
on the network thread. Inbound messages and tasks go to one client on their
context (round-robin), or wait for one.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence

from ..constants import EVENT_MESSAGING_RECEIVE, EVENT_MESSAGING_STATE, EVENT_TASK
from ..devices import E164
from ..rpc import JSONDict
from .legs import APP, NETWORK, PHONE
from .media import ok, refuse
from .network import Network
from .server import Reply, ServerSession

log = logging.getLogger(__name__)


# (state, simulated seconds after the previous one) of a message that gets through.
PROGRESSION = (("queued", 0.0), ("initiated", 0.2), ("sent", 0.5))
DELIVERY_SECONDS = 1.0
SEGMENT_LENGTH = 160
FAILURE_REASONS = {"undelivered": "the carrier could not deliver the message", "failed": "the message was rejected"}


def segments(body: str | None) -> int:
    return max(1, -(-len(body or "") // SEGMENT_LENGTH))


class MessagingEngine:
    def __init__(self, net: Network, space_id: str) -> None:
        self.net = net
        self.space_id = space_id
        self._in_flight = 0

    # -- outbound ---------------------------------------------------------------

    def send(self, session: ServerSession, params: JSONDict) -> Reply | JSONDict:
        """Answer ``messaging.send`` and start the message on its way (connection thread)."""
        to_number, from_number = params.get("to_number"), params.get("from_number")
        body, media = params.get("body"), params.get("media")
        if not isinstance(to_number, str) or not to_number or not isinstance(from_number, str) or not from_number:
            return refuse("400", "messaging.send needs to_number and from_number")
        for name, number in (("to_number", to_number), ("from_number", from_number)):
            if not E164.fullmatch(number):
                return refuse("400", f"messaging.send: {name} must be an E.164 number such as '+15551234567'")
        if not body and not media:
            return refuse("400", "messaging.send needs a body or media")
        owner = session.protocol
        assert owner is not None
        with self.net.lock:
            if self._in_flight >= self.net.limits.max_messages:
                return refuse("429", f"too many messages in flight (max_messages={self.net.limits.max_messages})")
            self._in_flight += 1
        message_id = str(uuid.uuid4())
        fields: JSONDict = {
            "message_id": message_id,
            "context": params.get("context"),
            "direction": "outbound",
            "from_number": from_number,
            "to_number": to_number,
            "body": body,
            "media": media if isinstance(media, list) else [],
            "segments": segments(body if isinstance(body, str) else None),
            "tags": params.get("tags") if isinstance(params.get("tags"), list) else [],
        }
        outcome = self.net.phones.get(to_number).sms
        self.net.note(APP, f'sent an SMS {from_number} -> {to_number}: "{body or ""}"', kind="messaging.send")
        return Reply(ok("Message accepted", message_id=message_id), lambda: self._progress(owner, fields, outcome, 0))

    def _progress(self, owner: str, fields: JSONDict, outcome: str, step: int) -> None:
        if step < len(PROGRESSION):
            state, _ = PROGRESSION[step]
            self.net.outbox.push(owner, EVENT_MESSAGING_STATE, {**fields, "message_state": state})
            delay = PROGRESSION[step + 1][1] if step + 1 < len(PROGRESSION) else DELIVERY_SECONDS
            self.net.scheduler.after(delay, lambda: self._progress(owner, fields, outcome, step + 1))
            return
        final: JSONDict = {**fields, "message_state": outcome}
        if outcome in FAILURE_REASONS:
            final["reason"] = FAILURE_REASONS[outcome]
        self.net.note(NETWORK, f"message to {fields['to_number']}: {outcome}", kind="messaging.state")
        self.net.outbox.push(owner, EVENT_MESSAGING_STATE, final)
        with self.net.lock:
            self._in_flight -= 1

    # -- inbound -------------------------------------------------------------------

    def receive(
        self,
        to_number: str,
        from_number: str,
        body: str | None,
        *,
        media: Sequence[str] = (),
        context: str | None,
        tags: Sequence[str] = (),
    ) -> str:
        """An SMS/MMS arrives from ``from_number``; returns its message id."""
        if not body and not media:
            raise ValueError("an inbound message needs a body or media")
        chosen = context or self.net.phones.get(to_number).context or "default"
        message_id = str(uuid.uuid4())
        params: JSONDict = {
            "message_id": message_id,
            "context": chosen,
            "direction": "inbound",
            "from_number": from_number,
            "to_number": to_number,
            "body": body,
            "media": list(media),
            "segments": segments(body),
            "message_state": "received",
            "tags": list(tags),
        }
        self.net.note(PHONE, f'{from_number} texts {to_number}: "{body or ""}"', kind="messaging.receive")
        self._hand_over(
            chosen, f"a message from {from_number}", lambda p: self.net.outbox.push(p, EVENT_MESSAGING_RECEIVE, params)
        )
        return message_id

    # -- tasks -----------------------------------------------------------------------

    def task(self, context: str, message: JSONDict) -> None:
        """A task arrives over REST for ``context``."""
        envelope: JSONDict = {
            "context": context,
            "message": message,
            "timestamp": time.time(),
            "project_id": self.net.project,
            "space_id": self.space_id,
        }
        self.net.note(NETWORK, f"task for context {context!r}: {message}", kind="task")
        self._hand_over(context, "a task", lambda p: self.net.outbox.push(p, EVENT_TASK, None, **envelope))

    def _hand_over(self, context: str, what: str, push: Callable[[str], object]) -> None:
        def deliver(protocol: str) -> None:
            push(protocol)

        def hand_over() -> None:
            self.net.deliver(context, what, deliver)

        self.net.scheduler.soon(hand_over)
