"""A collect result whose ``type`` is not a string (a list or an object from a
misbehaving server) is a result like any other: the event is applied, the
action ends with it and the call's listeners see it, instead of the event
being dropped on the I/O thread."""

from __future__ import annotations

import queue

import pytest

from relay_sync import RelayClient, RelayEvent
from relay_sync.testing import RelayTestServer

from .calling_support import WAIT, inbound_call, push_control


@pytest.mark.parametrize("odd_type", [["digit"], {"kind": "digit"}])
def test_a_collect_result_with_an_unhashable_type_ends_the_collect(
    client: RelayClient, server: RelayTestServer, odd_type: object
) -> None:
    call = inbound_call(client, server)
    seen: queue.Queue[RelayEvent] = queue.Queue()
    call.on("calling.call.collect", seen.put)
    collect = call.collect(digits={"max": 2})

    result = {"type": odd_type, "params": {"digits": "12"}}
    push_control(server.session(), "calling.call.collect", call.call_id, collect.control_id, result=result)

    event = collect.wait(timeout=WAIT)
    assert event.params["result"] == result
    assert seen.get(timeout=WAIT).params["result"] == result
