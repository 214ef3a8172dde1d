"""The narrow interface every service (calls, dials, messaging, JWT renewal,
chat/pubsub, video) holds instead of the ``RelayClient``.

``RelayClient`` builds one ``Session`` of its own bound methods and hands it to
each service, together with the plain values that service needs
(``max_active_calls``, REST options, ``request_timeout``, the credentials JWT
renewal owns). So no service imports client.py or touches the client's
private members, and what a service may do is written down here. The
callables run on whichever thread calls them; each says where its work goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .errors import RelayError
    from .ordered import OrderedRunner
    from .pool import HandlerPool
    from .rpc import JSONDict, PendingRequest
    from .timers import Timer


class Request(Protocol):
    def __call__(self, method: str, params: JSONDict, timeout: float | None = None) -> JSONDict: ...


class RunUser(Protocol):
    def __call__(self, fn: Callable[..., Any], *args: Any, what: str = "handler") -> None: ...


@dataclass(frozen=True)
class Session:
    """What a service may ask of the client.

    :param request: send a request and block for its result (``RelayError`` on
        failure; ``NotConnectedError`` before ``connect()``).
    :param request_on_session: ``request`` that also returns the session protocol its
        ``rpc.SESSION_PROTOCOL`` params were filled with as the frame went out.
    :param submit: send (or queue, while reconnecting) a request without
        waiting; its future settles on the I/O thread.
    :param call_later: run a callback on the timer thread after a delay; raises
        ``RelayError`` before ``connect()`` and once the client is closed.
    :param run_user: run user code (or anything that may block) on the handler
        pool; what it raises is logged with ``what``, never propagated.
    :param on_session_start: register ``hook(resumed)``, run each time a
        session is authenticated (the connecting thread or the I/O thread).
    :param on_close: register ``hook(error)``, run once when the client closes
        or gives up, to fail what still waits.
    :param handler_pool: the current handler pool (a forked child gets a new one).
    :param ordered_runner: a new runner that runs callbacks on the pool one at a
        time, in the order given.
    :param relay_protocol: the protocol of the current session (None before one).
    :param authorization: the ``authorization`` block of the current session.
    :param connected: True while authenticated on a live socket (a request sent
        now goes out at once instead of waiting in the backlog).
    """

    request: Request
    request_on_session: Callable[[str, JSONDict], tuple[JSONDict, str | None]]
    submit: Callable[[str, JSONDict], PendingRequest]
    call_later: Callable[[float, Callable[[], None]], Timer]
    run_user: RunUser
    on_session_start: Callable[[Callable[[bool], None]], None]
    on_close: Callable[[Callable[[RelayError], None]], None]
    handler_pool: Callable[[], HandlerPool]
    ordered_runner: Callable[[str], OrderedRunner]
    relay_protocol: Callable[[], str | None]
    authorization: Callable[[], JSONDict | None]
    connected: Callable[[], bool]
