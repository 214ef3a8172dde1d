"""The emulator is a dev server people leave running: many short sessions,
calls, messages and link drops must leave every table it keeps bounded
(checked through ``RelayEmulator.table_sizes()``)."""

from __future__ import annotations

import pytest

from relay_sync import Call
from relay_sync.testing import RelayEmulator
from relay_sync.testing.clock import MIN_COMPACT_AT, Scheduler

from ..emulator_support import CALLER, OFFICE, TIME_FACTOR
from ..fast_clients import FAST
from .support import STEP

MAX_JOURNAL = 100
CLOSED_KEPT = 10  # max(10, MAX_JOURNAL // 100)
ROUNDS = 3 * CLOSED_KEPT
RING_TIMEOUT = STEP / TIME_FACTOR  # simulated seconds: a loaded machine still answers in time


def one_round(emulator: RelayEmulator, round_number: int) -> None:
    """A client logs in, takes two calls and a text, loses its link once, and leaves."""
    client = emulator.client(contexts=["office"], **FAST)
    client.connect()
    try:

        @client.on_call
        def handle(call: Call) -> None:
            call.answer()
            call.hangup()

        for _ in range(2):
            assert emulator.place_call(OFFICE, CALLER, context="office").wait_ended(timeout=STEP) == "hangup"
        sent = client.send_message(to_number=CALLER, from_number=OFFICE, body=f"round {round_number}")
        assert sent.wait(timeout=STEP).state == "delivered"
        dropped = emulator.live_sessions()[0].number
        emulator.drop_sessions()
        emulator.wait_for_journal(lambda entry: entry.session > dropped and _is_login_result(entry.frame))
        client.execute("signalwire.ping", {}, timeout=STEP)  # on the resumed session
    finally:
        client.disconnect()


def _is_login_result(frame: object) -> bool:
    return isinstance(frame, dict) and isinstance(frame.get("result"), dict) and "protocol" in frame["result"]


def test_many_short_sessions_leave_every_table_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "4")
    with RelayEmulator(time_factor=TIME_FACTOR, ring_timeout=RING_TIMEOUT, max_journal=MAX_JOURNAL) as emulator:
        for number in range(ROUNDS):
            one_round(emulator, number)
        sizes = emulator.table_sizes()
        sessions_served = max(entry.session for entry in emulator.journal) + 1  # numbered in order

    # Far more happened than the tables may hold: two sessions a round, each
    # answering a dozen events...
    assert sessions_served >= 2 * ROUNDS
    assert sizes["journal"] <= MAX_JOURNAL + MAX_JOURNAL // 8
    assert sizes["answers"] <= MAX_JOURNAL
    assert sizes["sessions"] <= CLOSED_KEPT + 1  # the closed ones kept, and the one that just closed
    assert sizes["protocols"] <= CLOSED_KEPT + 1
    # ...and nothing of the finished calls, messages and sessions is left behind.
    assert sizes["calls"] == 0
    assert sizes["held"] == 0
    assert sizes["calls_waiting"] == sizes["offers_waiting"] == sizes["connecting"] == 0
    assert sizes["unacked_events"] == 0
    assert sizes["lost_ack_sessions"] == 0
    assert sizes["delayed_answers"] == 0
    assert sizes["routing_contexts"] == 1


def test_table_sizes_names_every_table() -> None:
    with RelayEmulator() as emulator:
        sizes = emulator.table_sizes()
    assert set(sizes) == {
        "journal", "sessions", "answers", "protocols", "delayed_answers", "calls", "held", "calls_waiting",
        "event_backlogs", "unacked_events", "lost_ack_sessions", "connecting", "offers_waiting", "scheduled",
        "routing_contexts", "transcript", "recordings", "refresh_tokens", "chat_channels", "video_rooms",
        "video_subscribers",
    }  # fmt: skip
    assert all(size == 0 for size in sizes.values())


def test_cancelled_timers_do_not_pile_up_in_the_network_clock() -> None:
    scheduler = Scheduler()
    for _ in range(5000):  # ring timeouts and max_duration timers cancelled long before they are due
        scheduler.after_real(3600.0, lambda: None).cancel()
    kept = scheduler.after_real(3600.0, lambda: None)
    assert scheduler.pending <= 2 * MIN_COMPACT_AT
    assert not kept.cancelled
