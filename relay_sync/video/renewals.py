"""Renewals: the ``signalwire.subscribe`` requests each new socket must send again.

Which subscriptions a reconnect keeps is the server's business: one that
starts a new session (the server forgot the protocol, or asked for a
restart) certainly loses them, and one that resumes the protocol may too,
since the server ties subscriptions to the connection. So the Video service
``remember``s, under a key (the event channel), the request that recreates
each subscription, and ``session_started`` resends every remembered request
after every login. Subscribing again to what is still subscribed is
harmless: the server sends the initial state again.

``session_started`` runs on the I/O thread (or the connecting thread): it
only submits requests and never waits for their answers; a failed renewal
is logged. The other methods run in callers' threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future

from ..errors import RelayError
from ..rpc import JSONDict, PendingRequest

log = logging.getLogger(__name__)

Submit = Callable[[str, JSONDict], PendingRequest]
OnFailure = Callable[[Hashable, BaseException], None]


class Renewals:
    """Requests to resend, by key, whenever a session is authenticated."""

    def __init__(self, submit: Submit, on_failure: OnFailure) -> None:
        self._submit = submit
        self._on_failure = on_failure  # (key, error), on the I/O thread: it must not block
        self._lock = threading.Lock()
        self._requests: dict[Hashable, tuple[str, JSONDict]] = {}

    def remember(self, key: Hashable, method: str, params: JSONDict) -> None:
        """From now on, a new session gets ``method(params)``; replaces what ``key`` held."""
        with self._lock:
            self._requests[key] = (method, dict(params))

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._requests.pop(key, None)

    def session_started(self, resumed: bool) -> None:
        """A session hook: resend everything remembered (``resumed`` makes no difference)."""
        with self._lock:
            requests = list(self._requests.items())
        if requests:
            log.info("renewing %d subscription(s) on the new session", len(requests))
        for key, (method, params) in requests:
            try:
                pending = self._submit(method, dict(params))
            except RelayError as error:  # closed meanwhile, or the backlog is full: say so and go on
                log.warning("could not renew %s: %s", method, error)
                continue
            pending.future.add_done_callback(self._report_failure(key, method))

    def _report_failure(self, key: Hashable, method: str) -> Callable[[Future[JSONDict]], None]:
        def report(future: Future[JSONDict]) -> None:
            error = future.exception()
            if error is not None:
                log.warning("renewing %s failed: %s", method, error)
                self._on_failure(key, error)

        return report
