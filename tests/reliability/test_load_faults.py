"""The fault matrix, load rows: an inbound flood at ten times
``max_active_calls``, and fifty threads sending messages, dialing and driving
calls while the link keeps dropping under them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from relay_sync import Call, RelayClient, RelayError
from relay_sync.testing import JournalEntry, RelayTestServer

from ..calling_support import push_inbound, script_call_lifecycle
from .support import (
    STEP,
    CallDesk,
    assert_serves,
    assert_tables_settled,
    current_session,
    phone,
    relay_thread_count,
    script_everything,
    thread_ceiling,
)

MakeClient = Callable[..., RelayClient]


def test_inbound_flood_at_ten_times_max_active_calls(server: RelayTestServer, make_client: MakeClient) -> None:
    script_call_lifecycle(server)
    client = make_client(contexts=["office"], max_active_calls=10)
    desk = CallDesk(client)

    for wave in range(2):  # the second wave shows the first one left nothing behind
        desk.gate.clear()  # handlers hold their calls: the client stays at capacity
        session = current_session(client, server)
        passes_before = len(server.requests("calling.pass"))
        offered = [push_inbound(session) for _ in range(100)]
        server.wait_for_request("calling.pass", count=passes_before + 90)

        accepted = desk.wait_arrived(10 * (wave + 1))[-10:]
        passed = [f["params"]["call_id"] for f in server.requests("calling.pass")[passes_before:]]
        assert sorted(accepted + passed) == sorted(offered)  # each call taken or passed back, once
        stats = client.stats()
        # All ten held calls are inbound (nothing is dialed here): the client is at capacity.
        assert stats["active_calls"] == 10 and stats["dials_pending"] == 0
        assert stats["calls_passed"] == 90 * (wave + 1)
        assert relay_thread_count() <= thread_ceiling(client)  # threads stay bounded at the peak

        desk.gate.set()
        assert set(desk.wait_outcomes(accepted).values()) == {"done"}  # every accepted call completed
        assert_tables_settled(client)

    assert desk.peak_calls <= 10
    assert len(server.requests("calling.answer")) == 20
    assert_serves(client, server, desk)


class Flapper:
    """Drops the client's socket each time ``every`` more frames arrived from it, ``times`` times."""

    def __init__(self, server: RelayTestServer, *, every: int, times: int) -> None:
        self.server = server
        self.every = every
        self.times = times
        self.flaps = 0
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-flapper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for flap in range(self.times):
                if self.done.is_set():
                    return
                session = self.server.wait_for_session(flap + 1, timeout=STEP)
                self.server.wait_for_journal(_frames_from(session.number), count=self.every, timeout=STEP)
                session.drop()
                self.flaps += 1
        except TimeoutError:
            return  # the traffic ended before every flap was used
        finally:
            self.done.set()

    def stop(self) -> None:
        self.done.set()
        self._thread.join(timeout=STEP * 2)


def _frames_from(session: int) -> Callable[[JournalEntry], bool]:
    return lambda entry: entry.session == session and entry.direction == "recv"


def hang_up_for_sure(call: Call) -> None:
    """Hang up, trying again while the link eats the command, until the call has ended."""
    for _ in range(10):
        if call.ended.done():
            break
        try:
            call.hangup()
        except RelayError:
            continue
    call.wait_for_ended(timeout=STEP)


def test_fifty_threads_of_traffic_while_the_link_flaps(server: RelayTestServer, make_client: MakeClient) -> None:
    script_everything(server)
    client = make_client(contexts=["office"], max_active_calls=20)
    flapper = Flapper(server, every=120, times=5)

    def worker(number: int) -> list[Any]:
        outcomes: list[Any] = []
        for _ in range(3):
            try:
                message = client.send_message(to_number="+15551110000", from_number="+15552220000", body=f"#{number}")
                outcomes.append(message.wait(timeout=STEP).state)  # accepted ⇒ delivered
            except RelayError as error:
                outcomes.append(error)
            try:
                call = client.dial([[phone(f"+1555300{number:04d}")]], dial_timeout=2.0)
            except RelayError as error:
                outcomes.append(error)
                continue
            for command in (call.hold, call.unhold, lambda call=call: call.send_digits("12")):
                try:
                    outcomes.append(command()["code"])
                except RelayError as error:
                    outcomes.append(error)
            hang_up_for_sure(call)
            outcomes.append(call.state)
        return outcomes

    with ThreadPoolExecutor(max_workers=50, thread_name_prefix="test-traffic") as pool:
        results = [outcome for outcomes in pool.map(worker, range(50), timeout=STEP * 4) for outcome in outcomes]
    flapper.stop()

    assert flapper.flaps >= 3, "the link flapped while the traffic ran"
    successes = [r for r in results if not isinstance(r, BaseException)]
    assert set(successes) <= {"delivered", "200", "ended"}
    assert all(isinstance(r, RelayError) for r in results if isinstance(r, BaseException))
    assert len(successes) > len(results) // 2
    assert relay_thread_count() <= thread_ceiling(client)
    assert_tables_settled(client)
    assert_serves(client, server)
