"""Frame parity with SignalWire's async SDK (``signalwire-sdk``, module
``signalwire.relay``, installed with the ``bench`` extra): the same calls are
made through both SDKs against one loopback test server, and the params of
every request each sent are compared. Nothing of that SDK is copied here, only
called.

    python benchmarks/parity_audit.py      # exit status 0 when every frame matches

Control ids are random on both sides and compared as "present"; everything
else must be equal. Run it after changing a command table row.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import sys
import threading
from types import SimpleNamespace
from typing import Any, Callable

import signalwire.relay.client as sdk_client
import websockets

from relay_sync import RelayClient
from relay_sync.testing import RelayTestServer
from relay_sync.testing.server import JournalEntry

CALL = {"call_id": "audit-call", "node_id": "audit-node", "project_id": "test", "context": "office"}
TTS = [{"type": "tts", "params": {"text": "hi"}}]
COLLECT = {"digits": {"max": 2}}
PHONE = [[{"type": "phone", "params": {"to_number": "+15550101", "from_number": "+15550100"}}]]
SIP = {"type": "sip", "params": {"to": "sip:desk@example.com"}}
MARK, SUB = "audit.mark", "audit.sub"
_ids = itertools.count()


def cid() -> str:
    """A fresh control_id (relay_sync refuses one that a running action holds)."""
    return f"audit-{next(_ids)}"


Case = Callable[[Any], Any]

# fmt: off
CALL_CASES: list[tuple[str, Case]] = [
    ("play", lambda c: c.play(TTS, volume=2, direction="both", loop=2, control_id=cid())),
    ("play_tts", lambda c: c.play_tts("hi", language="en-US", gender="male", voice="v", volume=1)),
    ("play_audio", lambda c: c.play_audio("https://u/a.mp3", volume=1)),
    ("play_silence", lambda c: c.play_silence(2)),
    ("play_ringtone", lambda c: c.play_ringtone("us", duration=3, volume=1)),
    ("record", lambda c: c.record({"beep": True}, control_id=cid())),
    ("record (default)", lambda c: c.record(control_id=cid())),
    ("play_and_collect", lambda c: c.play_and_collect(TTS, COLLECT, volume=1, control_id=cid())),
    ("prompt_tts", lambda c: c.prompt_tts("t", COLLECT, language="en", gender="f", voice="v", volume=2)),
    ("prompt_audio", lambda c: c.prompt_audio("https://u/a.mp3", COLLECT, volume=2)),
    ("collect", lambda c: c.collect(digits={"max": 1}, speech={}, initial_timeout=3, partial_results=True,
                                    continuous=True, send_start_of_input=True, start_input_timers=False,
                                    control_id=cid())),
    ("detect", lambda c: c.detect({"type": "machine", "params": {}}, timeout=5, control_id=cid())),
    ("detect_answering_machine", lambda c: c.detect_answering_machine(
        initial_timeout=1, end_silence_timeout=2, machine_voice_threshold=3, machine_words_threshold=4,
        detect_interruptions=True, detect_message_end=False, timeout=5)),
    ("detect_fax", lambda c: c.detect_fax(tone="CED", timeout=3)),
    ("detect_digit", lambda c: c.detect_digit(digits="12", timeout=3)),
    ("send_fax", lambda c: c.send_fax("https://u/d.pdf", identity="+15550100", header_info="h", control_id=cid())),
    ("receive_fax", lambda c: c.receive_fax(control_id=cid())),
    ("tap", lambda c: c.tap({"type": "audio", "params": {}}, {"type": "rtp", "params": {"addr": "1.2.3.4", "port": 9}},
                            control_id=cid())),
    ("stream", lambda c: c.stream("wss://x", name="n", codec="PCMU", track="both", status_url="s",
                                  status_url_method="POST", authorization_bearer_token="t",
                                  custom_parameters={"a": 1}, control_id=cid())),
    ("pay", lambda c: c.pay("https://pay", input_method="dtmf", status_url="s", payment_method="credit-card",
                            timeout="5", max_attempts="2", security_code="true", postal_code="true",
                            min_postal_code_length="5", token_type="one-time", charge_amount="10.00", currency="usd",
                            language="en", voice="v", description="d", valid_card_types="visa",
                            parameters=[{"name": "a", "value": "b"}], prompts=[{"for": "x"}], control_id=cid())),
    ("transcribe", lambda c: c.transcribe(status_url="s", control_id=cid())),
    ("ai", lambda c: c.ai(agent="a", prompt={"text": "p"}, post_prompt={"text": "pp"}, post_prompt_url="u",
                          post_prompt_auth_user="u", post_prompt_auth_password="p", global_data={"g": 1},
                          pronounce=[{"replace": "a"}], hints=["h"], languages=[{"name": "en"}],
                          SWAIG={"functions": []}, ai_params={"temperature": 1}, control_id=cid())),
    ("answer", lambda c: c.answer()),
    ("answer (options)", lambda c: c.answer(max_duration=60)),
    ("hangup", lambda c: c.hangup("busy")),
    ("pass_", lambda c: c.pass_()),
    ("connect", lambda c: c.connect(PHONE, ringback=TTS, tag="t", max_duration=10, max_price_per_minute=1.5,
                                    status_url="s")),
    ("disconnect", lambda c: c.disconnect()),
    ("send_digits", lambda c: c.send_digits("123", control_id=cid())),
    ("refer", lambda c: c.refer(SIP, status_url="s")),
    ("transfer", lambda c: c.transfer("dest")),
    ("join_conference", lambda c: c.join_conference(
        "c", muted=True, beep="true", start_on_enter=True, end_on_exit=False, wait_url="w", max_participants=5,
        record="r", region="us", trim="t", coach="c", status_callback="s", status_callback_event="e",
        status_callback_event_type="t", status_callback_method="POST", recording_status_callback="r",
        recording_status_callback_event="e", recording_status_callback_event_type="t",
        recording_status_callback_method="GET", stream_obj={"url": "wss://s"})),
    ("leave_conference", lambda c: c.leave_conference("id")),
    ("hold", lambda c: c.hold()),
    ("unhold", lambda c: c.unhold()),
    ("denoise", lambda c: c.denoise()),
    ("denoise_stop", lambda c: c.denoise_stop()),
    ("live_transcribe", lambda c: c.live_transcribe({"start": {"lang": "en"}})),
    ("live_translate", lambda c: c.live_translate({"start": {}}, status_url="s")),
    ("echo", lambda c: c.echo(timeout=5, status_url="s")),
    ("echo (bare)", lambda c: c.echo()),
    ("bind_digit", lambda c: c.bind_digit("1", "calling.play", bind_params={"play": TTS}, realm="r",
                                          max_triggers=2)),
    ("clear_digit_bindings", lambda c: c.clear_digit_bindings(realm="r")),
    ("clear_digit_bindings (all)", lambda c: c.clear_digit_bindings()),
    ("amazon_bedrock", lambda c: c.amazon_bedrock(prompt={"text": "p"}, SWAIG={"f": 1}, ai_params={"t": 1},
                                                  global_data={"g": 1}, post_prompt={"text": "pp"},
                                                  post_prompt_url="u")),
    ("ai_message", lambda c: c.ai_message(message_text="m", role="system", reset={"r": 1}, global_data={"g": 1})),
    ("ai_hold", lambda c: c.ai_hold(timeout="1", prompt="p")),
    ("ai_unhold", lambda c: c.ai_unhold(prompt="p")),
    ("join_room", lambda c: c.join_room("r", status_url="s")),
    ("leave_room", lambda c: c.leave_room()),
    ("user_event", lambda c: c.user_event(event="e")),
    ("user_event (bare)", lambda c: c.user_event()),
    ("queue_enter", lambda c: c.queue_enter("q", status_url="s", control_id=cid())),
    ("queue_leave", lambda c: c.queue_leave("q", queue_id="i", status_url="s", control_id=cid())),
]

# (name, start the action, the sub-command on it): only the sub-command's frame is compared.
ACTION_CASES: list[tuple[str, Case, Case]] = [
    ("play.pause", lambda c: c.play(TTS, control_id=cid()), lambda a: a.pause(behavior="skip")),
    ("play.pause (bare)", lambda c: c.play(TTS, control_id=cid()), lambda a: a.pause()),
    ("play.resume", lambda c: c.play(TTS, control_id=cid()), lambda a: a.resume()),
    ("play.volume", lambda c: c.play(TTS, control_id=cid()), lambda a: a.volume(3)),
    ("play.stop", lambda c: c.play(TTS, control_id=cid()), lambda a: a.stop()),
    ("record.pause", lambda c: c.record(control_id=cid()), lambda a: a.pause(behavior="silence")),
    ("record.resume", lambda c: c.record(control_id=cid()), lambda a: a.resume()),
    ("record.stop", lambda c: c.record(control_id=cid()), lambda a: a.stop()),
    ("play_and_collect.pause", lambda c: c.play_and_collect(TTS, COLLECT, control_id=cid()), lambda a: a.pause()),
    ("play_and_collect.resume", lambda c: c.play_and_collect(TTS, COLLECT, control_id=cid()), lambda a: a.resume()),
    ("play_and_collect.volume", lambda c: c.play_and_collect(TTS, COLLECT, control_id=cid()),
     lambda a: a.volume(2)),
    ("play_and_collect.stop", lambda c: c.play_and_collect(TTS, COLLECT, control_id=cid()), lambda a: a.stop()),
    ("play_and_collect.start_input_timers", lambda c: c.play_and_collect(TTS, COLLECT, control_id=cid()),
     lambda a: a.start_input_timers()),
    ("collect.stop", lambda c: c.collect(digits={}, control_id=cid()), lambda a: a.stop()),
    ("collect.start_input_timers", lambda c: c.collect(digits={}, control_id=cid()),
     lambda a: a.start_input_timers()),
    ("detect.stop", lambda c: c.detect({"type": "fax", "params": {}}, control_id=cid()), lambda a: a.stop()),
    ("send_fax.stop", lambda c: c.send_fax("d", control_id=cid()), lambda a: a.stop()),
    ("receive_fax.stop", lambda c: c.receive_fax(control_id=cid()), lambda a: a.stop()),
    ("tap.stop", lambda c: c.tap({"type": "audio"}, {"type": "rtp"}, control_id=cid()), lambda a: a.stop()),
    ("stream.stop", lambda c: c.stream("wss://x", control_id=cid()), lambda a: a.stop()),
    ("pay.stop", lambda c: c.pay("u", control_id=cid()), lambda a: a.stop()),
    ("transcribe.stop", lambda c: c.transcribe(control_id=cid()), lambda a: a.stop()),
    ("ai.stop", lambda c: c.ai(control_id=cid()), lambda a: a.stop()),
]
# fmt: on

CLIENT_CASES: list[tuple[str, Case]] = [
    ("dial", lambda client: client.dial(PHONE, tag="audit-tag", max_duration=5, dial_timeout=0.2)),
    (
        "send_message",
        lambda client: client.send_message(
            to_number="+15550101",
            from_number="+15550100",
            context="office",
            body="b",
            media=["m"],
            tags=["t"],
            region="us",
        ),
    ),
]


# -- driving one SDK ------------------------------------------------------------------


class Driver:
    """Runs the cases on one SDK, marking each in the server's journal first."""

    def __init__(self, execute: Callable[[str, dict[str, Any]], Any], settle: Callable[[Any], Any]) -> None:
        self.execute = execute  # the SDK's client.execute
        self.settle = settle  # awaits a coroutine (async SDK) or returns the value (relay_sync)

    def run(self, call: Any, client: Any) -> None:
        for name, case in CALL_CASES:
            self._mark(name)
            self._try(name, case, call)
        for name, start, sub in ACTION_CASES:
            self._mark(name)
            action = self._try(name, start, call)
            self.settle(self.execute(SUB, {}))
            if action is not None:
                self._try(name, sub, action)
        for name, case in CLIENT_CASES:
            self._mark(name)
            self._try(name, case, client)
        self._mark("end")

    def _mark(self, name: str) -> None:
        self.settle(self.execute(MARK, {"case": name}))

    def _try(self, name: str, case: Case, target: Any) -> Any:
        try:
            return self.settle(case(target))
        except Exception as error:  # noqa: BLE001 - a dial that times out is expected; the frame went out
            if name != "dial":
                print(f"{name}: {error!r}", file=sys.stderr)
            return None


def run_async_sdk(server: RelayTestServer) -> None:
    # The async SDK always dials wss://; the loopback server speaks ws://.
    def plain_connect(uri: str, **options: Any) -> Any:
        return websockets.connect(uri.replace("wss://", "ws://", 1), **options)

    sdk_client.websockets = SimpleNamespace(connect=plain_connect, exceptions=websockets.exceptions)  # type: ignore[attr-defined]

    async def main() -> None:
        client = sdk_client.RelayClient(project="test", token="test", host=server.relay_host, contexts=["office"])
        calls: asyncio.Queue[Any] = asyncio.Queue()
        client.on_call(calls.put)
        await client.connect()
        server.session().push_event("calling.call.receive", {**CALL, "call_state": "ringing"})
        call = await asyncio.wait_for(calls.get(), 5)
        loop = asyncio.get_running_loop()

        # The cases are plain calls shared with relay_sync: run them on a worker thread and
        # await each coroutine they return on the SDK's loop before the next case.
        def drive() -> None:
            def run_sync(value: Any) -> Any:
                if not inspect.isawaitable(value):
                    return value
                return asyncio.run_coroutine_threadsafe(_await(value), loop).result(10)

            Driver(client.execute, run_sync).run(call, client)

        await loop.run_in_executor(None, drive)
        await client.disconnect()

    asyncio.run(main())


async def _await(value: Any) -> Any:
    return await value


def run_relay_sync(server: RelayTestServer) -> None:
    client = RelayClient(**server.client_kwargs(contexts=["office"]))
    arrived = threading.Event()
    calls: list[Any] = []

    @client.on_call
    def take(call: Any) -> None:
        calls.append(call)
        arrived.set()

    with client:
        server.session().push_event("calling.call.receive", {**CALL, "call_state": "ringing"})
        if not arrived.wait(5):
            raise RuntimeError("relay_sync never received the audit call")
        Driver(client.execute, lambda value: value).run(calls[0], client)


# -- comparing ---------------------------------------------------------------------------


def frames_by_case(journal: list[JournalEntry], session: int) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    cases: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    current: str | None = None
    for entry in journal:
        frame = entry.frame
        if (
            entry.session != session
            or entry.direction != "recv"
            or not isinstance(frame, dict)
            or "method" not in frame
        ):
            continue
        method, params = frame["method"], dict(frame.get("params") or {})
        if method == MARK:
            current = params["case"]
            cases[current] = []
        elif method == SUB and current is not None:
            cases[current] = []  # only the sub-command counts
        elif current is not None and method not in ("signalwire.connect", "signalwire.ping"):
            if "control_id" in params:
                params["control_id"] = "<control_id>"
            cases[current].append((method, params))
    return cases


def main() -> int:
    with RelayTestServer() as server:
        run_async_sdk(server)
        theirs_session = server.sessions[-1].number
        run_relay_sync(server)
        ours_session = server.sessions[-1].number
        journal = list(server.journal)
    theirs = frames_by_case(journal, theirs_session)
    ours = frames_by_case(journal, ours_session)
    differ = [name for name in theirs if name != "end" and theirs[name] != ours.get(name)]
    for name in differ:
        print(f"DIFFERS: {name}")
        print(f"  async SDK: {json.dumps(theirs[name], sort_keys=True)}")
        print(f"  relay_sync: {json.dumps(ours.get(name), sort_keys=True)}")
    empty = [name for name in theirs if name != "end" and not theirs[name]]
    for name in empty:
        print(f"NOT COMPARED (the async SDK sent nothing): {name}")
    compared = len(theirs) - 1 - len(empty)
    print(f"{compared - len([n for n in differ if n not in empty])} of {compared} cases send identical frames")
    return 1 if differ or empty else 0


if __name__ == "__main__":
    sys.exit(main())
