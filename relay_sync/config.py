"""RelayClient configuration: constructor arguments, their environment
fallbacks and the checks that turn a bad value into a clear ``ValueError``
before anything is opened. Runs in the caller's thread, once.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

DEFAULT_HOST = "relay.signalwire.com"
DEFAULT_MAX_ACTIVE_CALLS = 1000
DEFAULT_MAX_CONNECTIONS = 1

ENV_PROJECT = "SIGNALWIRE_PROJECT_ID"
ENV_TOKEN = "SIGNALWIRE_API_TOKEN"
ENV_JWT = "SIGNALWIRE_JWT_TOKEN"
ENV_SPACE = "SIGNALWIRE_SPACE"
ENV_MAX_ACTIVE_CALLS = "RELAY_MAX_ACTIVE_CALLS"
ENV_MAX_CONNECTIONS = "RELAY_MAX_CONNECTIONS"
ENV_CA_FILE = "SIGNALWIRE_RELAY_CA_FILE"

# Characters that make a host a URL or a header injection, never a hostname.
_FORBIDDEN_HOST_CHARS = set("@/?\\#\r\n\t ")
# DNS limits (RFC 1035): a label is 1-63 bytes, a whole name at most 253.
MAX_LABEL_LENGTH = 63
MAX_HOSTNAME_LENGTH = 253

# The longest duration any setting may have. Past ~9e9 s the locks underneath
# raise OverflowError; a day is far beyond any sane timeout, interval or backoff.
MAX_DURATION = 24 * 60 * 60.0


@dataclass(frozen=True)
class ProxySettings:
    """An HTTP proxy that tunnels the WebSocket (CONNECT) and the REST calls."""

    url: str = field(repr=False)  # may carry user:password
    host: str
    port: int
    auth: tuple[str, str] | None = field(default=None, repr=False)

    def requests_proxies(self) -> dict[str, str]:
        return {"http": self.url, "https": self.url}


@dataclass(frozen=True)
class ClientConfig:
    """Everything a RelayClient was configured with, validated."""

    project: str | None
    token: str | None = field(repr=False)
    jwt_token: str | None = field(repr=False)
    host: str
    contexts: tuple[str, ...]
    max_active_calls: int
    scheme: str
    request_timeout: float
    ping_interval: float
    reconnect_backoff: tuple[float, float]
    connect_timeout: float
    ca_file: str | None = None
    proxy: ProxySettings | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def rest_options(self) -> dict[str, Any]:
        """Keyword arguments for ``relay_sync.rest`` calls made on this client's behalf."""
        return {
            "project": self.project,
            "token": self.token,
            "host": self.host,
            # "ws" is only allowed for a loopback host (a local emulator), which speaks plain HTTP.
            "scheme": "http" if self.scheme == "ws" else "https",
            "ca_file": self.ca_file,
            "proxy": self.proxy.url if self.proxy is not None else None,
        }

    def __repr__(self) -> str:  # the project id is a secret too
        return f"ClientConfig(host={self.host!r}, scheme={self.scheme!r}, contexts={list(self.contexts)!r})"


def resolve_config(
    *,
    project: str | None,
    token: str | None,
    jwt_token: str | None,
    host: str | None,
    contexts: Iterable[str] | None,
    max_active_calls: int | None,
    scheme: str | None,
    request_timeout: float,
    ping_interval: float,
    reconnect_backoff: tuple[float, float],
    connect_timeout: float | None,
    ca_file: str | None = None,
    proxy: str | None = None,
) -> ClientConfig:
    project = project or env_value(ENV_PROJECT)
    token = token or env_value(ENV_TOKEN)
    jwt_token = jwt_token or env_value(ENV_JWT)
    if not jwt_token:
        if not project:
            raise ValueError(
                f"project is required: pass project=... or set {ENV_PROJECT} (or use jwt_token / {ENV_JWT})"
            )
        if not token:
            raise ValueError(f"token is required: pass token=... or set {ENV_TOKEN} (or use jwt_token / {ENV_JWT})")

    if host:
        host = validate_host(host)
    else:
        space = env_value(ENV_SPACE)
        host = validate_host(space, what=ENV_SPACE) if space else DEFAULT_HOST
    if scheme is None:  # a local emulator speaks plain ws; anything else must be TLS
        scheme = "ws" if is_loopback_host(host) else "wss"
    if scheme not in ("wss", "ws"):
        raise ValueError(f"scheme must be 'wss' or 'ws', not {scheme!r}")
    if scheme == "ws" and not is_loopback_host(host):
        raise ValueError(
            f"scheme='ws' sends credentials in clear text and is only allowed for a loopback host, not {host!r}"
        )

    contexts_given = context_list(contexts)
    request_timeout = check_duration("request_timeout", request_timeout)
    ping_interval = check_duration("ping_interval", ping_interval)
    if connect_timeout is not None:
        connect_timeout = check_duration("connect_timeout", connect_timeout)
    low, high = _backoff(reconnect_backoff)
    return ClientConfig(
        project=project,
        token=token,
        jwt_token=jwt_token,
        host=host,
        contexts=tuple(contexts_given),
        max_active_calls=resolve_max_active_calls(max_active_calls),
        scheme=scheme,
        request_timeout=request_timeout,
        ping_interval=ping_interval,
        reconnect_backoff=(low, high),
        connect_timeout=connect_timeout if connect_timeout is not None else request_timeout,
        ca_file=resolve_ca_file(ca_file),
        proxy=parse_proxy(proxy) if proxy else None,
    )


def resolve_ca_file(ca_file: str | None) -> str | None:
    """A CA bundle (PEM) to verify the server with, from the argument or ``SIGNALWIRE_RELAY_CA_FILE``."""
    path = ca_file or env_value(ENV_CA_FILE)
    if path is not None and not os.path.isfile(path):
        raise ValueError(f"ca_file {path!r} (or {ENV_CA_FILE}) is not a readable file")
    if path is not None:
        try:  # now, not at the first connect(): a file that is not a PEM bundle never will be
            ssl.create_default_context().load_verify_locations(cafile=path)
        except (ssl.SSLError, OSError) as error:
            raise ValueError(
                f"ca_file {path!r} (or {ENV_CA_FILE}) holds no usable PEM certificate: {error.strerror or error}"
            ) from None
    return path


def parse_proxy(url: str) -> ProxySettings:
    """``http://[user:password@]host:port`` → ProxySettings."""
    parsed = urlsplit(url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise ValueError("proxy must look like 'http://host:port' (an HTTP proxy that supports CONNECT)")
    try:
        port = parsed.port or 80
    except ValueError:
        raise ValueError("proxy has an invalid port") from None
    auth = (unquote(parsed.username), unquote(parsed.password or "")) if parsed.username else None
    return ProxySettings(url=url, host=parsed.hostname, port=port, auth=auth)


def env_value(name: str) -> str | None:
    """An environment variable with surrounding whitespace removed (a pasted value
    often ends in a space or a newline); None when unset or blank."""
    return os.environ.get(name, "").strip() or None


def validate_host(host: str, *, what: str = "host") -> str:
    """A hostname with an optional ``:port``; anything URL-like is refused.
    ``what`` names the setting in the error (``SIGNALWIRE_SPACE`` when it came from there)."""
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"{what} must be a non-empty hostname such as 'example.signalwire.com'")
    bad = sorted(_FORBIDDEN_HOST_CHARS.intersection(host))
    if bad:
        raise ValueError(
            f"{what} must be a hostname with an optional ':port', not a URL: {host!r} contains {''.join(bad)!r}"
        )
    name, port = split_host_port(host)
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{what} {host!r} has an invalid port {port!r}")
    if not name:
        raise ValueError(f"{what} {host!r} has no hostname")
    _check_hostname(name, host, what)
    return host


def _check_hostname(name: str, host: str, source: str) -> None:
    """Refuse names DNS cannot carry, which would otherwise fail later, inside connect(),
    as a bare UnicodeError from the IDNA codec."""
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass  # a name, not an address
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")  # one trailing dot: a rooted name
    length = len(labels) - 1
    for label in labels:
        if not label:
            raise ValueError(f"{source} {host!r} has an empty label (two dots in a row, or a leading dot)")
        try:
            length += len(label.encode("idna"))
        except UnicodeError:
            if len(label) > MAX_LABEL_LENGTH:
                raise ValueError(f"{source} {host!r} has a label longer than {MAX_LABEL_LENGTH} characters") from None
            raise ValueError(f"{source} {host!r} is not a valid hostname: label {label!r}") from None
    if length > MAX_HOSTNAME_LENGTH:
        raise ValueError(f"{source} {host!r} is longer than {MAX_HOSTNAME_LENGTH} characters")


def split_host_port(host: str) -> tuple[str, str | None]:
    """``"a.b:8080"`` → ``("a.b", "8080")``; IPv6 literals go in brackets: ``"[::1]:8080"``."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, (rest[1:] if rest.startswith(":") else None)
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, port
    return host, None


def is_loopback_host(host: str) -> bool:
    name, _ = split_host_port(host)
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def resolve_max_active_calls(value: int | None) -> int:
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_active_calls must be a positive integer, not {value!r}")
        return value
    return _positive_env_int(ENV_MAX_ACTIVE_CALLS, DEFAULT_MAX_ACTIVE_CALLS)


def max_connections() -> int:
    return _positive_env_int(ENV_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS)


def _positive_env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        log.warning("ignoring %s=%r: not a positive integer; using %d", name, raw, default)
        return default
    return value


def context_list(contexts: Iterable[str] | None) -> list[str]:
    """The one rule for a list of contexts (the constructor, ``receive``, ``unreceive``):
    a list of non-empty strings; a bare string is refused, since iterating it
    would subscribe to each of its letters."""
    if contexts is None:
        return []
    if isinstance(contexts, str):
        raise ValueError(f"contexts must be a list of strings, e.g. [{contexts!r}], not a string")  # noqa: TRY004
    result = list(contexts)
    for context in result:
        if not isinstance(context, str) or not context:
            raise ValueError(f"each context must be a non-empty string, not {context!r}")
    return result


def check_duration(name: str, value: float) -> float:
    """``value`` as seconds, if it is a finite number above 0 and at most a day; else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")  # noqa: TRY004 - a bad setting
    if not math.isfinite(value) or value <= 0 or value > MAX_DURATION:
        raise ValueError(
            f"{name} must be a finite number of seconds above 0 and at most {MAX_DURATION:g} (a day), not {value!r}"
        )
    return float(value)


def _backoff(value: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise ValueError(f"reconnect_backoff must be a (min, max) pair of seconds, not {value!r}") from None
    low = check_duration("reconnect_backoff min", low)
    high = check_duration("reconnect_backoff max", high)
    if high < low:
        raise ValueError(f"reconnect_backoff max ({high}) must not be below min ({low})")
    return low, high
