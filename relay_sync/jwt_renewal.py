"""Keeps a session that logged in with a JWT alive past the token's lifetime.

On each authenticated session (the connecting thread, or the I/O thread after
a reconnect) ``JWTRenewal`` reads ``authorization.expires_at`` and arms a
timer on the session's timer thread. The timer only hands the refresh to the
handler pool, because getting a token blocks: it calls the user's
``jwt_refresher`` or mints one over REST with the project and token. The
refresh then sends ``signalwire.reauthenticate`` on the live socket, keeps the
new token for later reconnects and arms the next timer. A client with no way
to get a token logs a warning ahead of expiry instead.

The credentials the client logs in with are a ``Credentials`` object whose JWT
only ``JWTRenewal`` replaces; the client reads it for each (re)login.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from . import rest
from .errors import ClientClosedError, RelayError
from .timers import Timer

if TYPE_CHECKING:
    from .rpc import JSONDict
    from .session import Session

log = logging.getLogger(__name__)

REAUTHENTICATE_METHOD = "signalwire.reauthenticate"
# Refresh this long before expiry, or halfway through a shorter remaining lifetime.
MAX_REFRESH_LEAD = 60.0
# After a failed refresh, try again after this share of the time left (at least MIN_RETRY_DELAY).
RETRY_SHARE = 0.5
MIN_RETRY_DELAY = 0.25
# The least time between two successful renewals: a server that answers every
# renewal with an expiry already (or almost) past must not get a renewal loop.
MIN_RENEWAL_INTERVAL = 10.0
# Expiries come from the server and from tokens: never trusted to be sane.
# 1e11 epoch seconds is in the year 5138, while 1e11 ms was in 1973: an expiry
# above it is in milliseconds. None is believed further ahead than a year.
MILLISECONDS_ABOVE = 1e11
MAX_TOKEN_LIFETIME = 365 * 24 * 60 * 60.0


def refresh_delay(expires_at: float, now: float) -> float:
    """Seconds from ``now`` until a token expiring at ``expires_at`` should be replaced."""
    remaining = expires_at - now
    if remaining <= 0:
        return 0.0
    return remaining - min(MAX_REFRESH_LEAD, remaining / 2)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, or ``None`` for anything that is not one.

    The signature is not checked: the server does that; this only tells when
    to ask for the next token.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:  # not base64, not UTF-8 or not JSON: an opaque token
        return None
    return _epoch_seconds(claims.get("exp")) if isinstance(claims, dict) else None


def _epoch_seconds(value: Any) -> float | None:
    """An expiry from the server or a token, as epoch seconds, made sane.

    Some servers send milliseconds; a value past ``MILLISECONDS_ABOVE`` is read
    as such. Whatever is left is clamped to at most ``MAX_TOKEN_LIFETIME`` from
    now (an infinite or absurd expiry just means "renew in a long while").
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer past float's range (JSON allows any): as absurd as infinity
        seconds = math.copysign(math.inf, value)
    if math.isnan(seconds):
        return None
    if seconds > MILLISECONDS_ABOVE:
        seconds /= 1000.0
    return min(seconds, time.time() + MAX_TOKEN_LIFETIME)


class Credentials:
    """What the client logs in with: a JWT, or project and token.

    ``JWTRenewal`` is the only writer of the JWT (a refresh replaces it, so
    later reconnects log in with the new one); the client reads
    ``authentication()`` for every login, from the I/O thread.
    """

    def __init__(
        self, *, project: str | None, token: str | None, jwt_token: str | None, refresher: Callable[[], str] | None
    ) -> None:
        self.project = project
        self.token = token
        self.refresher = refresher
        self._jwt_token = jwt_token  # replaced whole by renewed(): reads need no lock

    @property
    def jwt_token(self) -> str | None:
        return self._jwt_token

    def authentication(self) -> JSONDict:
        """The ``authentication`` block of ``signalwire.connect``."""
        if self._jwt_token:
            return {"jwt_token": self._jwt_token}
        return {"project": self.project, "token": self.token}

    def renewed(self, jwt_token: str) -> None:
        """A refresh was accepted: later logins use ``jwt_token``. Called by JWTRenewal only."""
        self._jwt_token = jwt_token


class JWTRenewal:
    """Re-authenticates a JWT session before ``authorization.expires_at``."""

    def __init__(self, session: Session, credentials: Credentials, rest_options: Mapping[str, Any]) -> None:
        self._session = session
        self.credentials = credentials
        self._rest_options = dict(rest_options)
        # _lock guards _timer and _lifetime.
        self._lock = threading.Lock()
        self._timer: Timer | None = None
        # How long the last token lived after we learned its expiry: the guess
        # for the next one when neither the server nor the token says.
        self._lifetime: float | None = None
        session.on_session_start(self._session_started)
        session.on_close(self._client_closed)

    def after_fork(self) -> None:
        """In a forked child: the parent's timer thread is gone; the next session re-arms."""
        self._lock = threading.Lock()
        self._timer = None

    @property
    def can_refresh(self) -> bool:
        """True when a fresh JWT can be had: a ``jwt_refresher``, or project and token for REST."""
        credentials = self.credentials
        return credentials.refresher is not None or bool(credentials.project and credentials.token)

    def seconds_until_renewal(self) -> float | None:
        """Seconds until the scheduled renewal (or warning) is due; ``None`` when none is scheduled."""
        with self._lock:
            timer = self._timer
        if timer is None or timer.cancelled:
            return None
        return max(0.0, timer.deadline - time.monotonic())

    # -- scheduling (connecting thread or I/O thread: never blocks) ----------

    def _session_started(self, resumed: bool) -> None:
        if not self.credentials.jwt_token:
            return  # logged in with project and token: nothing expires
        authorization = self._session.authorization() or {}
        expires_at = _epoch_seconds(authorization.get("expires_at"))
        if expires_at is None:
            log.debug("the JWT session did not say when it expires: no renewal scheduled")
            return
        with self._lock:
            self._lifetime = max(0.0, expires_at - time.time())
        self._arm(expires_at)

    def _arm(self, expires_at: float, delay: float | None = None) -> None:
        if delay is None:
            delay = refresh_delay(expires_at, time.time())
        refresh = self.can_refresh

        def due() -> None:  # timer thread: hand the blocking refresh to the pool
            if refresh:
                self._session.run_user(self._refresh, expires_at, what="JWT refresh")
            else:
                self._warn(expires_at)

        try:
            timer = self._session.call_later(delay, due)
        except RelayError:  # closed (or closing) meanwhile: nothing to renew
            return
        with self._lock:
            previous, self._timer = self._timer, timer
        if previous is not None:
            previous.cancel()

    def _warn(self, expires_at: float) -> None:
        log.warning(
            "the RELAY session's JWT expires in %.0f s and cannot be renewed: pass jwt_refresher=... "
            "(or project and token) to RelayClient to keep the session alive",
            max(0.0, expires_at - time.time()),
        )

    def _client_closed(self, error: RelayError) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    # -- refreshing (handler pool: may block) ---------------------------------

    def _refresh(self, expires_at: float) -> None:
        try:
            token = self._new_token()
        except Exception:  # the user's refresher or the REST call: log it, retry while time is left
            log.exception("could not get a new JWT for the RELAY session")
            self._retry(expires_at)
            return
        try:
            result = self._session.request(REAUTHENTICATE_METHOD, {"authentication": {"jwt_token": token}})
        except ClientClosedError:
            return
        except RelayError as error:
            log.error("%s failed: %r", REAUTHENTICATE_METHOD, error)
            self._retry(expires_at)
            return
        self.credentials.renewed(token)  # later reconnects log in with it
        next_expiry = self._expiry_after_refresh(result, token)
        if next_expiry is None:
            with self._lock:
                self._timer = None  # the one that brought us here has run: nothing is scheduled now
            log.info("RELAY session re-authenticated with a new JWT; its expiry is unknown")
            return
        delay = refresh_delay(next_expiry, time.time())
        if delay < MIN_RENEWAL_INTERVAL:
            log.warning(
                "the renewed JWT expires in %.0f s, too soon to renew it in time; renewing again in %.0f s",
                next_expiry - time.time(),
                MIN_RENEWAL_INTERVAL,
            )
            delay = MIN_RENEWAL_INTERVAL
        self._arm(next_expiry, delay=delay)
        log.info("RELAY session re-authenticated with a new JWT, valid for %.0f s", next_expiry - time.time())

    def _new_token(self) -> str:
        refresher = self.credentials.refresher
        if refresher is not None:
            token = refresher()
            if not isinstance(token, str) or not token:
                raise TypeError(f"jwt_refresher must return a non-empty string, not {type(token).__name__}")
            return token
        pair = rest.create_jwt(**self._rest_options)
        return pair.jwt_token

    def _expiry_after_refresh(self, result: dict[str, Any], token: str) -> float | None:
        """When the new token expires: as the server says, else its ``exp`` claim, else as long as the last one."""
        authorization = result.get("authorization")
        if isinstance(authorization, dict):
            expires_at = _epoch_seconds(authorization.get("expires_at"))
            if expires_at is not None:
                return expires_at
        expires_at = jwt_expiry(token)
        if expires_at is not None:
            return expires_at
        with self._lock:
            lifetime = self._lifetime
        return time.time() + lifetime if lifetime else None

    def _retry(self, expires_at: float) -> None:
        remaining = expires_at - time.time()
        delay = max(MIN_RETRY_DELAY, remaining * RETRY_SHARE)
        if delay >= remaining:
            log.error("could not renew the RELAY session's JWT before it expires; the server may end the session")
            return
        self._arm(expires_at, delay=delay)
