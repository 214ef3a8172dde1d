"""One RelayClient per Celery worker process (the ``celery`` extra, ``relay-sync[celery]``).

In the module that creates the Celery app, call :func:`setup` with the
options for ``RelayClient()`` (credentials and host come from the
``SIGNALWIRE_*`` environment, as for ``RelayClient()``); in tasks, call
:func:`get_client`::

    from celery import Celery
    from relay_sync.contrib import celery as relay_celery

    app = Celery("campaign", broker="redis://127.0.0.1:6379/0")
    relay_celery.setup(request_timeout=15)

    @app.task(acks_late=True, reject_on_worker_lost=True)
    def call(number: str) -> str:
        client = relay_celery.get_client()
        ...

The client is made after the fork, on ``worker_process_init`` (each prefork
child gets its own socket and session, never one inherited from the parent)
and disconnected on ``worker_process_shutdown``. Pools that run tasks in the
worker process itself (``solo``, ``threads``) send no ``worker_process_init``:
there :func:`get_client` makes the client on first use. Nothing is created or
opened by :func:`setup`, so a producer that imports the app module for
``delay()`` needs no credentials.

Threads: the signal handlers run on the worker process's main thread (Celery
calls them); :func:`get_client` on whichever thread runs the task.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable

from ..client import RelayClient
from ..errors import RelayError
from ..lifecycle import ConnectionState

try:
    from celery import signals
except ModuleNotFoundError as error:  # say which extra brings it
    if error.name != "celery":
        raise
    raise ModuleNotFoundError(
        "relay_sync.contrib.celery needs Celery: pip install 'celery>=5.3' (relay_sync's celery extra)", name="celery"
    ) from error

log = logging.getLogger(__name__)

ClientFactory = Callable[[], RelayClient]

_lock = threading.Lock()  # guards the state below: a threads pool may call get_client() at once
_factory: ClientFactory | None = None
_client: RelayClient | None = None
_client_pid: int | None = None  # the process that made _client: an inherited one is not ours
_shutting_down = False


def setup(factory: ClientFactory | None = None, **options: Any) -> None:
    """Give every worker process of this app its own RelayClient.

    ``options`` go to ``RelayClient(**options)``; or pass ``factory``, a
    callable returning a new, unconnected client (to register ``on_call`` or
    ``on_message`` handlers, for example). Call it once, at import of the app
    module; a second call replaces the first's options.
    """
    if factory is not None and options:
        raise TypeError("pass either a factory or RelayClient options, not both")
    global _factory, _shutting_down
    with _lock:
        _factory = factory if factory is not None else (lambda: RelayClient(**options))
        _shutting_down = False
    # One receiver each however often setup() runs (and whichever copy of this
    # module made it): replace by dispatch_uid rather than add.
    for signal, receiver in (
        (signals.worker_process_init, _on_process_init),
        (signals.worker_process_shutdown, _on_process_shutdown),
    ):
        uid = f"{__name__}.{signal.name}"
        signal.disconnect(dispatch_uid=uid)
        signal.connect(receiver, weak=False, dispatch_uid=uid)


def get_client() -> RelayClient:
    """This worker process's client, connected (the first call in a process logs in;
    later ones return at once). Raises ``RelayError`` when it cannot connect."""
    with _lock:
        client = _own_client()
    client.connect()  # returns at once when connected; outside the lock: a login may take seconds
    return client


def _own_client() -> RelayClient:
    """The process's client, made now if it has none (lock held)."""
    global _client, _client_pid
    if _factory is None:
        raise RuntimeError(
            "relay_sync.contrib.celery.setup() was not called: call it in the module that creates the Celery app"
        )
    if _shutting_down:
        raise RuntimeError("this worker process is shutting down; its RelayClient is disconnected")
    # A client that gave up reconnecting (the credentials refused for a while,
    # say) is closed for good: the next task gets a fresh one, not its error.
    if _client is None or _client_pid != os.getpid() or _client.state is ConnectionState.CLOSED:
        _client, _client_pid = _factory(), os.getpid()
    return _client


def _on_process_init(**_: Any) -> None:
    """A new worker process (after the fork): make its client and log in now, so
    that the first task does not wait for it. A failure is logged, not raised:
    get_client() tries again for each task, and says why if it still cannot."""
    global _client
    with _lock:
        _client = None  # whatever the parent had is the parent's
        client = _own_client()
    try:
        client.connect()
    except RelayError as error:
        log.warning(
            "worker process %d could not connect to RELAY yet (%s); get_client() tries again", os.getpid(), error
        )
    else:
        log.info("worker process %d connected to RELAY (protocol %s)", os.getpid(), client.relay_protocol)


def _on_process_shutdown(**_: Any) -> None:
    """The worker process is exiting: close its session cleanly rather than let the socket drop."""
    global _client, _shutting_down
    with _lock:
        client, ours = _client, _client_pid == os.getpid()
        _client, _shutting_down = None, True
    if client is not None and ours:
        client.disconnect()
        log.info("worker process %d disconnected from RELAY", os.getpid())
