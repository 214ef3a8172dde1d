"""Event delivery with acknowledgements: every ``signalwire.event`` the
emulator sends is kept, per protocol, until the client answers it; when a
session resumes that protocol (or one appears after an outage), what is
still unacknowledged is sent again, in order.

A protocol is what survives a reconnect (the client resends it in
``signalwire.connect``), so calls and messages belong to protocols, not to
sockets. Called from the network thread (pushes) and connection threads
(attach, detach, acks); one lock, held across sends so events keep their order.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from ..rpc import JSONDict
from .server import ServerSession

log = logging.getLogger(__name__)


DEFAULT_MAX_UNACKED = 10_000
# Protocols whose unacknowledged events are kept; beyond it the longest-gone are forgotten.
MAX_PROTOCOLS = 1000


class Outbox:
    def __init__(self, max_unacked: int = DEFAULT_MAX_UNACKED) -> None:
        self.max_unacked = max_unacked
        self._lock = threading.Lock()
        self._live: dict[str, ServerSession] = {}
        self._unacked: OrderedDict[str, OrderedDict[str, JSONDict]] = OrderedDict()
        self._deaf: set[int] = set()  # session numbers whose ACKs are lost (a fault control)
        self.redelivered = 0

    # -- sessions ----------------------------------------------------------

    def attach(self, session: ServerSession) -> int:
        """``session`` now speaks for its protocol: resend what it has not acknowledged. Returns how many."""
        protocol = session.protocol
        if protocol is None:
            return 0
        with self._lock:
            self._live[protocol] = session
            backlog = list(self._unacked.get(protocol, {}).values())
            for frame in backlog:
                session.send(frame)
            self.redelivered += len(backlog)
        if backlog:
            log.info("redelivered %d unacknowledged event(s) to session %d", len(backlog), session.number)
        return len(backlog)

    def detach(self, session: ServerSession) -> None:
        with self._lock:
            self._deaf.discard(session.number)  # a closed session's number never comes back
            if session.protocol is not None and self._live.get(session.protocol) is session:
                del self._live[session.protocol]

    def live_session(self, protocol: str) -> ServerSession | None:
        with self._lock:
            return self._live.get(protocol)

    def live_protocols(self) -> list[str]:
        """Protocols with a live session, in the order they (re)appeared."""
        with self._lock:
            return list(self._live)

    def lose_acks(self, session: ServerSession) -> None:
        """Fault control: act as if this session's ACKs never arrived."""
        with self._lock:
            self._deaf.add(session.number)

    # -- events --------------------------------------------------------------

    def push(self, protocol: str, event_type: str, params: JSONDict | None, **envelope: Any) -> str:
        """Send an event to ``protocol`` (now, or when it is back); returns the request id.

        ``params=None`` sends ``envelope`` flat (tasks carry their fields in the envelope).
        """
        body: JSONDict = {"event_type": event_type, "event_channel": protocol, "timestamp": time.time()}
        body.update(envelope)
        if params is not None:
            body["params"] = params
        request_id = str(uuid.uuid4())
        frame = {"jsonrpc": "2.0", "id": request_id, "method": "signalwire.event", "params": body}
        with self._lock:
            unacked = self._unacked.get(protocol)
            if unacked is None:
                unacked = self._unacked[protocol] = OrderedDict()
                self._forget_gone_protocols()
            unacked[request_id] = frame
            if len(unacked) > self.max_unacked:
                unacked.popitem(last=False)
                log.warning("a client fell %d events behind; dropping the oldest", self.max_unacked)
            session = self._live.get(protocol)
            if session is not None:
                session.send(frame)
        return request_id

    def _forget_gone_protocols(self) -> None:
        """Keep at most MAX_PROTOCOLS backlogs, dropping those of protocols with no live session first."""
        for protocol in list(self._unacked):
            if len(self._unacked) <= MAX_PROTOCOLS:
                return
            if protocol not in self._live:
                del self._unacked[protocol]

    def forget(self, protocol: str) -> None:
        """The protocol will not come back: drop what waits for it."""
        with self._lock:
            self._unacked.pop(protocol, None)

    def ack(self, session: ServerSession, frame: JSONDict) -> None:
        """An answer from the client: the event it answers is delivered."""
        request_id = frame.get("id")
        if session.protocol is None or not isinstance(request_id, str):
            return
        with self._lock:
            if session.number in self._deaf:
                return
            unacked = self._unacked.get(session.protocol)
            if unacked is not None:
                unacked.pop(request_id, None)

    def unacked(self, protocol: str) -> int:
        with self._lock:
            return len(self._unacked.get(protocol, {}))

    def table_sizes(self) -> dict[str, int]:
        with self._lock:
            return {
                "event_backlogs": len(self._unacked),
                "unacked_events": sum(len(backlog) for backlog in self._unacked.values()),
                "lost_ack_sessions": len(self._deaf),
            }
