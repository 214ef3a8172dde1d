"""The validated configuration a RelayClient builds from its keyword arguments.

RelayClient keeps its ClientConfig private; tests that need to look at one
(its repr must never show a secret) build it the same way the client does,
through ``relay_sync.config.resolve_config``, from the same secrets.
"""

from __future__ import annotations

from typing import Any

from relay_sync.config import ClientConfig, resolve_config

# Timing settings do not show in a config's repr; any valid values do.
_TIMINGS: dict[str, Any] = {
    "request_timeout": 10.0,
    "ping_interval": 30.0,
    "reconnect_backoff": (1.0, 30.0),
    "connect_timeout": 10.0,
}
_SETTINGS = ("project", "token", "jwt_token", "host", "contexts", "max_active_calls", "scheme", "ca_file", "proxy")


def config_from(**client_kwargs: Any) -> ClientConfig:
    """The ClientConfig a RelayClient given ``client_kwargs`` would hold (timings aside)."""
    settings = {name: client_kwargs.get(name) for name in _SETTINGS}
    return resolve_config(**settings, **_TIMINGS)
