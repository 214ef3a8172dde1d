"""The emulator's ``calling.*`` side: inbound calls offered to clients
(round-robin, ``calling.pass``, ringing until ``noAnswer``), the call
lifecycle (answer, end, the phone hanging up), ``calling.dial``,
``calling.connect``/``disconnect``, the one-event notices of
``flows.NOTICES``, and dispatch to ``media.py`` for everything else.

Command handlers run on connection threads under the network lock; what
happens later (ringing, hang-ups) runs on the network thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from ..constants import (
    EVENT_CALL_CONNECT,
    EVENT_CALL_DIAL,
    EVENT_CALL_RECEIVE,
    EVENT_CALL_STATE,
)
from ..rpc import JSONDict
from .call_features import CallFeatures
from .flows import NOTICES, PATTERNS, REQUIRED, VERBS, Notice
from .legs import APP, NETWORK, PHONE, Leg
from .media import Handler, MediaOperations, ok, refuse
from .network import Network
from .ringing import Ringer, device_number, devices_problem
from .server import MethodHandler, Reply, ServerSession

log = logging.getLogger(__name__)


DEFAULT_CONTEXT = "default"


class EmulatorLimitError(RuntimeError):
    """The emulator is at one of its caps (calls, sessions...)."""


class CallingEngine:
    def __init__(self, net: Network, media: MediaOperations) -> None:
        self.net = net
        self.media = media
        self._commands: dict[str, Handler] = {
            "calling.answer": self._answer,
            "calling.end": self._end_command,
            "calling.pass": self._pass,
            "calling.connect": self._connect,
            "calling.disconnect": self._disconnect,
        }
        self._commands.update(media.handlers())
        for method, notice in NOTICES.items():
            self._commands[method] = self._notifier(method, notice)
        self.features = CallFeatures(net, self._dispatch, self.end, lambda method: method in self._commands)
        self._commands.update(self.features.handlers())
        self._connecting: dict[str, Ringer] = {}  # call_id -> its calling.connect in progress
        self._waiting: dict[str, Callable[[], None]] = {}  # call_id -> retry offering it

    # -- the user's side ---------------------------------------------------------

    def place_call(self, to_number: str, from_number: str, context: str | None) -> Leg:
        """A phone calls ``to_number``: the call rings on ``context`` until a client answers or it times out."""
        for name, value in (("to_number", to_number), ("from_number", from_number)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string such as '+15551234567', not {value!r}")
        with self.net.lock:
            if len(self.net.legs) >= self.net.limits.max_calls:
                raise EmulatorLimitError(f"{len(self.net.legs)} calls are up (max_calls={self.net.limits.max_calls})")
            line = self.net.phones.line(from_number)
            chosen = context or self.net.phones.get(to_number).context or DEFAULT_CONTEXT
            device = {"type": "phone", "params": {"from_number": from_number, "to_number": to_number}}
            leg = Leg("inbound", line, device, context=chosen, state="ringing")
            self.net.legs[leg.call_id] = leg
            self.net.note(PHONE, f"{from_number} calls {to_number} (context {chosen!r})", leg)
            leg.timers.append(
                self.net.scheduler.after(self.net.limits.ring_timeout, self._locked(lambda: self._unanswered(leg)))
            )
        self.net.scheduler.soon(self._locked(lambda: self._offer(leg)))
        return leg

    def client_gone(self, protocol: str) -> None:
        """No session resumed ``protocol`` in time: hang up its calls (network thread)."""
        if self.net.outbox.live_session(protocol) is not None:
            return
        with self.net.lock:
            orphans = [leg for leg in self.net.legs.values() if leg.owner == protocol and not leg.gone]
            for leg in orphans:
                if leg.state == "ringing" and leg.direction == "inbound":
                    self.net.note(NETWORK, "the client it was offered to went away", leg)
                    leg.owner = None  # never answered: it rings on for another client
                    leg.passed_by.add(protocol)
                    self._offer(leg)
                else:
                    self.net.note(NETWORK, "the app's client went away; hanging up", leg)
                    self.end(leg, "hangup")()
        self.net.outbox.forget(protocol)
        if orphans:
            log.info("hung up %d call(s) of a client that did not come back", len(orphans))

    def press(self, leg: Leg, digits: str) -> None:
        """The far end presses keys (caller's thread): digit bindings fire."""
        self.features.press(leg, digits)

    def phone_hangs_up(self, leg: Leg) -> None:
        """The far end hangs up (any thread)."""
        with self.net.lock:
            if leg.gone:
                return
            self.net.note(PHONE, f"{leg.line.number} hung up", leg)
            self.end(leg, "hangup")()

    def table_sizes(self) -> dict[str, int]:
        with self.net.lock:
            return {"connecting": len(self._connecting), "offers_waiting": len(self._waiting)}

    # -- the wire side ---------------------------------------------------------------

    def methods(self) -> dict[str, MethodHandler]:
        """Every ``calling.*`` method the emulator implements, as server method handlers."""
        table: dict[str, MethodHandler] = {"calling.dial": self._dial}
        for method in self._commands:
            table[method] = self._handler_for(method)
        return table

    def _handler_for(self, method: str) -> MethodHandler:
        return lambda session, params: self.handle(session, method, params)

    def handle(self, session: ServerSession, method: str, params: JSONDict) -> Reply | JSONDict:
        """Answer one ``calling.*`` request on a call (connection thread)."""
        with self.net.lock:
            call_id = params.get("call_id")
            leg = self.net.legs.get(call_id) if isinstance(call_id, str) else None
            if leg is None or leg.gone or leg.owner != session.protocol:
                return refuse("404", "call not found (it ended, or it is not yours)")
            return self._dispatch(leg, method, params)

    def _dispatch(self, leg: Leg, method: str, params: JSONDict) -> Reply | JSONDict:
        """Check the fields the server requires, then run the command (lock held)."""
        missing = [name for name in REQUIRED.get(method, ()) if params.get(name) in (None, "", [], {})]
        if missing:
            return refuse("400", f"{method} needs {', '.join(missing)}")
        pattern = PATTERNS.get(method)
        if pattern is not None:
            name, form, what = pattern
            value = params.get(name)
            if not isinstance(value, str) or not re.fullmatch(form, value):
                return refuse("400", f"{method}: {name} must be {what}, not {value!r}")
        return self._commands[method](leg, params)

    # -- lifecycle ------------------------------------------------------------------

    def _locked(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with self.net.lock:
                work()

        return run

    def _send_state(self, leg: Leg) -> None:
        self.net.emit(leg, EVENT_CALL_STATE, leg.state_params())

    def _client_name(self, protocol: str) -> str:
        session = self.net.outbox.live_session(protocol)
        return f"client #{session.number}" if session is not None else "a client"

    def _offer(self, leg: Leg) -> None:
        """Offer a ringing inbound call to the next client on its context (lock held)."""
        if leg.state != "ringing" or leg.owner is not None:
            return
        assert leg.context is not None
        protocol = self.net.router.pick(leg.context, exclude=leg.passed_by)
        if protocol is None:
            if leg.call_id not in self._waiting:
                retry = self._locked(lambda: self._offer(leg))
                self._waiting[leg.call_id] = retry
                self.net.when_subscribed(retry)
                self.net.note(NETWORK, f"rings: no client takes calls on context {leg.context!r}", leg)
            return
        self._stop_waiting(leg)
        leg.owner = protocol
        self.net.note(NETWORK, f"offered to {self._client_name(protocol)}", leg)
        self.net.emit(leg, EVENT_CALL_RECEIVE, leg.state_params())

    def _stop_waiting(self, leg: Leg) -> None:
        retry = self._waiting.pop(leg.call_id, None)
        if retry is not None:
            self.net.forget_waiting(retry)

    def _unanswered(self, leg: Leg) -> None:
        if leg.state == "ringing":
            self.net.note(NETWORK, "nobody answered", leg)
            self.end(leg, "noAnswer")()

    def end(self, leg: Leg, reason: str) -> Callable[[], None]:
        """Start ending ``leg`` now (lock held); returns the work that sends its last events."""
        if leg.gone:
            return lambda: None
        leg.state = "ending"
        leg.end_reason = reason
        leg.cancel_timers()
        self._stop_waiting(leg)
        ringer = self._connecting.pop(leg.call_id, None)
        if ringer is not None:
            ringer.cancel()
        other, leg.peer = leg.peer, None
        if other is not None:
            other.peer = None

        def finish() -> None:
            with self.net.lock:
                self.media.call_ended(leg)
                self._send_state(leg)
                leg.state = "ended"
                self._send_state(leg)
                self.net.legs.pop(leg.call_id, None)
                self.net.note(NETWORK, f"call with {leg.line.number} ended ({reason})", leg)
                leg.ended.set()
                if other is not None and not other.gone:
                    if leg.connected_party:  # the connected party left: the call goes on without it
                        self.net.note(NETWORK, f"{device_number(leg.device)} disconnected", other)
                        self.net.emit(other, EVENT_CALL_CONNECT, {"connect_state": "disconnected", "peer": _peer(leg)})
                    else:
                        self.end(other, "hangup")()

        return finish

    def _arm_far_end(self, leg: Leg) -> None:
        """An answered leg: its phone hangs up on its own if it was told to (lock held)."""
        hangup_after = leg.line.phone.hangup_after
        if hangup_after is not None:
            leg.timers.append(self.net.scheduler.after(hangup_after, lambda: self.phone_hangs_up(leg)))

    # -- commands on a call --------------------------------------------------------

    def _answer(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        if leg.state == "answered":
            return ok("Already answered")
        leg.state = "answered"
        leg.cancel_timers()  # the ring timeout
        self._stop_waiting(leg)
        self.net.note(APP, "answered the call", leg, kind="calling.answer")

        def answered() -> None:
            if leg.gone:
                return  # hung up before the answer went out: its ending/ended are already on the wire
            self._send_state(leg)
            leg.answered.set()  # only now may the far end hang up on an answered call
            self._arm_far_end(leg)

        return Reply(ok("Answered"), self._locked(answered))

    def _end_command(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        reason = params.get("reason")
        reason = reason if isinstance(reason, str) and reason else "hangup"
        self.net.note(APP, f"hung up ({reason})", leg, kind="calling.end")
        return Reply(ok("Ending"), self.end(leg, reason))

    def _pass(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        if leg.direction != "inbound" or leg.state != "ringing":
            return refuse("409", "only a ringing inbound call can be passed")
        assert leg.owner is not None
        leg.passed_by.add(leg.owner)
        leg.owner = None
        self.net.note(APP, "passed the call back to routing", leg, kind="calling.pass")
        return Reply(ok("Passed"), self._locked(lambda: self._offer(leg)))

    def _notifier(self, method: str, notice: Notice) -> Handler:
        def notify(leg: Leg, params: JSONDict) -> Reply | JSONDict:
            fields = {name: params[name] for name in notice.copy if name in params}
            self.net.note(APP, VERBS.get(method, method), leg, kind=method)
            event = {**fields, **notice.fields}
            if "control_id" in params:
                event["control_id"] = params["control_id"]

            def emit() -> None:
                if not leg.gone:  # an event for a call already ended would follow its ``ended``
                    self.net.emit(leg, notice.event_type, event)

            return Reply(ok(), self._locked(emit))

        return notify

    # -- connect --------------------------------------------------------------------

    def _connect(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        devices = params.get("devices")
        problem = devices_problem(devices)
        if problem is not None:
            return refuse("400", f"calling.connect: {problem}")
        assert isinstance(devices, list)
        if leg.peer is not None or leg.call_id in self._connecting:
            return refuse("409", "the call is already connected or connecting")
        numbers = ", ".join(device_number(d) for group in devices for d in group)
        self.net.note(APP, f"connecting the caller to {numbers}", leg, kind="calling.connect")

        def connected(peer: Leg) -> None:
            self._connecting.pop(leg.call_id, None)
            if leg.gone:
                self.end(peer, "hangup")()
                return
            leg.peer, peer.peer = peer, leg
            # From now on the peer is the app's too (commands, and its own state events), as on RELAY.
            peer.owner, peer.silent, peer.connected_party = leg.owner, False, True
            self.net.note(NETWORK, f"connected to {device_number(peer.device)}", leg)
            self.net.emit(leg, EVENT_CALL_CONNECT, {"connect_state": "connected", "peer": _peer(peer)})
            self._arm_far_end(peer)

        def failed(reason: str) -> None:
            self._connecting.pop(leg.call_id, None)
            self.net.note(NETWORK, f"could not connect ({reason})", leg)
            self.net.emit(leg, EVENT_CALL_CONNECT, {"connect_state": "failed", "reason": reason})

        def start() -> None:
            if leg.gone:
                return
            self.net.emit(leg, EVENT_CALL_CONNECT, {"connect_state": "connecting"})
            ringer = Ringer(
                self.net,
                devices,
                owner=None,
                tag=params.get("tag") if isinstance(params.get("tag"), str) else None,
                silent=True,
                on_state=lambda ringing_leg: None,
                on_answer=connected,
                on_fail=failed,
                end_leg=lambda ended, reason: self.end(ended, reason)(),
            )
            self._connecting[leg.call_id] = ringer
            ringer.start()

        return Reply(ok("Connecting"), self._locked(start))

    def _disconnect(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        peer = leg.peer
        if peer is None:
            return refuse("409", "the call is not connected")
        self.net.note(APP, f"disconnected {device_number(peer.device)}", leg, kind="calling.disconnect")
        return Reply(ok("Disconnected"), self.end(peer, "hangup"))

    # -- dial -------------------------------------------------------------------------

    def _dial(self, session: ServerSession, params: JSONDict) -> Reply | JSONDict:
        tag, devices = params.get("tag"), params.get("devices")
        if not isinstance(tag, str) or not tag:
            return refuse("400", "calling.dial needs a tag")
        problem = devices_problem(devices)
        if problem is not None:
            return refuse("400", f"calling.dial: {problem}")
        assert isinstance(devices, list)
        owner = session.protocol
        assert owner is not None
        with self.net.lock:
            ringing = max(len(group) for group in devices)
            if len(self.net.legs) + ringing > self.net.limits.max_calls:
                return refuse("503", f"too many calls (max_calls={self.net.limits.max_calls})")
            numbers = ", ".join(device_number(d) for group in devices for d in group)
            # Who dialed and with which tag: enough to tell from the transcript alone
            # which client (worker process) called a number, and how often.
            self.net.note(APP, f"dialing {numbers} for {self._client_name(owner)} (tag {tag})", kind="calling.dial")
        max_duration = params.get("max_duration")

        def answered(leg: Leg) -> None:
            call = {
                "call_id": leg.call_id,
                "node_id": leg.node_id,
                "tag": tag,
                "device": leg.device,
                "dial_winner": True,
            }
            self.net.outbox.push(
                owner, EVENT_CALL_DIAL, {"tag": tag, "node_id": leg.node_id, "dial_state": "answered", "call": call}
            )
            self._arm_far_end(leg)
            if isinstance(max_duration, int) and not isinstance(max_duration, bool) and max_duration > 0:
                leg.timers.append(
                    self.net.scheduler.after(max_duration * 60.0, self._locked(lambda: self.end(leg, "max_duration")()))
                )

        def failed(reason: str) -> None:
            self.net.note(NETWORK, f"the dial failed ({reason})")
            self.net.outbox.push(owner, EVENT_CALL_DIAL, {"tag": tag, "dial_state": "failed", "reason": reason})

        def start() -> None:
            self.net.outbox.push(owner, EVENT_CALL_DIAL, {"tag": tag, "dial_state": "dialing"})
            Ringer(
                self.net,
                devices,
                owner=owner,
                tag=tag,
                silent=False,
                on_state=self._send_state,
                on_answer=answered,
                on_fail=failed,
                end_leg=lambda leg, reason: self.end(leg, reason)(),
            ).start()

        return Reply(ok("Dialing"), self._locked(start))


def _peer(leg: Leg) -> JSONDict:
    return {"call_id": leg.call_id, "node_id": leg.node_id, "tag": leg.tag, "device": leg.device}
