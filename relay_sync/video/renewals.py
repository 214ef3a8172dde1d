"""Renewals: the ``signalwire.subscribe`` requests each new socket must send again.

Which subscriptions a reconnect keeps is the server's business: one that
starts a new session (the server forgot the protocol, or asked for a
restart) certainly loses them, and one that resumes the protocol may too,
since the server ties subscriptions to the connection. So the Video service
``remember``s, under a key (the event channel), the request that recreates
each subscription, and ``session_started`` resends every remembered request
after every login. Subscribing again to what is still subscribed is
harmless: the server sends the initial state again.

A renewal the server refuses or does not answer on a live link is sent
again a few times, further apart each time (while its key is still
remembered); one lost with the link waits for the next session.

``session_started`` runs on the I/O thread (or the connecting thread), and
retries on the timer thread: they only submit requests and never wait for
their answers, which arrive on the I/O thread. The other methods run in
callers' threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future

from ..errors import LINK_DOWN_ERRORS, RelayError
from ..rpc import JSONDict, PendingRequest
from ..timers import Timer

log = logging.getLogger(__name__)

Submit = Callable[[str, JSONDict], PendingRequest]
CallLater = Callable[[float, Callable[[], None]], Timer]
OnFailure = Callable[[Hashable, BaseException], None]
OnSuccess = Callable[[Hashable], None]

# A refused or unanswered renewal is retried this many times, after 1, 2, 4... seconds.
RETRIES = 4
FIRST_RETRY_AFTER = 1.0


class Renewals:
    """Requests to resend, by key, whenever a session is authenticated."""

    def __init__(self, submit: Submit, call_later: CallLater, on_failure: OnFailure, on_success: OnSuccess) -> None:
        self._submit = submit
        self._call_later = call_later
        # Both run on the I/O thread with (key[, error]): they must not block.
        self._on_failure = on_failure
        self._on_success = on_success
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
            keys = list(self._requests)
        if keys:
            log.info("renewing %d subscription(s) on the new session", len(keys))
        for key in keys:
            self._send(key, attempt=0)

    def _send(self, key: Hashable, attempt: int) -> None:
        with self._lock:
            request = self._requests.get(key)
        if request is None:
            return  # forgotten meanwhile: nothing holds it any more
        method, params = request
        try:
            pending = self._submit(method, dict(params))
        except RelayError as error:  # closed meanwhile, or the backlog is full: say so and go on
            log.warning("could not renew %s %s: %s", method, key, error)
            return
        pending.future.add_done_callback(self._answered(key, method, attempt))

    def _answered(self, key: Hashable, method: str, attempt: int) -> Callable[[Future[JSONDict]], None]:
        def answered(future: Future[JSONDict]) -> None:
            error = future.exception()
            if error is None:
                self._on_success(key)
                return
            self._on_failure(key, error)
            with self._lock:
                still_wanted = key in self._requests
            if not still_wanted:
                return  # the failure told the owner to let it go (a room that ended)
            if isinstance(error, LINK_DOWN_ERRORS):
                log.info("renewing %s %s was cut short (%s): the next session renews it", method, key, error)
            elif attempt >= RETRIES:
                log.error("renewing %s %s failed %d times, giving up: %s", method, key, attempt + 1, error)
            else:
                self._retry(key, method, attempt, error)

        return answered

    def _retry(self, key: Hashable, method: str, attempt: int, error: BaseException) -> None:
        delay = FIRST_RETRY_AFTER * 2**attempt
        log.warning("renewing %s %s failed (%s): trying again in %.0f s", method, key, error, delay)
        try:
            self._call_later(delay, lambda: self._send(key, attempt + 1))
        except RelayError as closed:  # the client closed meanwhile: nothing to renew for
            log.debug("not retrying %s %s: %s", method, key, closed)
