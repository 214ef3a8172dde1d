"""SignalWire's REST endpoints that go with RELAY: deliver a task to a
context, create and refresh JWTs, download recordings.

Each helper runs in the caller's thread, blocks until the server answered
(bounded by a (connect, read) timeout) and raises ``RestError`` for every
failure that came from the network or the server. Arguments that cannot work
(a missing token, a URL as host) raise ``ValueError`` before anything is sent.
Nothing here touches the RELAY socket. A download's deadline is kept by a
short-lived timer thread, which only shuts the socket down.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from ._version import __version__
from .config import (
    ENV_PROJECT,
    ENV_SPACE,
    ENV_TOKEN,
    is_loopback_host,
    resolve_ca_file,
    split_host_port,
    validate_host,
)
from .errors import RestError
from .opening import trust_context
from .rpc import MASK, JSONDict

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # annotations only: the | syntax needs Python 3.10 at run time
    Timeout = float | tuple[float, float]
    PathArg = str | os.PathLike[str]

USER_AGENT = f"relay_sync/{__version__}"
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds
DEFAULT_CHUNK_SIZE = 65536

TASKS_PATH = "/api/relay/rest/tasks"
JWT_PATH = "/api/relay/rest/jwt"

# Read this much of an error response; RestError keeps the first 500 characters.
_ERROR_BODY_BYTES = 2048

_STATUS_HINTS = {
    401: "check the project id and API token (SIGNALWIRE_PROJECT_ID / SIGNALWIRE_API_TOKEN)",
    403: "the API token is not allowed to do this; check its scopes in the SignalWire dashboard",
}


class _AddedTrustAdapter(HTTPAdapter):
    """HTTPS verified against the system's CAs plus a ``ca_file``.

    requests' ``verify=path`` would verify against the file instead of them and
    refuse every publicly trusted server; an SSL context holding both keeps the
    promise that ``ca_file`` adds a CA.
    """

    def __init__(self, context: Any) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: Any, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(proxy, **kwargs)


class RestSession(requests.Session):
    """A ``requests.Session`` with relay_sync's defaults: its User-Agent, TLS
    verification (the CAs of ``ca_file``, when given, added to the system's),
    and a (connect, read) timeout applied to every request that does not pass
    its own.

    ``proxy`` (``http://[user:password@]host:port``) sends every request through
    that proxy; without it ``https_proxy`` / ``no_proxy`` apply as with any session.
    """

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        timeout: Timeout | None = None,
        proxy: str | None = None,
    ) -> None:
        super().__init__()
        self.timeout: Timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
        self._explicit_proxies: dict[str, str] = {"http": proxy, "https": proxy} if proxy else {}
        self.proxies = dict(self._explicit_proxies)
        self.headers["User-Agent"] = USER_AGENT
        ca_file = resolve_ca_file(ca_file)  # ValueError for a path that is not a file
        if ca_file:
            self.mount("https://", _AddedTrustAdapter(trust_context(ca_file)))
        if auth is not None:
            self.auth = auth

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self._explicit_proxies:
            # requests lets https_proxy from the environment override
            # session.proxies; an explicit proxy= must win, the CA and other
            # environment settings still apply.
            settings["proxies"] = dict(self._explicit_proxies)
        return settings

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        # requests has no session-wide timeout; without one a silent server
        # would block the caller forever.
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def new_session(
    *,
    project: str | None = None,
    token: str | None = None,
    ca_file: str | None = None,
    timeout: Timeout | None = None,
    proxy: str | None = None,
) -> RestSession:
    """A ``RestSession`` authenticated with HTTP Basic ``project:token``.

    ``project`` and ``token`` fall back to ``SIGNALWIRE_PROJECT_ID`` and
    ``SIGNALWIRE_API_TOKEN``; ``ca_file`` to ``SIGNALWIRE_RELAY_CA_FILE``;
    ``timeout`` defaults to ``(5, 30)`` seconds.
    """
    return RestSession(auth=_credentials(project, token), ca_file=ca_file, timeout=timeout, proxy=proxy)


@dataclass(frozen=True, repr=False)
class JWTPair:
    """A JWT for ``RelayClient(jwt_token=...)`` and the token that renews it."""

    jwt_token: str
    refresh_token: str

    def __repr__(self) -> str:
        return f"JWTPair(jwt_token={MASK!r}, refresh_token={MASK!r})"


def deliver_task(
    context: str,
    message: JSONDict,
    *,
    project: str | None = None,
    token: str | None = None,
    host: str | None = None,
    scheme: str = "https",
    ca_file: str | None = None,
    timeout: Timeout | None = None,
    proxy: str | None = None,
) -> None:
    """Send ``message`` (a JSON object) to the clients listening on ``context``;
    they receive it as a ``queuing.relay.tasks`` event.

    ``host`` is your space (``example.signalwire.com``), falling back to
    ``SIGNALWIRE_SPACE``. Returns once the server accepted the task.
    """
    if not isinstance(context, str) or not context:
        raise ValueError(f"context must be a non-empty string, not {context!r}")
    if not isinstance(message, dict):
        raise TypeError(f"message must be a dict (a JSON object), not {type(message).__name__}")
    _call_api(
        "POST",
        TASKS_PATH,
        {"context": context, "message": message},
        project=project,
        token=token,
        host=host,
        scheme=scheme,
        ca_file=ca_file,
        timeout=timeout,
        proxy=proxy,
    )
    log.debug("delivered a task to context %r", context)


def create_jwt(
    *,
    project: str | None = None,
    token: str | None = None,
    host: str | None = None,
    resource: str | None = None,
    expires_in: int | None = None,
    scheme: str = "https",
    ca_file: str | None = None,
    timeout: Timeout | None = None,
    proxy: str | None = None,
) -> JWTPair:
    """Create a JWT for this project.

    ``resource`` names what the token is for (the server picks one when
    omitted); ``expires_in`` is its lifetime in minutes.
    """
    if resource is not None and (not isinstance(resource, str) or not resource):
        raise ValueError(f"resource must be a non-empty string, not {resource!r}")
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1):
        raise ValueError(f"expires_in must be a positive number of minutes, not {expires_in!r}")
    body: JSONDict = {}
    if resource is not None:
        body["resource"] = resource
    if expires_in is not None:
        body["expires_in"] = expires_in
    response = _call_api(
        "POST",
        JWT_PATH,
        body,
        project=project,
        token=token,
        host=host,
        scheme=scheme,
        ca_file=ca_file,
        timeout=timeout,
        proxy=proxy,
    )
    return _jwt_pair(response)


def refresh_jwt(
    refresh_token: str,
    *,
    project: str | None = None,
    token: str | None = None,
    host: str | None = None,
    scheme: str = "https",
    ca_file: str | None = None,
    timeout: Timeout | None = None,
    proxy: str | None = None,
) -> JWTPair:
    """Trade ``refresh_token`` for a new ``JWTPair`` before the JWT expires."""
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ValueError("refresh_token must be a non-empty string (the refresh_token of a JWTPair)")
    response = _call_api(
        "PUT",
        JWT_PATH,
        {"refresh_token": refresh_token},
        project=project,
        token=token,
        host=host,
        scheme=scheme,
        ca_file=ca_file,
        timeout=timeout,
        proxy=proxy,
        secrets=(refresh_token,),
    )
    return _jwt_pair(response)


@overload
def download_recording(
    url: str,
    *,
    project: str | None = ...,
    token: str | None = ...,
    path: None = ...,
    chunk_size: int = ...,
    ca_file: str | None = ...,
    timeout: Timeout | None = ...,
    proxy: str | None = ...,
) -> bytes: ...


@overload
def download_recording(
    url: str,
    *,
    project: str | None = ...,
    token: str | None = ...,
    path: PathArg,
    chunk_size: int = ...,
    ca_file: str | None = ...,
    timeout: Timeout | None = ...,
    proxy: str | None = ...,
) -> Path: ...


def download_recording(
    url: str,
    *,
    project: str | None = None,
    token: str | None = None,
    path: PathArg | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    ca_file: str | None = None,
    timeout: Timeout | None = None,
    proxy: str | None = None,
) -> bytes | Path:
    """Fetch a recording (``RecordEvent.url``) with the project's credentials.

    Without ``path`` returns the bytes. With ``path`` streams to that file and
    returns it as a ``Path``: the data goes to a temporary file beside it,
    renamed into place only when complete, so a failed download leaves no
    partial file. The file is created readable by its owner only:
    recordings are private. The whole download must finish within the read
    timeout (30 s by default), however steadily the data trickles in.
    """
    _check_download_url(url)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of bytes, not {chunk_size!r}")
    with new_session(project=project, token=token, ca_file=ca_file, timeout=timeout, proxy=proxy) as session:
        if path is None:
            with _send(session, "GET", url, stream=True) as response:
                return b"".join(_chunks(response, chunk_size, _read_timeout(session.timeout)))
        return _download_to_file(session, url, Path(path), chunk_size)


def _download_to_file(session: RestSession, url: str, target: Path, chunk_size: int) -> Path:
    descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as file, _send(session, "GET", url, stream=True) as response:
            for chunk in _chunks(response, chunk_size, _read_timeout(session.timeout)):
                file.write(chunk)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


def _check_download_url(url: str) -> None:
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, not {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url must be an http(s) URL such as a RecordEvent.url, not {_display_url(url)!r}")
    if scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            "an http:// URL would send the credentials in clear text; "
            f"it is only allowed for a loopback host, not {parts.hostname!r}"
        )


def _call_api(
    method: str,
    path: str,
    body: JSONDict,
    *,
    project: str | None,
    token: str | None,
    host: str | None,
    scheme: str,
    ca_file: str | None,
    timeout: Timeout | None,
    proxy: str | None = None,
    secrets: Sequence[str] = (),
) -> requests.Response:
    url = _base_url(host, scheme) + path
    data = _encode_json(body)
    with new_session(project=project, token=token, ca_file=ca_file, timeout=timeout, proxy=proxy) as session:
        return _send(session, method, url, data=data, headers={"Content-Type": "application/json"}, secrets=secrets)


def _send(
    session: RestSession, method: str, url: str, *, secrets: Sequence[str] = (), **kwargs: Any
) -> requests.Response:
    """One request; any failure becomes a RestError free of credentials."""
    shown = _display_url(url)
    known_secrets = _session_secrets(session, (*secrets, urlsplit(url).password or ""))
    log.debug("%s %s", method, shown)
    try:
        response = session.request(method, url, **kwargs)
    except requests.RequestException as error:
        raise _network_error(method, shown, error, known_secrets) from error
    log.debug("%s %s -> %d", method, shown, response.status_code)
    if not 200 <= response.status_code < 300:
        failure = _status_error(method, shown, response, known_secrets)
        response.close()
        raise failure
    return response


def _chunks(response: requests.Response, chunk_size: int, limit: float) -> Iterator[bytes]:
    """The response body; a connection that breaks midway raises RestError.

    The read timeout bounds each wait for data, so a server trickling a byte
    at a time would never trip it: the whole body must also arrive within
    ``limit`` seconds. A timer thread shuts the socket down at that deadline,
    which wakes the read blocked in this (the caller's) thread.
    """
    method = response.request.method or "GET"
    shown = _display_url(response.url)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _shut_down(response)

    watchdog = threading.Timer(limit, expire)
    watchdog.daemon = True
    watchdog.name = "relay_sync-rest-download-deadline"
    watchdog.start()
    try:
        yield from response.iter_content(chunk_size)
    except requests.RequestException as error:
        if expired.is_set():
            raise _too_slow(method, shown, limit) from error
        raise _network_error(method, shown, error, ()) from error
    finally:
        watchdog.cancel()
        watchdog.join()  # at once once cancelled: no thread outlives the download
    if expired.is_set():  # a body without a length just ends where the socket was shut
        raise _too_slow(method, shown, limit)


def _too_slow(method: str, shown: str, limit: float) -> RestError:
    return RestError(
        0,
        f"{method} {shown} timed out: the download did not finish within {limit:g} s "
        "(the read timeout; pass a larger timeout for a slow link or a large file)",
        method=method,
        url=shown,
    )


def _shut_down(response: requests.Response) -> None:
    """Timer thread: shut the response's socket down (closing alone would not wake a blocked read)."""
    raw = response.raw
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the read ends by itself


def _read_timeout(timeout: Timeout) -> float:
    return float(timeout[1]) if isinstance(timeout, tuple) else float(timeout)


def _jwt_pair(response: requests.Response) -> JWTPair:
    data = _json_object(response)
    jwt_token = data.get("jwt_token")
    refresh_token = data.get("refresh_token")
    if not (isinstance(jwt_token, str) and jwt_token and isinstance(refresh_token, str) and refresh_token):
        # The body may hold half a token: never quote it.
        raise _unexpected_body(response, "a JSON object with jwt_token and refresh_token")
    return JWTPair(jwt_token=jwt_token, refresh_token=refresh_token)


def _json_object(response: requests.Response) -> JSONDict:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise _unexpected_body(response, "a JSON object")
    return data


def _unexpected_body(response: requests.Response, expected: str) -> RestError:
    method = response.request.method or ""
    shown = _display_url(response.url)
    content_type = response.headers.get("Content-Type", "none")
    return RestError(
        response.status_code,
        f"{method} {shown} returned HTTP {response.status_code} but not {expected} (Content-Type: {content_type})",
        method=method,
        url=shown,
    )


def _status_error(method: str, shown: str, response: requests.Response, secrets: Sequence[str]) -> RestError:
    status = response.status_code
    body = _scrub(_body_excerpt(response), secrets)[: RestError.BODY_LIMIT]
    message = f"{method} {shown} returned HTTP {status}"
    if response.reason:
        message += f" {response.reason}"
    hint = _STATUS_HINTS.get(status)
    if hint:
        message += f" ({hint})"
    if body:
        message += f": {body}"
    return RestError(status, message, method=method, url=shown, body=body)


def _network_error(method: str, shown: str, error: requests.RequestException, secrets: Sequence[str]) -> RestError:
    if isinstance(error, requests.Timeout):
        what = "timed out"
    elif isinstance(error, requests.ConnectionError):
        what = "could not connect or lost the connection"
    else:
        what = "failed"
    return RestError(0, f"{method} {shown} {what}: {_scrub(str(error), secrets)}", method=method, url=shown)


def _body_excerpt(response: requests.Response) -> str:
    try:
        head = next(response.iter_content(_ERROR_BODY_BYTES), b"")
    except requests.RequestException:
        return ""
    if not isinstance(head, bytes):
        return ""
    try:
        return head.decode(response.encoding or "utf-8", errors="replace").strip()
    except LookupError:  # the server named an encoding Python does not know
        return head.decode("utf-8", errors="replace").strip()


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def _session_secrets(session: requests.Session, extra: Sequence[str]) -> tuple[str, ...]:
    auth = session.auth if isinstance(session.auth, tuple) else ()
    return tuple(value for value in (*auth, *extra) if isinstance(value, str) and value)


def _display_url(url: str) -> str:
    """``url`` without user:password, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _encode_json(body: JSONDict) -> str:
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"the request body must be JSON-serializable: {error}") from None


def _credentials(project: str | None, token: str | None) -> tuple[str, str]:
    project = project or os.environ.get(ENV_PROJECT) or None
    token = token or os.environ.get(ENV_TOKEN) or None
    if project is None:
        raise ValueError(f"project is required: pass project=... or set {ENV_PROJECT}")
    if token is None:
        raise ValueError(f"token is required: pass token=... or set {ENV_TOKEN}")
    if not isinstance(project, str) or not isinstance(token, str):
        raise TypeError("project and token must be strings")
    return project, token


def _base_url(host: str | None, scheme: str) -> str:
    host = host or os.environ.get(ENV_SPACE) or None
    if host is None:
        raise ValueError(
            f"host is required: pass host=... or set {ENV_SPACE} to your space, such as 'example.signalwire.com'"
        )
    host = validate_host(host)
    if scheme not in ("https", "http"):
        raise ValueError(f"scheme must be 'https' or 'http', not {scheme!r}")
    if scheme == "http" and not is_loopback_host(host):
        raise ValueError(
            f"scheme='http' sends credentials in clear text and is only allowed for a loopback host, not {host!r}"
        )
    name, port = split_host_port(host)
    if port is None and ":" in name and not host.startswith("["):
        host = f"[{name}]"  # a bare IPv6 literal needs brackets in a URL
    return f"{scheme}://{host}"
