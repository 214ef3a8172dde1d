"""The campaign's ledger: one Redis hash per call tag, claimed before the
number is dialed, so that a task delivered twice never calls twice.

Why a ledger of our own: RELAY cannot look a call up by its tag from another
session. A call's events go to the session that dialed it, and when a worker
process dies that session dies with it; the retried task runs in another
process, on another session, and nothing on the wire tells it the number was
already dialed. So the task writes "this tag is being dialed" to durable
storage first (Redis, which the campaign already runs for Celery), and a later
delivery of the same task reads it instead of dialing.

Each change is also published on ``campaign:<name>:calls``, for whoever
watches the campaign live (a dashboard, a test).

Used from the worker processes (tasks) and the producer; redis-py's pool is
fork-safe, so one Ledger per process is enough.
"""

from __future__ import annotations

import json
from typing import Any

import redis

KEEP_SECONDS = 7 * 24 * 3600  # how long a campaign's records are kept


def call_tag(campaign: str, number: str) -> str:
    """The tag a campaign's call to ``number`` is dialed with: the same for every delivery of its task."""
    return f"{campaign}:{number}"


class Ledger:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, decode_responses=True)

    def claim(self, campaign: str, number: str, /, *, worker: str, **about: Any) -> dict[str, str] | None:
        """Claim the call to ``number`` for ``worker`` (this delivery of its task).

        Returns None when this delivery owns it now (go and dial), else the
        record left by the delivery that claimed it first (do not dial).
        ``about`` (pid, session...) is stored with a new claim. ``deliveries``
        counts how many times the call's task ran.
        """
        key = _key(call_tag(campaign, number))
        with self._redis.pipeline() as pipe:  # MULTI: one claim wins, however many deliveries race
            pipe.hincrby(key, "deliveries", 1)
            pipe.hsetnx(key, "worker", worker)
            pipe.expire(key, KEEP_SECONDS)
            _, won, _ = pipe.execute()
        if not won:
            return self._redis.hgetall(key)
        self.update(campaign, number, number=number, tag=call_tag(campaign, number), **about)
        return None

    def update(self, campaign: str, number: str, /, **fields: Any) -> dict[str, str]:
        """Record ``fields`` for the call and publish the whole record."""
        key = _key(call_tag(campaign, number))
        self._redis.hset(key, mapping={name: str(value) for name, value in fields.items()})
        record = self._redis.hgetall(key)
        self._redis.publish(channel(campaign), json.dumps(record))
        return record

    def record(self, campaign: str, number: str) -> dict[str, str]:
        return self._redis.hgetall(_key(call_tag(campaign, number)))


def channel(campaign: str) -> str:
    """Where each change to a campaign's records is published (as JSON)."""
    return f"campaign:{campaign}:calls"


def _key(tag: str) -> str:
    return f"campaign-call:{tag}"
