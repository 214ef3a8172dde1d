"""The Action family: handles on a call's long-running operations (play,
record, collect, detect, fax, tap, stream, pay, transcribe, ai).

A ``Call`` method creates the action and registers it under its
``control_id`` *before* the start request goes out, so events that overtake
the response still find it. The I/O thread feeds it the call's events
(``_observe``) and settles ``future`` once: with the terminal event, with the
call's ``ended`` event when the call ends first, or with the start error.
Callers block in their own threads (``wait``); ``on_completed`` callbacks and
``future`` done-callbacks run on the handler pool.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol, TypeVar

from .constants import (
    EVENT_CALL_COLLECT,
    EVENT_CALL_DETECT,
    EVENT_CALL_FAX,
    EVENT_CALL_PAY,
    EVENT_CALL_PLAY,
    EVENT_CALL_RECORD,
    EVENT_CALL_STREAM,
    EVENT_CALL_TAP,
    EVENT_CALL_TRANSCRIBE,
)
from .errors import RelayError
from .events import RelayEvent
from .futures import HandoffFuture, fail, settle, wait_result
from .pool import run_user_code
from .rpc import JSONDict

if TYPE_CHECKING:
    from .pool import HandlerPool

log = logging.getLogger(__name__)

FINISHED = "finished"
ERROR = "error"
# The server's answer to a control_id whose operation is already over.
OPERATION_OVER = "409"


class ActionCall(Protocol):
    """What ``action.call`` is typed as: the ``Call`` that started the action.

    A protocol, not ``Call`` itself: calls.py imports this module, so naming
    ``Call`` here, even for types, would put the two on an import cycle."""

    @property
    def call_id(self) -> str: ...

    @property
    def node_id(self) -> str | None: ...


@dataclass(frozen=True)
class CallLink:
    """What a ``Call`` hands each action it starts: itself, how to send a command
    for it (404/410 give ``{}``), and the handler pool its future's callbacks run on.
    Handed in, so an action needs neither calls.py nor the call's private members."""

    call: ActionCall
    send: Callable[[str, JSONDict], JSONDict]
    handler_pool: HandlerPool


class Action:
    """A running call operation.

    ``future`` is a real ``concurrent.futures.Future`` resolved with the event
    that ended the operation, so ``concurrent.futures.wait()`` and
    ``as_completed()`` work on a set of actions. If the call ends (or is
    already gone) first, it resolves with the call's ``ended`` state event and
    ``completed`` stays False. If the operation could not be started it fails
    with that ``RelayError``.
    """

    # The event type this operation reports with (None: any event carrying its control_id).
    event_type: ClassVar[str | None] = None
    # Values of the event's state that end the operation.
    terminal_states: ClassVar[frozenset[str]] = frozenset({FINISHED, ERROR})

    def __init__(self, link: CallLink, method: str, control_id: str, params: JSONDict) -> None:
        self.call = link.call
        self.control_id = control_id
        self._method = method
        self._send = link.send
        self.future: Future[RelayEvent] = HandoffFuture(link.handler_pool)
        self.state: str | None = None
        self._completed = False
        self._settle_lock = threading.Lock()

    @classmethod
    def create(  # noqa: PYI019 - typing.Self needs 3.11
        cls: type[A], link: CallLink, method: str, control_id: str, params: JSONDict
    ) -> tuple[A, ActionFeed]:
        """SDK-internal (``start_action``): a new action and the feed its Call drives it through."""
        action = cls(link, method, control_id, params)
        return action, ActionFeed(action, action._observe, action._finish, action._fail)

    def __repr__(self) -> str:
        status = "done" if self.is_done else (self.state or "started")
        return f"<{type(self).__name__} control_id={self.control_id!r} call_id={self.call.call_id!r} {status}>"

    @property
    def is_done(self) -> bool:
        """True once the action ended, however it ended."""
        return self.future.done()

    @property
    def completed(self) -> bool:
        """True when the operation ran to its own terminal event (``finished``, ``error``, ...)."""
        return self._completed

    @property
    def result(self) -> RelayEvent | None:
        """The event the action ended with; None while it runs or when it failed to start."""
        if not self.future.done() or self.future.exception() is not None:
            return None
        return self.future.result()

    def wait(self, timeout: float | None = None) -> RelayEvent:
        """Block until the action ends and return the event that ended it.

        Raises ``TimeoutError`` (``RelayTimeoutError``) when ``timeout``
        seconds pass first; the action goes on and can be waited on again.
        """
        event: RelayEvent = wait_result(self.future, timeout, f"{type(self).__name__} {self.control_id}")
        return event

    def stop(self) -> JSONDict:
        """Ask the server to stop the operation; the action ends with the server's final event.

        Stopping one that is already over is not an error and returns ``{}``: nothing is
        sent once its final event came, and a ``409`` (the server finished it while the
        stop was on its way) is taken as done, like the ``404`` of a call that is gone.
        """
        if self.is_done:
            return {}
        try:
            return self._control("stop")
        except RelayError as error:
            if str(error.code) == OPERATION_OVER:
                return {}
            raise

    def _pause(self, behavior: str | None) -> JSONDict:
        # Like the async SDK: ``behavior`` goes out only when given.
        return self._control("pause", behavior=behavior) if behavior else self._control("pause")

    # -- sub-commands ---------------------------------------------------------

    def _control(self, verb: str, **fields: Any) -> JSONDict:
        """Send ``<start method>.<verb>`` for this control_id (404/410 return ``{}``)."""
        return self._send(f"{self._method}.{verb}", {"control_id": self.control_id, **fields})

    # -- fed by the Call (I/O thread) ---------------------------------------

    def _state_of(self, event: RelayEvent) -> str | None:
        return event.state

    def _accepts(self, event: RelayEvent) -> bool:
        return self.event_type is None or event.event_type == self.event_type

    def _is_terminal(self, event: RelayEvent) -> bool:
        return self._state_of(event) in self.terminal_states

    def _observe(self, event: RelayEvent) -> bool:
        """Take one event carrying our control_id; True when it ends the action."""
        if not self._accepts(event):
            return False
        state = self._state_of(event)
        if state is not None:
            self.state = state
        return self._is_terminal(event)

    def _finish(self, event: RelayEvent, *, completed: bool) -> None:
        # The first outcome wins; `completed` must be right before anyone wakes up.
        with self._settle_lock:
            if self.future.done():
                return
            self._completed = completed
            settle(self.future, event)

    def _fail(self, error: BaseException) -> None:
        with self._settle_lock:
            fail(self.future, error)


A = TypeVar("A", bound=Action)


class _Finish(Protocol):
    def __call__(self, event: RelayEvent, *, completed: bool) -> None: ...


@dataclass(frozen=True)
class ActionFeed:
    """The I/O side of one action, which the ``Call`` that started it keeps under its
    control_id: ``observe`` an event carrying it (True when the event ends it),
    ``finish`` it with an event (``completed``: by its own terminal event, not the
    call's end), ``fail`` it with an error. The first outcome wins.

    Bound methods of the action, handed out by ``start_action``: the Call drives
    the action through these and needs none of its private members, and users'
    ``Action`` shows only their side."""

    action: Action
    observe: Callable[[RelayEvent], bool]
    finish: _Finish
    fail: Callable[[BaseException], None]


def start_action(kind: type[A], link: CallLink, method: str, control_id: str, params: JSONDict) -> tuple[A, ActionFeed]:
    """A new ``kind`` action on the linked call, and the feed its Call drives it through."""
    return kind.create(link, method, control_id, params)


def call_when_done(action: A, callback: Callable[[RelayEvent], Any]) -> None:
    """Run ``callback(event)`` on the handler pool with the event that ended the action,
    as the async SDK does (at once if it is done). An action that failed to start raised
    its error to the caller instead: the callback does not run."""
    action.future.add_done_callback(lambda future: _run_completion(callback, action, future))


def _run_completion(callback: Callable[[RelayEvent], Any], action: Action, future: Future[RelayEvent]) -> None:
    if future.exception() is not None:
        return
    run_user_code(callback, future.result(), what="on_completed callback", detail=lambda: f" (of {action!r})")


class PlayAction(Action):
    """``call.play()``: ends on ``finished`` or ``error``."""

    event_type = EVENT_CALL_PLAY

    def pause(self, behavior: str | None = None) -> JSONDict:
        """Pause playback (``behavior``: ``"silence"`` or ``"skip"``, sent only when given)."""
        return self._pause(behavior)

    def resume(self) -> JSONDict:
        return self._control("resume")

    def volume(self, volume: float) -> JSONDict:
        """Change the playback volume (dB, -40 to 40)."""
        return self._control("volume", volume=volume)


class RecordAction(Action):
    """``call.record()``: ends on ``finished`` or ``no_input``; ``result.url`` is the recording."""

    event_type = EVENT_CALL_RECORD
    terminal_states = frozenset({FINISHED, "no_input"})

    def pause(self, behavior: str | None = None) -> JSONDict:
        """Pause recording; ``behavior`` (``"silence"`` or ``"skip"``) says what the gap becomes."""
        return self._pause(behavior)

    def resume(self) -> JSONDict:
        return self._control("resume")


# Collect result types that report progress rather than an outcome.
_PROGRESS_RESULTS = frozenset({"start_of_input"})
_COLLECT_END_STATES = frozenset({FINISHED, ERROR, "no_input", "no_match"})


class _CollectRules(Action):
    """The collect terminal rule, shared by play_and_collect and standalone collect.

    Only ``calling.call.collect`` events count (play_and_collect's play phase
    reports ``calling.call.play`` events under the same control_id). The
    first final result ends the action; partial results (``final: false``)
    and ``start_of_input`` do not. A ``continuous`` collect ends only on a
    terminal state.
    """

    event_type = EVENT_CALL_COLLECT
    terminal_states = _COLLECT_END_STATES

    def __init__(self, link: CallLink, method: str, control_id: str, params: JSONDict) -> None:
        super().__init__(link, method, control_id, params)
        self._continuous = params.get("continuous") is True

    def _is_terminal(self, event: RelayEvent) -> bool:
        if self._state_of(event) in self.terminal_states:
            return True
        if self._continuous:
            return False
        result = event.params.get("result")
        if not isinstance(result, dict) or not result:
            return False
        kind = result.get("type")  # from the wire: a list or dict here must not raise (it is unhashable)
        if isinstance(kind, str) and kind in _PROGRESS_RESULTS:
            return False
        return event.params.get("final") is not False

    def start_input_timers(self) -> JSONDict:
        """Start the initial-timeout timers of a collect started with ``start_input_timers=False``."""
        return self._send("calling.collect.start_input_timers", {"control_id": self.control_id})


class CollectAction(_CollectRules):
    """``call.play_and_collect()``: plays prompts, then ends on the collect result."""

    def volume(self, volume: float) -> JSONDict:
        """Change the prompt volume (dB, -40 to 40)."""
        return self._control("volume", volume=volume)

    def pause(self, behavior: str | None = None) -> JSONDict:
        """Pause the prompt (``calling.play_and_collect.pause``)."""
        return self._pause(behavior)

    def resume(self) -> JSONDict:
        """Resume a paused prompt."""
        return self._control("resume")


class StandaloneCollectAction(_CollectRules):
    """``call.collect()``: gathers digits or speech without a prompt."""


class DetectAction(Action):
    """``call.detect()``: ends on the first result (an event carrying ``detect``), or ``finished``/``error``."""

    event_type = EVENT_CALL_DETECT

    def _is_terminal(self, event: RelayEvent) -> bool:
        detect = event.params.get("detect")
        return (isinstance(detect, dict) and bool(detect)) or super()._is_terminal(event)


class BeepDetectAction(DetectAction):
    """``call.detect_answering_machine(wait_for_beep=True)``: a machine's verdict does
    not end it; the beep does (the moment a message can be left), as in Node's SDK.
    A ``HUMAN`` verdict ends it too: a person never beeps."""

    def _is_terminal(self, event: RelayEvent) -> bool:
        detect = event.params.get("detect")
        params = detect.get("params") if isinstance(detect, dict) else None
        if not isinstance(detect, dict) or detect.get("type") != "machine" or not isinstance(params, dict):
            return super()._is_terminal(event)
        if params.get("beep") is True or params.get("event") in ("HUMAN", FINISHED, ERROR):
            return True
        return self._state_of(event) in self.terminal_states


class FaxAction(Action):
    """``call.send_fax()`` / ``call.receive_fax()``: ends on ``finished`` or ``error``."""

    event_type = EVENT_CALL_FAX

    def _state_of(self, event: RelayEvent) -> str | None:
        # Fax events may report progress as ``fax.type`` instead of ``state``.
        state = event.state
        if state is not None:
            return state
        fax = event.params.get("fax")
        kind = fax.get("type") if isinstance(fax, dict) else None
        return kind if isinstance(kind, str) else None


class TapAction(Action):
    """``call.tap()``: ends on ``finished``."""

    event_type = EVENT_CALL_TAP
    terminal_states = frozenset({FINISHED})


class StreamAction(Action):
    """``call.stream()``: ends on ``finished``."""

    event_type = EVENT_CALL_STREAM
    terminal_states = frozenset({FINISHED})


class PayAction(Action):
    """``call.pay()``: ends on ``finished`` or ``error``."""

    event_type = EVENT_CALL_PAY


class TranscribeAction(Action):
    """``call.transcribe()``: ends on ``finished``."""

    event_type = EVENT_CALL_TRANSCRIBE
    terminal_states = frozenset({FINISHED})


class AIAction(Action):
    """``call.ai()``: ends on ``finished`` or ``error`` of any event carrying its control_id."""
