"""TLS verification with a custom CA bundle, and HTTP proxies, on loopback."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay_sync import RelayClient, RelayError
from relay_sync.errors import RestError
from relay_sync.events import TaskEvent
from relay_sync.rest import deliver_task
from relay_sync.testing import RelayEmulator, RelayTestServer

from .fast_clients import relay_threads
from .netutil import ConnectProxy

trustme = pytest.importorskip("trustme")


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[RelayTestServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with RelayTestServer(ssl_context=context) as server:
        yield server


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def tls_kwargs(server: RelayTestServer, **extra: object) -> dict[str, object]:
    kwargs = server.client_kwargs(host=f"localhost:{server.port}", **extra)
    assert kwargs["scheme"] == "wss"
    return kwargs


def test_unknown_ca_is_refused(tls_server: RelayTestServer) -> None:
    client = RelayClient(**tls_kwargs(tls_server))  # type: ignore[arg-type]
    with pytest.raises(RelayError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        client.connect(timeout=5)
    assert tls_server.requests("signalwire.connect") == []  # no credentials left the client
    assert relay_threads() == []


def test_custom_ca_bundle_is_accepted(tls_server: RelayTestServer, ca_file: str) -> None:
    with RelayClient(**tls_kwargs(tls_server, ca_file=ca_file)) as client:  # type: ignore[arg-type]
        assert client.execute("over.tls", {})["code"] == "200"


def test_ca_bundle_from_environment(tls_server: RelayTestServer, ca_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", ca_file)
    with RelayClient(**tls_kwargs(tls_server)) as client:  # type: ignore[arg-type]
        assert client.connected


def test_missing_ca_file_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="ca_file"):
        RelayClient("p", "t", ca_file="/no/such/ca.pem")


def test_socket_goes_through_an_explicit_proxy(server: RelayTestServer) -> None:
    with ConnectProxy(credentials=("alice", "s3cret")) as proxy:
        url = proxy.url.replace("http://", "http://alice:s3cret@")
        with RelayClient(**server.client_kwargs(proxy=url)) as client:
            assert client.execute("via.proxy", {})["code"] == "200"
        assert proxy.targets == [server.relay_host]


def test_proxy_that_refuses_is_a_relay_error(server: RelayTestServer) -> None:
    with ConnectProxy(credentials=("alice", "s3cret")) as proxy:
        client = RelayClient(**server.client_kwargs(proxy=proxy.url))  # no credentials
        with pytest.raises(RelayError, match="could not connect"):
            client.connect(timeout=5)
        assert server.requests("signalwire.connect") == []


@pytest.mark.parametrize(
    ("variable", "with_scheme"),
    [("http_proxy", True), ("HTTP_PROXY", True), ("all_proxy", True), ("http_proxy", False)],
)
def test_proxy_from_environment(
    server: RelayTestServer, monkeypatch: pytest.MonkeyPatch, variable: str, with_scheme: bool
) -> None:
    with ConnectProxy() as proxy:
        # ws:// uses http_proxy, wss:// https_proxy; all_proxy serves both; a bare host:port is http://
        monkeypatch.setenv(variable, proxy.url if with_scheme else proxy.url.removeprefix("http://"))
        with RelayClient(**server.client_kwargs()) as client:
            assert client.execute("via.proxy", {})["code"] == "200"
        assert proxy.targets == [server.relay_host]


def test_https_proxy_from_environment_carries_wss(
    tls_server: RelayTestServer, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ConnectProxy() as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        with RelayClient(**tls_kwargs(tls_server, ca_file=ca_file)) as client:
            assert client.connected
        assert proxy.targets == [f"localhost:{tls_server.port}"]


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "*", "example.com, 127.0.0.1"])
def test_no_proxy_bypasses_the_proxy(server: RelayTestServer, monkeypatch: pytest.MonkeyPatch, no_proxy: str) -> None:
    with ConnectProxy() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", no_proxy)
        with RelayClient(**server.client_kwargs()) as client:
            assert client.connected
        assert proxy.targets == []


def test_an_explicit_proxy_wins_over_the_environment(server: RelayTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with ConnectProxy() as explicit, ConnectProxy() as from_environment:
        monkeypatch.setenv("http_proxy", from_environment.url)
        with RelayClient(**server.client_kwargs(proxy=explicit.url)) as client:
            assert client.connected
        assert (explicit.targets, from_environment.targets) == ([server.relay_host], [])


def test_a_proxy_from_the_environment_that_is_not_http_is_a_clear_error(
    server: RelayTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "socks5://user:hunter2@127.0.0.1:1080")
    client = RelayClient(**server.client_kwargs())
    with pytest.raises(RelayError, match="an HTTP proxy that supports CONNECT") as caught:
        client.connect(timeout=5)
    assert "hunter2" not in str(caught.value)
    assert server.requests("signalwire.connect") == []


@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_proxy_variable_is_no_proxy(
    server: RelayTestServer, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("http_proxy", value)
    with RelayClient(**server.client_kwargs()) as client:
        assert client.execute("direct", {})["code"] == "200"


def test_a_proxy_variable_with_spaces_around_it_still_works(
    server: RelayTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ConnectProxy() as proxy:
        monkeypatch.setenv("http_proxy", f"  {proxy.url}\n")
        with RelayClient(**server.client_kwargs()) as client:
            assert client.connected
        assert proxy.targets == [server.relay_host]


@pytest.mark.parametrize("value", ["http://", "http://:3128", "http://user:hunter2@proxy.invalid:99999"])
def test_an_unusable_proxy_variable_stops_run_instead_of_retrying(
    server: RelayTestServer, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("http_proxy", value)
    client = RelayClient(**server.client_kwargs(reconnect_backoff=(0.05, 0.2)))
    with pytest.raises(RelayError) as caught:
        client.run()  # retrying cannot fix a setting: run() raises at once
    assert caught.value.code == "proxy_invalid"
    assert "not usable" in str(caught.value) and "hunter2" not in str(caught.value)
    assert server.requests("signalwire.connect") == []


def test_a_refusing_environment_proxy_says_how_to_go_around_it(
    server: RelayTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ConnectProxy(credentials=("alice", "s3cret")) as proxy:  # refuses a CONNECT without them
        monkeypatch.setenv("http_proxy", proxy.url)
        client = RelayClient(**server.client_kwargs())
        with pytest.raises(RelayError, match="no_proxy") as caught:
            client.connect(timeout=5)
    assert "127.0.0.1" in str(caught.value)
    assert server.requests("signalwire.connect") == []


@pytest.mark.parametrize("url", ["socks5://127.0.0.1:1080", "127.0.0.1:3128", "http://:80"])
def test_bad_proxy_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="proxy"):
        RelayClient("p", "t", proxy=url)


def test_rest_calls_use_the_clients_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "4")
    with RelayEmulator() as emulator, ConnectProxy() as proxy:
        received: list[object] = []
        worker = emulator.client(contexts=["jobs"])
        done = threading.Event()

        @worker.on_task
        def on_task(task: TaskEvent) -> None:
            received.append(task.message)
            done.set()

        with worker:
            sender = emulator.client(proxy=proxy.url)
            sender.deliver_task("jobs", {"n": 1})  # REST only: no socket needed
            assert done.wait(timeout=5)
        assert received == [{"n": 1}]
        assert proxy.targets == [emulator.relay_host]


def test_an_explicit_rest_proxy_wins_over_https_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with ConnectProxy() as explicit, ConnectProxy() as from_environment:
        monkeypatch.setenv("HTTPS_PROXY", from_environment.url)
        for variable in ("no_proxy", "NO_PROXY", "https_proxy"):
            monkeypatch.delenv(variable, raising=False)
        # Port 9 of loopback refuses the tunnel; what matters is which proxy was asked.
        with pytest.raises(RestError):
            deliver_task("ctx", {}, project="p", token="t", host="127.0.0.1:9", proxy=explicit.url, timeout=10)
        assert explicit.targets == ["127.0.0.1:9"]
        assert from_environment.targets == []
