"""An outbound campaign on Celery: one task per number, each dialing from its
worker process's own RelayClient (``relay_sync.contrib.celery``).

Start Redis, then a worker (each of its processes logs in to RELAY once)::

    celery -A campaign worker --pool prefork --concurrency 3

and enqueue a campaign with ``producer.py``. Settings come from the
environment: ``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN`` and
``SIGNALWIRE_SPACE`` for RELAY (as for ``RelayClient()``), and
``CAMPAIGN_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) for the broker,
the results and the ledger.

What a worker dying mid-call does: the task's message is acknowledged only
when the task is done (``acks_late``) and put back in the queue when its
process dies (``reject_on_worker_lost``), so the task runs again elsewhere.
That second delivery finds the tag's record in the ledger and returns the
outcome recorded there instead of dialing again.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any

from celery import Celery, Task
from ledger import Ledger, call_tag

from relay_sync import Call, DialFailedError, RelayClient, RelayError, RelayTimeoutError
from relay_sync.constants import END_REASON_BUSY, END_REASON_NO_ANSWER
from relay_sync.contrib import celery as relay_celery

REDIS_URL = os.environ.get("CAMPAIGN_REDIS_URL", "redis://127.0.0.1:6379/0")
RING_SECONDS = 20  # how long a number may ring before it counts as not answered
MESSAGE_TIMEOUT = 300.0  # seconds a message may take to play

# Outcomes, and the dial failure reasons that lead to them (anything else: "failed").
ANSWERED, BUSY, NO_ANSWER, FAILED, UNKNOWN = "answered", "busy", "no answer", "failed", "unknown"
FAILURE_OUTCOMES = {END_REASON_BUSY: BUSY, END_REASON_NO_ANSWER: NO_ANSWER}

app = Celery("campaign", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_acks_late=True,  # a task's message is acknowledged when the task is done, not when it starts
    task_reject_on_worker_lost=True,  # and goes back to the queue if its worker process dies first
    worker_prefetch_multiplier=1,  # a process holds one task at a time: a dead one strands no others
    # Redis hands an unacknowledged task to another worker after this long: keep it above the longest call.
    broker_transport_options={"visibility_timeout": 3600},
    result_expires=7 * 24 * 3600,
)
relay_celery.setup()  # one RelayClient per worker process, from the SIGNALWIRE_* environment
ledger = Ledger(REDIS_URL)
log = logging.getLogger("campaign")


@app.task(bind=True, name="campaign.call_number", max_retries=5)
def call_number(self: Task, campaign: str, number: str, from_number: str, message: str) -> dict[str, str]:
    """Call ``number`` once, play ``message`` if it answers, hang up; returns its ledger record."""
    try:
        client = relay_celery.get_client()
    except RelayError as error:  # RELAY unreachable: nothing was dialed, so trying later is safe
        raise self.retry(exc=error, countdown=5) from error
    earlier = ledger.claim(
        campaign, number, worker=f"{self.request.hostname} pid {os.getpid()}", pid=os.getpid(),
        session=client.relay_protocol,
    )  # fmt: skip
    if earlier is not None:
        # Delivered again (its worker died mid-call): the number was dialed already. Report
        # what the first delivery recorded; "unknown" if it died before the dial had an outcome.
        return {**earlier, "outcome": earlier.get("outcome", UNKNOWN)}
    outcome, call = dial(client, campaign, number, from_number)
    record = ledger.update(campaign, number, outcome=outcome)
    if call is not None:
        record = ledger.update(campaign, number, message=play_and_hang_up(call, message))
    return record


def dial(client: RelayClient, campaign: str, number: str, from_number: str) -> tuple[str, Call | None]:
    """Dial ``number`` with the tag of this campaign's call to it; the outcome, and the call if answered."""
    device = {"type": "phone", "params": {"to_number": number, "from_number": from_number, "timeout": RING_SECONDS}}
    try:
        call = client.dial([[device]], tag=call_tag(campaign, number), dial_timeout=RING_SECONDS + 10)
    except DialFailedError as error:
        return FAILURE_OUTCOMES.get(error.reason or "", FAILED), None
    except RelayTimeoutError:
        return NO_ANSWER, None
    except RelayError:
        return FAILED, None
    return ANSWERED, call


def play_and_hang_up(call: Call, message: str) -> str:
    """Play ``message``, then hang up; ``played``, or ``cut short`` when the call ended under it."""
    try:
        played = call.play([{"type": "tts", "params": {"text": message}}])
        played.wait(timeout=MESSAGE_TIMEOUT)
        return "played" if played.completed else "cut short"
    except RelayError:
        return "cut short"
    finally:
        try:
            call.hangup()  # a call that is already gone answers {} here
        except RelayError as error:
            log.warning("could not hang up call %s: %s", call.call_id, error)


@app.task(name="campaign.collect")
def collect(records: list[dict[str, Any]], campaign: str) -> dict[str, Any]:
    """The campaign's report, once every call_number task is done (a chord's final step)."""
    calls = sorted(records, key=lambda record: record["number"])
    return {"campaign": campaign, "calls": calls, "outcomes": dict(Counter(call["outcome"] for call in calls))}
