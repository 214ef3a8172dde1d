"""The emulator's calling commands that are neither media nor bridging:
``transfer``, live transcription and translation, the AI agent controls
(``amazon_bedrock``, ``ai_message``, ``ai_hold``, ``ai_unhold``), video
rooms, digit bindings (a bound digit, pressed, runs its method) and
``user_event``.

Like ``media.py``, each handler runs on a connection thread under the
network lock and returns the answer (and, in a ``Reply``, what follows it).
``press`` runs in the caller's thread (a test's ``CallHandle.press``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from ..rpc import JSONDict
from .legs import APP, NETWORK, PHONE, DigitBinding, Leg
from .media import Handler, ok, refuse
from .network import Network
from .server import Reply

log = logging.getLogger(__name__)

# run(leg, method, params): answer a calling command on the leg as if a client had sent it.
RunCommand = Callable[[Leg, str, JSONDict], "Reply | JSONDict"]
# end(leg, reason): start ending a leg; returns the work that sends its last events.
EndLeg = Callable[[Leg, str], Callable[[], None]]

DTMF = re.compile(r"[0-9*#A-D]+")
MAX_BINDINGS = 100  # per call: a runaway loop of bind_digit must not grow a leg without bound


class CallFeatures:
    """The handlers, keyed by method (see :meth:`handlers`). A command that does not fit the
    call's state (nothing to stop, no agent, no room) gets 409: a 404 would tell the SDK
    that the call itself is gone."""

    def __init__(self, net: Network, run_command: RunCommand, end_leg: EndLeg, known: Callable[[str], bool]) -> None:
        self.net = net
        self._run_command = run_command
        self._end_leg = end_leg
        self._known = known  # is this a calling method the emulator implements?

    def handlers(self) -> dict[str, Handler]:
        return {
            "calling.transfer": self.transfer,
            "calling.live_transcribe": self._live("transcription"),
            "calling.live_translate": self._live("translation"),
            "calling.amazon_bedrock": self.amazon_bedrock,
            "calling.ai_message": self.ai_message,
            "calling.ai_hold": self._ai_hold(True),
            "calling.ai_unhold": self._ai_hold(False),
            "calling.join_room": self.join_room,
            "calling.leave_room": self.leave_room,
            "calling.bind_digit": self.bind_digit,
            "calling.clear_digit_bindings": self.clear_digit_bindings,
            "calling.user_event": self.user_event,
        }

    # -- transfer ------------------------------------------------------------------

    def transfer(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        """The call goes to ``dest`` (another RELAY app or SWML): this client's leg ends here."""
        dest = params["dest"]
        self.net.note(APP, f"transferred the call to {dest}", leg, kind="calling.transfer")
        return Reply(ok("Transferring"), self._end_leg(leg, "hangup"))

    # -- live transcription / translation ---------------------------------------------

    def _live(self, what: str) -> Handler:
        def live(leg: Leg, params: JSONDict) -> Reply | JSONDict:
            action = params["action"]
            verb = next(iter(action), None) if isinstance(action, dict) else action
            if verb not in ("start", "stop"):
                return refuse("400", f"live {what} needs action {{'start': {{...}}}} or {{'stop': {{}}}}")
            if verb == "start":
                leg.live.add(what)
            elif what not in leg.live:
                return refuse("409", f"no live {what} is running on this call")
            else:
                leg.live.discard(what)
            self.net.note(APP, f"{'started' if verb == 'start' else 'stopped'} live {what}", leg)
            return ok(f"Live {what} {'started' if verb == 'start' else 'stopped'}")

        return live

    # -- AI agents ---------------------------------------------------------------------

    def amazon_bedrock(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        if leg.agent is not None:
            return refuse("409", "an AI agent is already running on this call")
        leg.agent, leg.agent_on_hold = "amazon_bedrock", False
        self.net.note(APP, "handed the call to an Amazon Bedrock agent", leg, kind="calling.amazon_bedrock")
        return ok("Amazon Bedrock agent started")

    def ai_message(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        if not self._has_agent(leg):
            return refuse("409", "no AI agent is running on this call")
        text = params.get("message_text")
        if not isinstance(text, str) and not isinstance(params.get("reset"), dict):
            return refuse("400", "calling.ai_message needs message_text (or reset)")
        self.net.note(APP, f"told the AI agent: {text!r}", leg, kind="calling.ai_message")
        return ok("Message sent")

    def _ai_hold(self, hold: bool) -> Handler:
        def ai_hold(leg: Leg, params: JSONDict) -> Reply | JSONDict:
            if not self._has_agent(leg):
                return refuse("409", "no AI agent is running on this call")
            leg.agent_on_hold = hold
            self.net.note(APP, "put the AI agent on hold" if hold else "took the AI agent off hold", leg)
            return ok("On hold" if hold else "Resumed")

        return ai_hold

    @staticmethod
    def _has_agent(leg: Leg) -> bool:
        # calling.ai runs as an operation; amazon_bedrock has no control_id.
        return leg.agent is not None or any(op.method == "calling.ai" for op in leg.operations.values())

    # -- video rooms -------------------------------------------------------------------

    def join_room(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        name = params["name"]
        if not isinstance(name, str):
            return refuse("400", "calling.join_room needs the room name")
        if leg.room is not None:
            return refuse("409", f"the call is already in room {leg.room!r}")
        leg.room = name
        self.net.note(APP, f"joined video room {name!r}", leg, kind="calling.join_room")
        return ok("Joined")

    def leave_room(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        if leg.room is None:
            return refuse("409", "the call is not in a video room")
        self.net.note(APP, f"left video room {leg.room!r}", leg, kind="calling.leave_room")
        leg.room = None
        return ok("Left")

    # -- digit bindings ------------------------------------------------------------------

    def bind_digit(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        digits, method = params["digits"], params["bind_method"]
        if not isinstance(digits, str) or not DTMF.fullmatch(digits):
            return refuse("400", f"calling.bind_digit: digits must be DTMF keys (0-9 * # A-D), not {digits!r}")
        if not isinstance(method, str) or not self._known(method) or method == "calling.dial":
            return refuse("400", f"calling.bind_digit: {method!r} is not a calling method a digit can run")
        bound = params.get("params")
        if bound is not None and not isinstance(bound, dict):
            return refuse("400", "calling.bind_digit: params must be an object")
        max_triggers = params.get("max_triggers")
        if max_triggers is not None and (
            isinstance(max_triggers, bool) or not isinstance(max_triggers, int) or max_triggers < 1
        ):
            return refuse("400", "calling.bind_digit: max_triggers must be a positive integer")
        if len(leg.bindings) >= MAX_BINDINGS:
            return refuse("429", f"too many digit bindings on this call (max {MAX_BINDINGS})")
        realm = params.get("realm")
        leg.bindings.append(
            DigitBinding(digits, method, dict(bound or {}), realm if isinstance(realm, str) else None, max_triggers)
        )
        self.net.note(APP, f"bound {digits} to {method}", leg, kind="calling.bind_digit")
        return ok("Digit bound")

    def clear_digit_bindings(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        realm = params.get("realm")
        kept = [b for b in leg.bindings if realm is not None and b.realm != realm]
        cleared = len(leg.bindings) - len(kept)
        leg.bindings = kept
        self.net.note(APP, f"cleared {cleared} digit binding(s)", leg, kind="calling.clear_digit_bindings")
        return ok("Bindings cleared")

    def press(self, leg: Leg, digits: str) -> None:
        """The phone on ``leg`` presses ``digits``: each binding for them runs its method,
        as if the app had sent it, and its events go to the app (caller's thread)."""
        if not isinstance(digits, str) or not DTMF.fullmatch(digits):
            raise ValueError(f"a phone presses DTMF keys (0-9 * # A-D), not {digits!r}")
        with self.net.lock:
            if leg.gone:
                raise RuntimeError(f"call {leg.call_id} is over: nobody hears {digits}")
            self.net.note(PHONE, f"pressed {digits}", leg, kind="input")
            fired = [b for b in leg.bindings if b.digits == digits]
            follow_ups: list[Callable[[], None]] = []
            for binding in fired:
                if binding.triggers_left is not None:
                    binding.triggers_left -= 1
                    if binding.triggers_left <= 0:
                        leg.bindings.remove(binding)
                params = {**binding.params, "node_id": leg.node_id, "call_id": leg.call_id}
                params.setdefault("control_id", str(uuid.uuid4()))
                self.net.note(NETWORK, f"{digits} runs {binding.method}", leg)
                answer = self._run_command(leg, binding.method, params)
                if isinstance(answer, Reply):
                    if answer.then is not None:
                        follow_ups.append(answer.then)
                    answer = answer.result
                if answer.get("code") != "200":
                    log.warning("bound %s on call %s failed: %r", binding.method, leg.call_id, answer)
        for follow_up in follow_ups:  # they take the lock themselves, as after a real answer
            follow_up()

    # -- user events -----------------------------------------------------------------------

    def user_event(self, leg: Leg, params: JSONDict) -> Reply | JSONDict:
        self.net.note(APP, f"sent a user event {params.get('event')!r}", leg, kind="calling.user_event")
        return ok("Event sent")
