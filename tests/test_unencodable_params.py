"""A value JSON cannot carry (a Decimal, a set) in a dial's or an operation's
params: the caller gets a TypeError naming its type, nothing goes out, and
nothing is left registered (the tag and the control_id are free again)."""

from __future__ import annotations

import decimal

import pytest

from relay_sync import RelayClient
from relay_sync.testing import RelayTestServer

from .calling_support import WAIT, inbound_call, params_of, push_control

ALICE = {"type": "phone", "params": {"to_number": "+15550000001", "from_number": "+15559999999"}}
TTS = [{"type": "tts", "params": {"text": "hello"}}]


def test_a_dial_with_an_unencodable_value_leaves_nothing_behind(client: RelayClient, server: RelayTestServer) -> None:
    bad = {"type": "phone", "params": dict(ALICE["params"], extra=decimal.Decimal("1.5"))}

    with pytest.raises(TypeError, match="Decimal"):
        client.dial_future([[bad]], tag="once")
    assert client.stats()["dials_pending"] == 0

    future = client.dial_future([[ALICE]], tag="once")  # the tag is free again
    assert params_of(server.wait_for_request("calling.dial", timeout=WAIT))["tag"] == "once"
    assert len(server.requests("calling.dial")) == 1  # the bad one never went out
    assert client.stats()["dials_pending"] == 1 and not future.done()


def test_an_operation_with_an_unencodable_value_frees_its_control_id(
    client: RelayClient, server: RelayTestServer
) -> None:
    call = inbound_call(client, server)

    with pytest.raises(TypeError, match="Decimal"):
        call.play(TTS, control_id="C1", volume=decimal.Decimal(1))

    play = call.play(TTS, control_id="C1")  # the control_id is not held by the one that never started
    push_control(server.session(), "calling.call.play", call.call_id, "C1", state="finished")
    assert play.wait(timeout=WAIT).params["state"] == "finished"
    assert [params_of(f)["control_id"] for f in server.requests("calling.play")] == ["C1"]
