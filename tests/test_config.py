"""RelayClient configuration: arguments, environment fallbacks, validation. Nothing is opened."""

from __future__ import annotations

import threading

import pytest

from relay_sync import RelayClient

from .config_support import config_from

ENV = (
    "SIGNALWIRE_PROJECT_ID",
    "SIGNALWIRE_API_TOKEN",
    "SIGNALWIRE_JWT_TOKEN",
    "SIGNALWIRE_SPACE",
    "RELAY_MAX_ACTIVE_CALLS",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_missing_project_names_the_argument_and_variable() -> None:
    with pytest.raises(ValueError, match="project.*SIGNALWIRE_PROJECT_ID"):
        RelayClient(token="t")


def test_missing_token_names_the_argument_and_variable() -> None:
    with pytest.raises(ValueError, match="token.*SIGNALWIRE_API_TOKEN"):
        RelayClient(project="p")


def test_jwt_alone_is_enough() -> None:
    client = RelayClient(jwt_token="jwt")
    assert client.project is None
    assert client.host == "relay.signalwire.com"


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", "proj")
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", "tok")
    monkeypatch.setenv("SIGNALWIRE_SPACE", "example.signalwire.com")
    monkeypatch.setenv("RELAY_MAX_ACTIVE_CALLS", "7")
    client = RelayClient()
    assert (client.project, client.host, client.max_active_calls) == ("proj", "example.signalwire.com", 7)


def test_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_SPACE", "env.signalwire.com")
    monkeypatch.setenv("RELAY_MAX_ACTIVE_CALLS", "7")
    client = RelayClient("p", "t", host="arg.signalwire.com:8443", max_active_calls=3)
    assert (client.host, client.max_active_calls) == ("arg.signalwire.com:8443", 3)


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "1.5", " "])
def test_invalid_max_active_calls_env_falls_back(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("RELAY_MAX_ACTIVE_CALLS", raw)
    assert RelayClient("p", "t").max_active_calls == 1000


@pytest.mark.parametrize("value", [0, -1, True, 2.5])
def test_invalid_max_active_calls_argument(value: object) -> None:
    with pytest.raises(ValueError, match="max_active_calls"):
        RelayClient("p", "t", max_active_calls=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "host",
    [
        "wss://example.signalwire.com",
        "example.signalwire.com/path",
        "user@example.signalwire.com",
        "example.signalwire.com?x=1",
        "example.signalwire.com\r\nX-Evil: 1",
        "exa mple.com",
        "back\\slash",
        "example.com:notaport",
        "example.com:70000",
        ":8080",
    ],
)
def test_host_must_be_a_hostname(host: str) -> None:
    with pytest.raises(ValueError, match="host"):
        RelayClient("p", "t", host=host)


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost", "[::1]:9000", "127.3.4.5"])
def test_plain_ws_allowed_on_loopback(host: str) -> None:
    assert RelayClient("p", "t", host=host, scheme="ws").host == host


@pytest.mark.parametrize("host", ["example.signalwire.com", "10.0.0.5:8080", "192.168.1.1"])
def test_plain_ws_refused_off_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="clear text"):
        RelayClient("p", "t", host=host, scheme="ws")


def test_unknown_scheme_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        RelayClient("p", "t", scheme="http")


@pytest.mark.parametrize(
    "kwargs",
    [{"request_timeout": 0}, {"ping_interval": -1}, {"reconnect_backoff": (2.0, 1.0)}, {"reconnect_backoff": 5}],
)
def test_timing_arguments_validated(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RelayClient("p", "t", **kwargs)


def test_contexts_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="list"):
        RelayClient("p", "t", contexts="office")  # type: ignore[arg-type]


def test_constructing_opens_nothing() -> None:
    before = set(threading.enumerate())
    client = RelayClient("p", "t", contexts=["office"])
    assert set(threading.enumerate()) == before
    assert not client.connected
    assert client.relay_protocol is None
    assert client.contexts == ["office"]


def test_repr_never_shows_secrets() -> None:
    secrets = {"project": "project-secret", "token": "token-secret", "jwt_token": "jwt-secret"}
    client = RelayClient(**secrets)
    text = repr(client) + repr(config_from(**secrets))
    for secret in ("project-secret", "token-secret", "jwt-secret"):
        assert secret not in text
