"""The call commands, described once: one table row per ``calling.*`` method,
``build_params`` that turns a row and a call's arguments into wire params, and
``CallCommands``, the typed ``Call`` methods, each a one-line wrapper over a row.

Adding a command is one table row and one wrapper. Runs in the caller's thread.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Generic, Optional, TypeVar, Union

from . import media as media_builders
from .actions import (
    Action,
    AIAction,
    BeepDetectAction,
    CollectAction,
    DetectAction,
    FaxAction,
    PayAction,
    PlayAction,
    RecordAction,
    StandaloneCollectAction,
    StreamAction,
    TapAction,
    TranscribeAction,
)
from .events import RelayEvent
from .rpc import JSONDict

A = TypeVar("A", bound=Action)
# Runs on the handler pool with the event that ended the action (as in the async SDK).
OnCompleted = Optional[Callable[[RelayEvent], Any]]
# One media item or a list of them: {"type": "tts", "params": {"text": "..."}} (see relay_sync.media)
Media = Union[JSONDict, Sequence[JSONDict]]
# Outer list: tried in series; inner list: rung in parallel (see relay_sync.devices). A single
# device is accepted too.
Devices = Union[JSONDict, Sequence[Sequence[JSONDict]]]


class Command:
    """The method ``calling.<name>`` and the fields it takes besides ``node_id``/``call_id``."""

    __slots__ = ("control", "method", "optional", "required")

    def __init__(
        self, name: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = (), *, control: bool = False
    ) -> None:
        self.method = f"calling.{name}"
        self.required = required
        self.optional = optional
        self.control = control  # carries a client-chosen control_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.method!r})"


class Operation(Command, Generic[A]):
    """A command that starts an operation tracked by an ``action`` (always with a control_id)."""

    __slots__ = ("action",)

    def __init__(self, name: str, required: tuple[str, ...], optional: tuple[str, ...], action: type[A]) -> None:
        super().__init__(name, required, optional, control=True)
        self.action = action


_CONNECT_OPTIONS = ("ringback", "tag", "max_duration", "max_price_per_minute", "status_url")
_QUEUE_OPTIONS = ("queue_id", "status_url")
_PAY_OPTIONS = ("input", "charge_amount", "currency")
_AI_OPTIONS = ("prompt", "SWAIG", "params", "global_data", "post_prompt", "post_prompt_url")
_COLLECT_OPTIONS = (
    "digits",
    "speech",
    "initial_timeout",
    "partial_results",
    "continuous",
    "send_start_of_input",
    "start_input_timers",
)

# fmt: off
# Plain commands: they return the result dict.
#                              calling.<name>          required                   optional
ANSWER = Command(              "answer")
HANGUP = Command(              "end",                  ("reason",))
PASS = Command(                "pass")
CONNECT = Command(             "connect",              ("devices",),              _CONNECT_OPTIONS)
DISCONNECT = Command(          "disconnect")
SEND_DIGITS = Command(         "send_digits",          ("digits",),               (), control=True)
REFER = Command(               "refer",                ("device",),               ("status_url",))
TRANSFER = Command(            "transfer",             ("dest",))
JOIN_CONFERENCE = Command(     "join_conference",      ("name",),                 ("stream",))
LEAVE_CONFERENCE = Command(    "leave_conference",     ("conference_id",))
HOLD = Command(                "hold")
UNHOLD = Command(              "unhold")
DENOISE = Command(             "denoise")
DENOISE_STOP = Command(        "denoise.stop")
LIVE_TRANSCRIBE = Command(     "live_transcribe",      ("action",))
LIVE_TRANSLATE = Command(      "live_translate",       ("action",),               ("status_url",))
ECHO = Command(                "echo",                 (),                        ("timeout", "status_url"))
AMAZON_BEDROCK = Command(      "amazon_bedrock",       (),                        _AI_OPTIONS)
AI_MESSAGE = Command(          "ai_message",           (),                        ("message_text", "role", "reset", "global_data"))
AI_HOLD = Command(             "ai_hold",              (),                        ("timeout", "prompt"))
AI_UNHOLD = Command(           "ai_unhold",            (),                        ("prompt",))
JOIN_ROOM = Command(           "join_room",            ("name",),                 ("status_url",))
LEAVE_ROOM = Command(          "leave_room")
QUEUE_ENTER = Command(         "queue.enter",          ("queue_name",),           _QUEUE_OPTIONS, control=True)
QUEUE_LEAVE = Command(         "queue.leave",          ("queue_name",),           _QUEUE_OPTIONS, control=True)
BIND_DIGIT = Command(          "bind_digit",           ("digits", "bind_method"), ("params", "realm", "max_triggers"))
CLEAR_DIGIT_BINDINGS = Command("clear_digit_bindings", (),                        ("realm",))
USER_EVENT = Command(          "user_event",           (),                        ("event",))

# Operations: commands that start one; they return its Action (and carry its control_id).
#                            calling.<name>      required                    optional                         action
PLAY = Operation(            "play",             ("play",),                  ("volume", "direction", "loop"), PlayAction)
RECORD = Operation(          "record",           ("record",),                (),                              RecordAction)
PLAY_AND_COLLECT = Operation("play_and_collect", ("play", "collect"),        ("volume",),                     CollectAction)
COLLECT = Operation(         "collect",          (),                         _COLLECT_OPTIONS,                StandaloneCollectAction)
DETECT = Operation(          "detect",           ("detect",),                ("timeout",),                    DetectAction)
SEND_FAX = Operation(        "send_fax",         ("document",),              ("identity", "header_info"),     FaxAction)
RECEIVE_FAX = Operation(     "receive_fax",      (),                         (),                              FaxAction)
TAP = Operation(             "tap",              ("tap", "device"),          (),                              TapAction)
STREAM = Operation(          "stream",           ("url",),                   ("name", "codec", "track"),      StreamAction)
PAY = Operation(             "pay",              ("payment_connector_url",), _PAY_OPTIONS,                    PayAction)
TRANSCRIBE = Operation(      "transcribe",       (),                         ("status_url",),                 TranscribeAction)
AI = Operation(              "ai",               (),                         ("prompt", "SWAIG", "params"),   AIAction)
# fmt: on


def build_params(command: Command, fields: Mapping[str, Any], extra: Mapping[str, Any]) -> JSONDict:
    """The command's own wire fields: its table fields that are not None, then ``extra`` verbatim.

    ``fields`` must use the table's (wire) names; a required one that is None
    raises ``ValueError``. ``control_id``, ``node_id`` and ``call_id`` are the
    caller's to add.
    """
    unknown = set(fields) - set(command.required) - set(command.optional)
    if unknown:
        raise TypeError(f"{command.method} has no field(s) {sorted(unknown)} in the command table")
    missing = [name for name in command.required if fields.get(name) is None]
    if missing:
        raise ValueError(f"{command.method} needs {', '.join(missing)}")
    params: JSONDict = {
        name: fields[name] for name in (*command.required, *command.optional) if fields.get(name) is not None
    }
    params.update(extra)
    return params


def media_list(media: Media) -> list[JSONDict]:
    """``play`` takes a list of media objects; a single one is accepted too."""
    if isinstance(media, Mapping):
        return [dict(media)]
    if isinstance(media, (str, bytes)) or not isinstance(media, Sequence):
        raise TypeError('media is a list of media objects, e.g. [{"type": "tts", "params": {"text": "Hello"}}]')
    return list(media)


def device_groups(devices: Devices) -> list[list[JSONDict]]:
    """Check the nesting of a device list (``dial``/``connect``): a list of lists of device
    objects, or one device (what ``relay_sync.devices`` builds), which becomes ``[[device]]``."""
    if isinstance(devices, Mapping):
        return [[dict(devices)]]
    if not isinstance(devices, Sequence) or isinstance(devices, (str, bytes)) or not devices:
        raise ValueError("devices must be a non-empty list of lists of devices: [[device, ...], ...]")
    groups: list[list[JSONDict]] = []
    for group in devices:
        if isinstance(group, Mapping) or not isinstance(group, Sequence) or not group:
            raise ValueError(
                "devices is a list of lists: [[device, ...], ...] (the outer list is tried in series, "
                "each inner list is rung in parallel); wrap a single device as [[device]]"
            )
        if not all(isinstance(device, Mapping) for device in group):
            raise ValueError('each device is an object such as {"type": "phone", "params": {...}}')
        groups.append([dict(device) for device in group])
    return groups


class CallCommands(abc.ABC):
    """Every call command as a typed method. ``Call`` supplies the two mechanisms:
    ``_command`` (send, return the result dict) and ``_start`` (register an
    Action, send, return the Action). Unknown keyword arguments go to the wire
    as they are; a ``404``/``410`` (the call is gone) returns ``{}``, or an
    action that is already done."""

    @abc.abstractmethod
    def _command(
        self, command: Command, fields: JSONDict, extra: Mapping[str, Any], control_id: str | None = None
    ) -> JSONDict:
        """Send a plain command; return its result (``{}`` when the call is gone)."""

    @abc.abstractmethod
    def _start(
        self,
        command: Operation[A],
        fields: JSONDict,
        extra: Mapping[str, Any],
        control_id: str | None,
        on_completed: OnCompleted,
        action_type: type[A] | None = None,
    ) -> A:
        """Register the command's Action (``action_type``, default the row's), send the command,
        return the Action."""

    # -- lifecycle ------------------------------------------------------------

    def answer(self, **extra: Any) -> JSONDict:
        """Answer the inbound call."""
        return self._command(ANSWER, {}, extra)

    def hangup(self, reason: str = "hangup", **extra: Any) -> JSONDict:
        """End the call (``reason``: ``hangup``, ``busy``, ``decline``...)."""
        return self._command(HANGUP, {"reason": reason}, extra)

    # -- operations that return an Action -------------------------------------

    def play(
        self,
        media: Media,
        *,
        volume: float | None = None,
        direction: str | None = None,
        loop: int | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> PlayAction:
        """Play media (``tts``, ``audio``, ``silence``, ``ringtone``); ends on ``finished`` or ``error``."""
        fields = {"play": media_list(media), "volume": volume, "direction": direction, "loop": loop}
        return self._start(PLAY, fields, extra, control_id, on_completed)

    def record(
        self,
        audio: JSONDict | None = None,
        *,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> RecordAction:
        """Record the call (``audio``: format, direction, beep, end_silence_timeout...)."""
        return self._start(RECORD, {"record": {"audio": dict(audio or {})}}, extra, control_id, on_completed)

    def play_and_collect(
        self,
        media: Media,
        collect: JSONDict,
        *,
        volume: float | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> CollectAction:
        """Play prompts while collecting digits or speech; ends on the collect result."""
        fields = {"play": media_list(media), "collect": collect, "volume": volume}
        return self._start(PLAY_AND_COLLECT, fields, extra, control_id, on_completed)

    def collect(
        self,
        *,
        digits: JSONDict | None = None,
        speech: JSONDict | None = None,
        initial_timeout: float | None = None,
        partial_results: bool | None = None,
        continuous: bool | None = None,
        send_start_of_input: bool | None = None,
        start_input_timers: bool | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> StandaloneCollectAction:
        """Collect digits or speech without a prompt; ends on the first final result."""
        fields = {
            "digits": digits,
            "speech": speech,
            "initial_timeout": initial_timeout,
            "partial_results": partial_results,
            "continuous": continuous,
            "send_start_of_input": send_start_of_input,
            "start_input_timers": start_input_timers,
        }
        return self._start(COLLECT, fields, extra, control_id, on_completed)

    def detect(
        self,
        detect: JSONDict,
        *,
        timeout: float | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> DetectAction:
        """Detect a machine, fax or digits (``{"type": "machine", "params": {}}``); ends on the first result."""
        return self._start(DETECT, {"detect": detect, "timeout": timeout}, extra, control_id, on_completed)

    def send_fax(
        self,
        document: str,
        *,
        identity: str | None = None,
        header_info: str | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> FaxAction:
        """Send the PDF at ``document`` (a URL) as a fax."""
        fields = {"document": document, "identity": identity, "header_info": header_info}
        return self._start(SEND_FAX, fields, extra, control_id, on_completed)

    def receive_fax(
        self, *, control_id: str | None = None, on_completed: OnCompleted = None, **extra: Any
    ) -> FaxAction:
        """Receive a fax on this call."""
        return self._start(RECEIVE_FAX, {}, extra, control_id, on_completed)

    def tap(
        self,
        tap: JSONDict,
        device: JSONDict,
        *,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> TapAction:
        """Copy the call's media (``tap``) to a remote ``device`` (RTP or WebSocket)."""
        return self._start(TAP, {"tap": tap, "device": device}, extra, control_id, on_completed)

    def stream(
        self,
        url: str,
        *,
        name: str | None = None,
        codec: str | None = None,
        track: str | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> StreamAction:
        """Stream the call's audio to a WebSocket ``url``."""
        fields = {"url": url, "name": name, "codec": codec, "track": track}
        return self._start(STREAM, fields, extra, control_id, on_completed)

    def pay(
        self,
        payment_connector_url: str,
        *,
        input_method: str | None = None,
        charge_amount: str | None = None,
        currency: str | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> PayAction:
        """Collect a payment through ``payment_connector_url`` (``input_method`` goes out as ``input``)."""
        fields = {
            "payment_connector_url": payment_connector_url,
            "input": input_method,
            "charge_amount": charge_amount,
            "currency": currency,
        }
        return self._start(PAY, fields, extra, control_id, on_completed)

    def transcribe(
        self,
        *,
        status_url: str | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> TranscribeAction:
        """Transcribe the call; ends on ``finished``."""
        return self._start(TRANSCRIBE, {"status_url": status_url}, extra, control_id, on_completed)

    def ai(
        self,
        *,
        prompt: JSONDict | None = None,
        SWAIG: JSONDict | None = None,
        ai_params: JSONDict | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
        **extra: Any,
    ) -> AIAction:
        """Hand the call to an AI agent (``ai_params`` goes out as ``params``)."""
        fields = {"prompt": prompt, "SWAIG": SWAIG, "params": ai_params}
        return self._start(AI, fields, extra, control_id, on_completed)

    # -- the async SDK's shortcuts: typed media and detectors over the operations above --

    def play_tts(
        self,
        text: str,
        *,
        language: str | None = None,
        gender: str | None = None,
        voice: str | None = None,
        volume: float | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
    ) -> PlayAction:
        """Speak ``text`` (``play`` with one ``media.tts`` item)."""
        item = media_builders.tts(text, language=language, gender=gender, voice=voice)
        return self.play(item, volume=volume, control_id=control_id, on_completed=on_completed)

    def play_audio(
        self,
        url: str,
        *,
        volume: float | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
    ) -> PlayAction:
        """Play the audio file at ``url``."""
        return self.play(media_builders.audio(url), volume=volume, control_id=control_id, on_completed=on_completed)

    def play_silence(
        self, duration: float, *, control_id: str | None = None, on_completed: OnCompleted = None
    ) -> PlayAction:
        """Play ``duration`` seconds of silence."""
        return self.play(media_builders.silence(duration), control_id=control_id, on_completed=on_completed)

    def play_ringtone(
        self,
        name: str,
        *,
        duration: float | None = None,
        volume: float | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
    ) -> PlayAction:
        """Play a country's ringtone (``"us"``, ``"gb"``...), for ``duration`` seconds or once."""
        item = media_builders.ringtone(name, duration=duration)
        return self.play(item, volume=volume, control_id=control_id, on_completed=on_completed)

    def prompt_tts(
        self,
        text: str,
        collect: JSONDict,
        *,
        language: str | None = None,
        gender: str | None = None,
        voice: str | None = None,
        volume: float | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
    ) -> CollectAction:
        """Speak ``text`` and collect what the caller presses or says (``play_and_collect``)."""
        item = media_builders.tts(text, language=language, gender=gender, voice=voice)
        return self.play_and_collect(item, collect, volume=volume, control_id=control_id, on_completed=on_completed)

    def prompt_audio(
        self,
        url: str,
        collect: JSONDict,
        *,
        volume: float | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
    ) -> CollectAction:
        """Play the audio file at ``url`` and collect what the caller presses or says."""
        item = media_builders.audio(url)
        return self.play_and_collect(item, collect, volume=volume, control_id=control_id, on_completed=on_completed)

    def detect_answering_machine(
        self,
        *,
        initial_timeout: float | None = None,
        end_silence_timeout: float | None = None,
        machine_voice_threshold: float | None = None,
        machine_words_threshold: int | None = None,
        detect_interruptions: bool | None = None,
        detect_message_end: bool | None = None,
        timeout: float | None = None,
        wait_for_beep: bool = False,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
    ) -> DetectAction:
        """Tell a person from an answering machine; ends on the first verdict (``HUMAN``,
        ``MACHINE``...), or with ``wait_for_beep=True`` (as in Node's SDK) on the machine's
        beep, when a message can be left. ``wait_for_beep`` stays on this side: it is not sent."""
        settings = {
            "initial_timeout": initial_timeout,
            "end_silence_timeout": end_silence_timeout,
            "machine_voice_threshold": machine_voice_threshold,
            "machine_words_threshold": machine_words_threshold,
            "detect_interruptions": detect_interruptions,
            "detect_message_end": detect_message_end,
        }
        detect = {"type": "machine", "params": {name: value for name, value in settings.items() if value is not None}}
        action = BeepDetectAction if wait_for_beep else DetectAction
        return self._start(DETECT, {"detect": detect, "timeout": timeout}, {}, control_id, on_completed, action)

    def detect_fax(
        self,
        *,
        tone: str | None = None,
        timeout: float | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
    ) -> DetectAction:
        """Detect a fax machine (``tone``: ``"CED"`` or ``"CNG"``)."""
        detect = {"type": "fax", "params": {} if tone is None else {"tone": tone}}
        return self.detect(detect, timeout=timeout, control_id=control_id, on_completed=on_completed)

    def detect_digit(
        self,
        *,
        digits: str | None = None,
        timeout: float | None = None,
        control_id: str | None = None,
        on_completed: OnCompleted = None,
    ) -> DetectAction:
        """Detect DTMF (only the keys in ``digits``, when given)."""
        detect = {"type": "digit", "params": {} if digits is None else {"digits": digits}}
        return self.detect(detect, timeout=timeout, control_id=control_id, on_completed=on_completed)

    # -- plain commands -------------------------------------------------------

    def connect(
        self,
        devices: Devices,
        *,
        ringback: Media | None = None,
        tag: str | None = None,
        max_duration: int | None = None,
        max_price_per_minute: float | None = None,
        status_url: str | None = None,
        **extra: Any,
    ) -> JSONDict:
        """Start bridging the call to other devices (same nesting as ``dial``) and return at once;
        watch ``calling.call.connect``, or use ``bridge()`` to block until the peer answers."""
        fields = {
            "devices": device_groups(devices),
            "ringback": None if ringback is None else media_list(ringback),
            "tag": tag,
            "max_duration": max_duration,
            "max_price_per_minute": max_price_per_minute,
            "status_url": status_url,
        }
        return self._command(CONNECT, fields, extra)

    def disconnect(self, **extra: Any) -> JSONDict:
        """Tear down a bridge made by ``connect``."""
        return self._command(DISCONNECT, {}, extra)

    def send_digits(self, digits: str, *, control_id: str | None = None, **extra: Any) -> JSONDict:
        """Send DTMF ``digits`` (``0-9 * # A-D``, ``w``/``W`` to pause)."""
        return self._command(SEND_DIGITS, {"digits": digits}, extra, control_id)

    def refer(self, device: JSONDict, *, status_url: str | None = None, **extra: Any) -> JSONDict:
        """Transfer a SIP call elsewhere with a SIP REFER."""
        return self._command(REFER, {"device": device, "status_url": status_url}, extra)

    def transfer(self, dest: str, **extra: Any) -> JSONDict:
        """Transfer the call to another RELAY destination (``dest``)."""
        return self._command(TRANSFER, {"dest": dest}, extra)

    def join_conference(self, name: str, *, stream_obj: JSONDict | None = None, **options: Any) -> JSONDict:
        """Join the conference ``name``; options (``muted``, ``beep``...) go to the wire as they
        are, ``stream_obj`` as ``stream`` (the async SDK's name)."""
        return self._command(JOIN_CONFERENCE, {"name": name, "stream": stream_obj}, options)

    def leave_conference(self, conference_id: str, **extra: Any) -> JSONDict:
        """Leave the conference ``conference_id``."""
        return self._command(LEAVE_CONFERENCE, {"conference_id": conference_id}, extra)

    def hold(self, **extra: Any) -> JSONDict:
        """Put the call on hold."""
        return self._command(HOLD, {}, extra)

    def unhold(self, **extra: Any) -> JSONDict:
        """Take the call off hold."""
        return self._command(UNHOLD, {}, extra)

    def denoise(self, **extra: Any) -> JSONDict:
        """Start noise reduction."""
        return self._command(DENOISE, {}, extra)

    def denoise_stop(self, **extra: Any) -> JSONDict:
        """Stop noise reduction."""
        return self._command(DENOISE_STOP, {}, extra)

    def live_transcribe(self, action: JSONDict, **extra: Any) -> JSONDict:
        """Start or stop live transcription (``action``: ``{"start": {...}}`` or ``"stop"``)."""
        return self._command(LIVE_TRANSCRIBE, {"action": action}, extra)

    def live_translate(self, action: JSONDict, *, status_url: str | None = None, **extra: Any) -> JSONDict:
        """Start or stop live translation."""
        return self._command(LIVE_TRANSLATE, {"action": action, "status_url": status_url}, extra)

    def echo(self, *, timeout: float | None = None, status_url: str | None = None, **extra: Any) -> JSONDict:
        """Echo the caller's audio back (a line test)."""
        return self._command(ECHO, {"timeout": timeout, "status_url": status_url}, extra)

    def amazon_bedrock(
        self,
        *,
        prompt: Any = None,
        SWAIG: JSONDict | None = None,
        ai_params: JSONDict | None = None,
        global_data: JSONDict | None = None,
        post_prompt: JSONDict | None = None,
        post_prompt_url: str | None = None,
        **extra: Any,
    ) -> JSONDict:
        """Hand the call to an Amazon Bedrock agent (``ai_params`` goes out as ``params``)."""
        fields = {
            "prompt": prompt,
            "SWAIG": SWAIG,
            "params": ai_params,
            "global_data": global_data,
            "post_prompt": post_prompt,
            "post_prompt_url": post_prompt_url,
        }
        return self._command(AMAZON_BEDROCK, fields, extra)

    def ai_message(
        self,
        *,
        message_text: str | None = None,
        role: str | None = None,
        reset: JSONDict | None = None,
        global_data: JSONDict | None = None,
        **extra: Any,
    ) -> JSONDict:
        """Send a message to the AI agent on the call."""
        fields = {"message_text": message_text, "role": role, "reset": reset, "global_data": global_data}
        return self._command(AI_MESSAGE, fields, extra)

    def ai_hold(self, *, timeout: str | None = None, prompt: str | None = None, **extra: Any) -> JSONDict:
        """Put the AI agent on hold."""
        return self._command(AI_HOLD, {"timeout": timeout, "prompt": prompt}, extra)

    def ai_unhold(self, *, prompt: str | None = None, **extra: Any) -> JSONDict:
        """Take the AI agent off hold."""
        return self._command(AI_UNHOLD, {"prompt": prompt}, extra)

    def join_room(self, name: str, *, status_url: str | None = None, **extra: Any) -> JSONDict:
        """Join the video room ``name``."""
        return self._command(JOIN_ROOM, {"name": name, "status_url": status_url}, extra)

    def leave_room(self, **extra: Any) -> JSONDict:
        """Leave the video room."""
        return self._command(LEAVE_ROOM, {}, extra)

    def queue_enter(
        self,
        queue_name: str,
        *,
        queue_id: str | None = None,
        status_url: str | None = None,
        control_id: str | None = None,
        **extra: Any,
    ) -> JSONDict:
        """Put the call into the queue ``queue_name``; watch ``calling.call.queue``."""
        fields = {"queue_name": queue_name, "queue_id": queue_id, "status_url": status_url}
        return self._command(QUEUE_ENTER, fields, extra, control_id)

    def queue_leave(
        self,
        queue_name: str,
        *,
        queue_id: str | None = None,
        status_url: str | None = None,
        control_id: str | None = None,
        **extra: Any,
    ) -> JSONDict:
        """Take the call out of the queue ``queue_name``."""
        fields = {"queue_name": queue_name, "queue_id": queue_id, "status_url": status_url}
        return self._command(QUEUE_LEAVE, fields, extra, control_id)

    def bind_digit(
        self,
        digits: str,
        bind_method: str,
        *,
        bind_params: JSONDict | None = None,
        realm: str | None = None,
        max_triggers: int | None = None,
        **extra: Any,
    ) -> JSONDict:
        """Run ``bind_method`` (a ``calling.*`` method) when the caller presses ``digits``."""
        fields = {
            "digits": digits,
            "bind_method": bind_method,
            "params": bind_params,
            "realm": realm,
            "max_triggers": max_triggers,
        }
        return self._command(BIND_DIGIT, fields, extra)

    def clear_digit_bindings(self, *, realm: str | None = None, **extra: Any) -> JSONDict:
        """Remove digit bindings (those of ``realm``, or all)."""
        return self._command(CLEAR_DIGIT_BINDINGS, {"realm": realm}, extra)

    def user_event(self, *, event: Any | None = None, **extra: Any) -> JSONDict:
        """Send a custom event on the call."""
        return self._command(USER_EVENT, {"event": event}, extra)
