"""Actions through the real transport: what each operation puts on the wire,
which event ends it, its sub-commands, and how its future behaves."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import as_completed
from concurrent.futures import wait as wait_futures
from typing import Any, Callable

import pytest

from relay_sync import (
    Action,
    AIAction,
    Call,
    CollectAction,
    DetectAction,
    FaxAction,
    PayAction,
    PlayAction,
    RecordAction,
    RelayClient,
    RelayError,
    RelayTimeoutError,
    StandaloneCollectAction,
    StreamAction,
    TapAction,
    TranscribeAction,
)
from relay_sync.events import CallStateEvent, CollectEvent, RecordEvent, RelayEvent
from relay_sync.testing import RelayTestServer, ServerSession

from .calling_support import (
    WAIT,
    LogSignal,
    assert_control_id_free,
    inbound_call,
    params_of,
    push_control,
    push_state,
)

TTS = [{"type": "tts", "params": {"text": "Welcome"}}]
DIGITS = {"digits": {"max": 4, "terminators": "#"}}

JSONDict = dict[str, Any]
Start = Callable[[Call], Action]


@pytest.fixture
def call(client: RelayClient, server: RelayTestServer) -> Call:
    return inbound_call(client, server)


@pytest.fixture
def session(server: RelayTestServer, call: Call) -> ServerSession:
    return server.session()


def sent(server: RelayTestServer, method: str) -> JSONDict:
    return params_of(server.requests(method)[-1])


def ping(client: RelayClient) -> None:
    """A round trip: every event pushed before it has been handled when it returns."""
    client.execute("signalwire.ping", {})


# (start, action class, wire method, wire fields besides node_id/call_id/control_id,
#  event type, a non-terminal event's params, a terminal event's params)
OPERATIONS: list[tuple[str, Start, type[Action], str, JSONDict, str, JSONDict, JSONDict]] = [
    ("play", lambda c: c.play(TTS, volume=-3, loop=2), PlayAction, "calling.play",
     {"play": TTS, "volume": -3, "loop": 2}, "calling.call.play", {"state": "playing"}, {"state": "finished"}),
    ("play-error", lambda c: c.play(TTS[0], direction="listen"), PlayAction, "calling.play",
     {"play": TTS, "direction": "listen"}, "calling.call.play", {"state": "paused"}, {"state": "error"}),
    ("record", lambda c: c.record({"format": "wav", "beep": True}), RecordAction, "calling.record",
     {"record": {"audio": {"format": "wav", "beep": True}}}, "calling.call.record", {"state": "recording"},
     {"state": "finished", "url": "https://rec/1.wav", "duration": 3.5, "size": 1024}),
    ("record-no-input", lambda c: c.record(), RecordAction, "calling.record",
     {"record": {"audio": {}}}, "calling.call.record", {"state": "paused"}, {"state": "no_input"}),
    ("play_and_collect", lambda c: c.play_and_collect(TTS, DIGITS, volume=2), CollectAction,
     "calling.play_and_collect", {"play": TTS, "collect": DIGITS, "volume": 2}, "calling.call.collect",
     {"result": {"type": "start_of_input"}}, {"result": {"type": "digit", "params": {"digits": "12"}}, "final": True}),
    ("collect", lambda c: c.collect(digits={"max": 2}, partial_results=True, start_input_timers=False),
     StandaloneCollectAction, "calling.collect", {"digits": {"max": 2}, "partial_results": True, "start_input_timers": False},
     "calling.call.collect", {"result": {"type": "speech", "params": {"text": "hel"}}, "final": False},
     {"result": {"type": "speech", "params": {"text": "hello"}}, "final": True}),
    ("collect-no-input", lambda c: c.collect(speech={}), StandaloneCollectAction, "calling.collect", {"speech": {}},
     "calling.call.collect", {"state": "collecting"}, {"result": {"type": "no_input"}}),
    ("detect", lambda c: c.detect({"type": "machine", "params": {}}, timeout=30), DetectAction, "calling.detect",
     {"detect": {"type": "machine", "params": {}}, "timeout": 30}, "calling.call.detect", {"state": "detecting"},
     {"detect": {"type": "machine", "params": {"event": "HUMAN"}}}),
    ("send_fax", lambda c: c.send_fax("https://doc.pdf", identity="+1555"), FaxAction, "calling.send_fax",
     {"document": "https://doc.pdf", "identity": "+1555"}, "calling.call.fax", {"fax": {"type": "page", "params": {}}},
     {"fax": {"type": "finished", "params": {"success": True}}}),
    ("receive_fax", lambda c: c.receive_fax(), FaxAction, "calling.receive_fax", {}, "calling.call.fax",
     {"state": "receiving"}, {"state": "error"}),
    ("tap", lambda c: c.tap({"type": "audio"}, {"type": "ws", "params": {"uri": "wss://t"}}), TapAction, "calling.tap",
     {"tap": {"type": "audio"}, "device": {"type": "ws", "params": {"uri": "wss://t"}}}, "calling.call.tap",
     {"state": "tapping"}, {"state": "finished"}),
    ("stream", lambda c: c.stream("wss://s", name="s1", codec="PCMU", track="both", status_url="https://st"),
     StreamAction, "calling.stream", {"url": "wss://s", "name": "s1", "codec": "PCMU", "track": "both",
     "status_url": "https://st"}, "calling.call.stream", {"state": "streaming"}, {"state": "finished"}),
    ("pay", lambda c: c.pay("https://pay", input_method="dtmf", charge_amount="9.99", currency="usd"), PayAction,
     "calling.pay", {"payment_connector_url": "https://pay", "input": "dtmf", "charge_amount": "9.99", "currency": "usd"},
     "calling.call.pay", {"state": "collecting"}, {"state": "error"}),
    ("transcribe", lambda c: c.transcribe(status_url="https://t"), TranscribeAction, "calling.transcribe",
     {"status_url": "https://t"}, "calling.call.transcribe", {"state": "transcribing"}, {"state": "finished"}),
    ("ai", lambda c: c.ai(prompt={"text": "be nice"}, SWAIG={"functions": []}, ai_params={"temperature": 0.2}),
     AIAction, "calling.ai", {"prompt": {"text": "be nice"}, "SWAIG": {"functions": []}, "params": {"temperature": 0.2}},
     "calling.call.ai", {"state": "running"}, {"state": "finished"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "start", "action_class", "method", "fields", "event_type", "progress", "terminal"),
    OPERATIONS,
    ids=[op[0] for op in OPERATIONS],
)
def test_each_operation_sends_its_command_and_ends_on_its_terminal_event(
    client: RelayClient,
    call: Call,
    session: ServerSession,
    server: RelayTestServer,
    name: str,
    start: Start,
    action_class: type[Action],
    method: str,
    fields: JSONDict,
    event_type: str,
    progress: JSONDict,
    terminal: JSONDict,
) -> None:
    action = start(call)

    assert type(action) is action_class
    wire = sent(server, method)
    assert wire == {"node_id": call.node_id, "call_id": call.call_id, "control_id": action.control_id, **fields}

    push_control(session, event_type, call.call_id, action.control_id, **progress)
    ping(client)
    assert not action.is_done and action.result is None

    push_control(session, event_type, call.call_id, action.control_id, **terminal)
    event = action.wait(timeout=WAIT)

    assert event.event_type == event_type and event.control_id == action.control_id
    assert action.is_done and action.completed and action.result is event
    assert_control_id_free(call, action.control_id)


def test_record_result_carries_the_recording(call: Call, session: ServerSession) -> None:
    record = call.record()
    push_control(session, "calling.call.record", call.call_id, record.control_id, state="finished",
                 url="https://rec/1.mp3", duration=2.0, size=99)  # fmt: skip
    event = record.wait(timeout=WAIT)
    assert isinstance(event, RecordEvent) and event.url == "https://rec/1.mp3" and event.size == 99


def test_play_and_collect_ignores_its_play_phase(client: RelayClient, call: Call, session: ServerSession) -> None:
    prompt = call.play_and_collect(TTS, DIGITS)
    push_control(session, "calling.call.play", call.call_id, prompt.control_id, state="playing")
    push_control(session, "calling.call.play", call.call_id, prompt.control_id, state="finished")
    push_control(session, "calling.call.collect", call.call_id, prompt.control_id,
                 result={"type": "speech", "params": {"text": "he"}}, final=False)  # fmt: skip
    ping(client)
    assert not prompt.is_done

    push_control(session, "calling.call.collect", call.call_id, prompt.control_id,
                 result={"type": "digit", "params": {"digits": "42", "terminator": "#"}})  # fmt: skip
    event = prompt.wait(timeout=WAIT)
    assert isinstance(event, CollectEvent) and event.result["params"]["digits"] == "42"


def test_a_continuous_collect_ends_only_on_a_terminal_state(
    client: RelayClient, call: Call, session: ServerSession
) -> None:
    collect = call.collect(speech={}, continuous=True)
    push_control(session, "calling.call.collect", call.call_id, collect.control_id,
                 result={"type": "speech", "params": {"text": "one"}}, final=True)  # fmt: skip
    ping(client)
    assert not collect.is_done
    push_control(session, "calling.call.collect", call.call_id, collect.control_id, state="finished")
    assert collect.wait(timeout=WAIT).state == "finished"


def test_detect_ends_on_its_first_result(call: Call, session: ServerSession) -> None:
    detect = call.detect({"type": "digit", "params": {"digits": "123"}})
    push_control(session, "calling.call.detect", call.call_id, detect.control_id,
                 detect={"type": "digit", "params": {"event": "1"}})  # fmt: skip
    push_control(session, "calling.call.detect", call.call_id, detect.control_id,
                 detect={"type": "digit", "params": {"event": "2"}})  # fmt: skip
    assert detect.wait(timeout=WAIT).params["detect"]["params"]["event"] == "1"


SUBCOMMANDS: list[tuple[str, Start, Callable[[Any], JSONDict], str, JSONDict]] = [
    ("play.stop", lambda c: c.play(TTS), lambda a: a.stop(), "calling.play.stop", {}),
    ("play.pause", lambda c: c.play(TTS), lambda a: a.pause(), "calling.play.pause", {}),
    ("play.resume", lambda c: c.play(TTS), lambda a: a.resume(), "calling.play.resume", {}),
    ("play.volume", lambda c: c.play(TTS), lambda a: a.volume(-4.5), "calling.play.volume", {"volume": -4.5}),
    ("record.stop", lambda c: c.record(), lambda a: a.stop(), "calling.record.stop", {}),
    ("record.pause", lambda c: c.record(), lambda a: a.pause(), "calling.record.pause", {}),
    ("record.pause-behavior", lambda c: c.record(), lambda a: a.pause("skip"), "calling.record.pause", {"behavior": "skip"}),
    ("record.resume", lambda c: c.record(), lambda a: a.resume(), "calling.record.resume", {}),
    ("play_and_collect.stop", lambda c: c.play_and_collect(TTS, DIGITS), lambda a: a.stop(), "calling.play_and_collect.stop", {}),
    ("play_and_collect.volume", lambda c: c.play_and_collect(TTS, DIGITS), lambda a: a.volume(3), "calling.play_and_collect.volume", {"volume": 3}),
    ("play_and_collect.start_input_timers", lambda c: c.play_and_collect(TTS, DIGITS), lambda a: a.start_input_timers(), "calling.collect.start_input_timers", {}),
    ("collect.stop", lambda c: c.collect(digits={}), lambda a: a.stop(), "calling.collect.stop", {}),
    ("collect.start_input_timers", lambda c: c.collect(digits={}), lambda a: a.start_input_timers(), "calling.collect.start_input_timers", {}),
    ("detect.stop", lambda c: c.detect({"type": "fax"}), lambda a: a.stop(), "calling.detect.stop", {}),
    ("send_fax.stop", lambda c: c.send_fax("https://d"), lambda a: a.stop(), "calling.send_fax.stop", {}),
    ("receive_fax.stop", lambda c: c.receive_fax(), lambda a: a.stop(), "calling.receive_fax.stop", {}),
    ("tap.stop", lambda c: c.tap({"type": "audio"}, {"type": "rtp"}), lambda a: a.stop(), "calling.tap.stop", {}),
    ("stream.stop", lambda c: c.stream("wss://s"), lambda a: a.stop(), "calling.stream.stop", {}),
    ("pay.stop", lambda c: c.pay("https://p"), lambda a: a.stop(), "calling.pay.stop", {}),
    ("transcribe.stop", lambda c: c.transcribe(), lambda a: a.stop(), "calling.transcribe.stop", {}),
    ("ai.stop", lambda c: c.ai(), lambda a: a.stop(), "calling.ai.stop", {}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "start", "command", "method", "fields"), SUBCOMMANDS, ids=[s[0] for s in SUBCOMMANDS])
def test_action_subcommands_send_their_control_id(
    call: Call,
    server: RelayTestServer,
    name: str,
    start: Start,
    command: Callable[[Any], JSONDict],
    method: str,
    fields: JSONDict,
) -> None:
    action = start(call)
    assert command(action) == {"code": "200", "message": "OK"}
    assert sent(server, method) == {
        "node_id": call.node_id,
        "call_id": call.call_id,
        "control_id": action.control_id,
        **fields,
    }
    assert not action.is_done  # the server's final event ends it, not the request


@pytest.mark.parametrize("code", ["404", "409"])
def test_a_stop_on_a_finished_operation_is_not_an_error(call: Call, server: RelayTestServer, code: str) -> None:
    play = call.play(TTS)
    server.respond("calling.play.stop", code=code, message="control not found or already over")
    assert play.stop() == {}


def test_a_stop_after_the_final_event_sends_nothing(
    call: Call, session: ServerSession, server: RelayTestServer
) -> None:
    play = call.play(TTS)
    control_id = sent(server, "calling.play")["control_id"]
    session.push_event("calling.call.play", {"call_id": call.call_id, "control_id": control_id, "state": "finished"})
    assert play.wait(timeout=WAIT).state == "finished"
    assert play.stop() == {}
    assert server.requests("calling.play.stop") == []


def test_pause_on_an_operation_that_is_over_still_raises(call: Call, server: RelayTestServer) -> None:
    play = call.play(TTS)
    server.respond("calling.play.pause", code="409", message="already over")
    with pytest.raises(RelayError) as caught:
        play.pause()
    assert caught.value.code == "409"


def test_actions_on_one_call_resolve_independently(client: RelayClient, call: Call, session: ServerSession) -> None:
    play = call.play(TTS, control_id="my-play")
    record = call.record()
    collect = call.collect(digits={})
    assert play.control_id == "my-play"

    push_control(session, "calling.call.record", call.call_id, record.control_id, state="finished")
    assert record.wait(timeout=WAIT).state == "finished"
    ping(client)
    assert not play.is_done and not collect.is_done

    push_control(session, "calling.call.play", call.call_id, "my-play", state="finished")
    push_control(session, "calling.call.collect", call.call_id, collect.control_id, result={"type": "digit"})
    done, not_done = wait_futures([play.future, record.future, collect.future], timeout=WAIT)
    assert not not_done and len(done) == 3
    assert play.result is not None and play.result.event_type == "calling.call.play"


def test_futures_work_with_as_completed(call: Call, session: ServerSession) -> None:
    plays = [call.play(TTS) for _ in range(5)]
    by_future = {p.future: p for p in plays}
    for play in reversed(plays):
        push_control(session, "calling.call.play", call.call_id, play.control_id, state="finished")

    finished = [by_future[f] for f in as_completed(by_future, timeout=WAIT)]
    assert sorted(p.control_id for p in finished) == sorted(p.control_id for p in plays)
    assert all(f.result().state == "finished" for f in by_future)


def test_a_wait_that_times_out_leaves_the_action_usable(call: Call, session: ServerSession) -> None:
    play = call.play(TTS)

    with pytest.raises(TimeoutError):
        play.wait(timeout=0.05)
    with pytest.raises(RelayTimeoutError):
        play.wait(timeout=0)
    assert not play.is_done

    push_control(session, "calling.call.play", call.call_id, play.control_id, state="finished")
    assert play.wait(timeout=WAIT).state == "finished"
    assert play.completed


def test_on_completed_runs_on_the_handler_pool_and_a_raise_is_logged(call: Call, session: ServerSession) -> None:
    completed: queue.Queue[tuple[RelayEvent, str]] = queue.Queue()

    def on_completed(event: RelayEvent) -> None:
        completed.put((event, threading.current_thread().name))
        raise RuntimeError("callback bug")

    with LogSignal("on_completed callback") as signal:
        play = call.play(TTS, on_completed=on_completed)
        push_control(session, "calling.call.play", call.call_id, play.control_id, state="finished")
        event, thread_name = completed.get(timeout=WAIT)
        assert signal.seen.wait(WAIT)

    # Like the async SDK, the callback gets the terminal event.
    assert event is play.result and event.state == "finished" and event.control_id == play.control_id
    assert thread_name.startswith("relay_sync-handler")
    assert signal.records[0].exc_info is not None
    # A callback added after the fact runs too (at once, on the pool).
    again: queue.Queue[str] = queue.Queue()
    play.future.add_done_callback(lambda f: again.put(threading.current_thread().name))
    assert again.get(timeout=WAIT).startswith("relay_sync-handler")


@pytest.mark.parametrize("code", ["404", "410"])
def test_an_operation_on_a_gone_call_is_done_at_once(call: Call, server: RelayTestServer, code: str) -> None:
    server.respond("calling.play", code=code, message="call gone")
    completed: queue.Queue[RelayEvent] = queue.Queue()

    play = call.play(TTS, on_completed=completed.put)

    assert play.is_done and not play.completed
    event = play.wait(timeout=0)
    assert isinstance(event, CallStateEvent) and event.state == "ended" and event.call_id == call.call_id
    assert completed.get(timeout=WAIT) is event
    assert_control_id_free(call, play.control_id)


def test_a_running_actions_control_id_cannot_be_reused(call: Call, server: RelayTestServer) -> None:
    play = call.play(TTS)
    with pytest.raises(ValueError, match="already in use"):
        call.play(TTS, control_id=play.control_id)
    assert not play.is_done  # the running action is untouched
    push_control(server.session(), "calling.call.play", call.call_id, play.control_id, state="finished")
    play.wait(timeout=WAIT)
    assert_control_id_free(call, play.control_id)


def test_an_operation_that_fails_to_start_raises_and_fails_its_action(call: Call, server: RelayTestServer) -> None:
    server.respond("calling.record", code="500", message="recorder unavailable")

    with pytest.raises(RelayError) as excinfo:
        call.record(control_id="rec-1")

    assert excinfo.value.code == "500"
    # The failed action left the call's table: its control_id is free again.
    server.respond("calling.record", result={"code": "200", "message": "Recording"})
    assert not call.record(control_id="rec-1").is_done


def test_events_that_overtake_the_response_still_end_the_action(call: Call, server: RelayTestServer) -> None:
    def play_instantly(session: ServerSession, params: JSONDict) -> JSONDict:
        push_control(session, "calling.call.play", params["call_id"], params["control_id"], state="finished")
        return {"code": "200", "message": "Playing"}

    server.respond("calling.play", handler=play_instantly)
    play = call.play(TTS)
    assert play.is_done  # finished before play() even returned
    assert play.wait(timeout=0).state == "finished"


def test_an_operation_on_an_ended_call_is_done_at_once(call: Call, session: ServerSession) -> None:
    push_state(session, call.call_id, "ended")
    call.wait_for_ended(timeout=WAIT)

    play = call.play(TTS)

    assert play.is_done and play.wait(timeout=0) is call.ended.result(0)


def test_a_control_id_in_use_is_refused(call: Call) -> None:
    call.play(TTS, control_id="same")
    with pytest.raises(ValueError, match="same"):
        call.play(TTS, control_id="same")


def test_unknown_keyword_arguments_reach_the_wire(call: Call, server: RelayTestServer) -> None:
    play = call.play(TTS, status_url="https://status", listen={"direction": "both"})
    wire = sent(server, "calling.play")
    assert wire["status_url"] == "https://status" and wire["listen"] == {"direction": "both"}
    assert wire["control_id"] == play.control_id


def test_done_callbacks_run_for_actions_failed_by_disconnect_but_not_on_completed(
    server: RelayTestServer, make_client: Callable[..., RelayClient]
) -> None:
    client = make_client(contexts=["office"])
    completed: list[object] = []
    failed = threading.Event()

    call = inbound_call(client, server)
    action = call.play([{"type": "silence", "params": {"duration": 60}}], on_completed=completed.append)
    action.future.add_done_callback(lambda future: failed.set())
    client.disconnect()
    assert failed.is_set()  # done-callbacks ran before disconnect() returned, not dropped with the pool
    with pytest.raises(RelayError):
        action.wait(timeout=0)
    # Like the async SDK, on_completed gets the event that ended the action: a failure has none.
    assert completed == []
