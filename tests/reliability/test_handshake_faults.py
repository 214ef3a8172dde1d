"""The fault matrix, handshake rows: a server or a link that trickles the
handshake a byte at a time, a SYN nobody answers, ``disconnect()`` during a
connect or a reconnect, a redirect on the upgrade, and TLS trust with a
private CA bundle next to the system's.

Bounds are generous (the suite runs on loaded machines) but far below what
each fault costs without its fix: minutes, or forever.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from relay_sync import ClientClosedError, RelayClient, RelayError, RelayTimeoutError, rest
from relay_sync.testing import RelayTestServer

from .netfaults import FaultProxy, FullBacklog, LogWatch, RedirectServer, TrickleServer
from .support import STEP, relay_thread_count, run_in_thread

# What "cut short" and "bounded" mean here: well above scheduling noise on a
# busy machine, far below the 20+ s (or endless) wait of the fault itself.
PROMPTLY = 3.0


@pytest.fixture(autouse=True)
def many_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_MAX_CONNECTIONS", "16")


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    yield
    assert relay_thread_count() == 0, "relay_sync threads left running"


def loopback_client(port: int, **options: object) -> RelayClient:
    return RelayClient("p", "t", host=f"127.0.0.1:{port}", scheme="ws", **options)  # type: ignore[arg-type]


def timed(fn: Callable[[], object]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        fn()
    except BaseException as error:  # noqa: BLE001 - returned to the test
        return time.monotonic() - started, error
    return time.monotonic() - started, None


# -- connect_timeout bounds the whole handshake ------------------------------------


def test_an_upgrade_answer_trickled_a_byte_at_a_time_is_bounded_by_connect_timeout() -> None:
    with TrickleServer() as trickler:
        client = loopback_client(trickler.port)
        elapsed, error = timed(lambda: client.connect(timeout=1.0))
    assert isinstance(error, RelayTimeoutError), error
    assert "1 s" in error.message
    assert elapsed < 1.0 + PROMPTLY


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def test_a_tls_handshake_trickled_through_a_proxy_is_bounded_by_connect_timeout(ca: trustme.CA, ca_file: str) -> None:
    with RelayTestServer(ssl_context=server_context(ca)) as server, FaultProxy(server.port) as proxy:
        proxy.trickle_new_links = True  # the server's ~1 KB of TLS handshake takes minutes
        client = RelayClient("test", "test", host=f"localhost:{proxy.port}", scheme="wss", ca_file=ca_file)
        elapsed, error = timed(lambda: client.connect(timeout=1.0))
        assert isinstance(error, RelayTimeoutError), error
        assert elapsed < 1.0 + PROMPTLY
        assert server.requests("signalwire.connect") == []


# -- disconnect() cuts a connect or a reconnect short ------------------------------


def test_disconnect_cuts_short_a_connect_stuck_in_the_tcp_handshake() -> None:
    with FullBacklog() as nobody, LogWatch() as logs:  # the SYN is never answered
        client = loopback_client(nobody.port, connect_timeout=60.0)
        connecting = run_in_thread(client.connect)
        logs.wait_for(logging.DEBUG, "connecting to")
        elapsed, error = timed(client.disconnect)
        assert error is None
        assert elapsed < PROMPTLY
        assert isinstance(connecting.exception(PROMPTLY), ClientClosedError)


def test_disconnect_cuts_short_a_connect_in_a_trickled_upgrade() -> None:
    with TrickleServer() as trickler:
        client = loopback_client(trickler.port, connect_timeout=60.0)
        connecting = run_in_thread(client.connect)
        trickler.wait_for_connections(1)
        elapsed, error = timed(client.disconnect)
        assert error is None
        assert elapsed < PROMPTLY
        assert isinstance(connecting.exception(PROMPTLY), ClientClosedError)


def test_disconnect_cuts_short_a_reconnect_in_progress() -> None:
    server = RelayTestServer().start()
    try:
        with FaultProxy(server.port) as proxy:
            client = RelayClient(
                "test",
                "test",
                host=f"127.0.0.1:{proxy.port}",
                scheme="ws",
                connect_timeout=60.0,
                reconnect_backoff=(0.05, 0.2),
            )
            client.connect()
            proxy.trickle_new_links = True  # the reconnect's upgrade answer will crawl
            server.session().drop()
            proxy.wait_for_connections(2)  # the reconnect attempt is under way
            elapsed, error = timed(client.disconnect)
            assert error is None
            assert elapsed < PROMPTLY
            assert not client.connected
    finally:
        server.stop()


def test_a_reconnect_that_hangs_is_given_up_after_connect_timeout_and_retried() -> None:
    server = RelayTestServer().start()
    try:
        with FaultProxy(server.port) as proxy, LogWatch() as logs:
            client = RelayClient(
                "test",
                "test",
                host=f"127.0.0.1:{proxy.port}",
                scheme="ws",
                connect_timeout=1.0,
                reconnect_backoff=(0.05, 0.2),
            )
            with client:
                proxy.trickle_new_links = True
                server.session().drop()
                logs.wait_for(logging.DEBUG, "took longer than 1 s", timeout=STEP * 2)  # attempt 1 timed out...
                proxy.trickle_new_links = False
                server.wait_for_session(2, timeout=STEP * 2)  # ...and a later one got through
                assert client.execute("after.hang", {}, timeout=STEP)["code"] == "200"
    finally:
        server.stop()


# -- redirects are never followed -----------------------------------------------------


def test_a_redirect_on_the_upgrade_is_refused_and_never_followed(ca: trustme.CA, ca_file: str) -> None:
    with RelayTestServer() as plain_server:
        downgrade = f"ws://127.0.0.1:{plain_server.port}/"
        with RedirectServer(downgrade, status=302, ssl_context=server_context(ca)) as redirector:
            client = RelayClient("test", "test", host=f"localhost:{redirector.port}", scheme="wss", ca_file=ca_file)
            with pytest.raises(RelayError) as raised:
                client.connect(timeout=STEP)
            assert raised.value.code == "redirect_refused"
            assert "302" in raised.value.message and downgrade in raised.value.message
            assert len(redirector.requests) == 1
        # Nothing reached the redirect target, least of all the credentials.
        assert plain_server.sessions == []
        assert plain_server.requests("signalwire.connect") == []


def test_run_does_not_retry_a_redirect() -> None:
    with RedirectServer("ws://127.0.0.1:9/", status=301) as redirector:
        client = loopback_client(redirector.port, reconnect_backoff=(0.05, 0.2))
        with pytest.raises(RelayError) as raised:
            client.run()
        assert raised.value.code == "redirect_refused"
        assert redirector.accepted == 1


# -- ca_file is added to the system trust store --------------------------------------


@pytest.fixture
def system_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    """A CA standing for the public ones: OpenSSL's default store is pointed at it."""
    public = trustme.CA()
    path = tmp_path / "system-store.pem"
    public.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))
    return public


def test_ca_file_is_added_to_the_system_trust_store(system_ca: trustme.CA, ca: trustme.CA, ca_file: str) -> None:
    with (
        RelayTestServer(ssl_context=server_context(system_ca)) as public_server,
        RelayTestServer(ssl_context=server_context(ca)) as private_server,
    ):
        for server in (public_server, private_server):
            with RelayClient("test", "test", host=f"localhost:{server.port}", scheme="wss", ca_file=ca_file) as client:
                assert client.execute("over.tls", {}, timeout=STEP)["code"] == "200"


def test_without_ca_file_only_the_system_store_is_trusted(system_ca: trustme.CA, ca: trustme.CA) -> None:
    with (
        RelayTestServer(ssl_context=server_context(system_ca)) as public_server,
        RelayClient("test", "test", host=f"localhost:{public_server.port}", scheme="wss") as client,
    ):
        assert client.connected
    with RelayTestServer(ssl_context=server_context(ca)) as private_server:
        client = RelayClient("test", "test", host=f"localhost:{private_server.port}", scheme="wss")
        with pytest.raises(RelayError) as raised:
            client.connect(timeout=STEP)
        assert raised.value.code == "certificate_rejected"
        assert private_server.requests("signalwire.connect") == []


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def https_server(ca: trustme.CA) -> Iterator[str]:
    """A plain HTTPS server on loopback with a certificate from ``ca``; yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    httpd.socket = server_context(ca).wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, name="test-https", daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=STEP)


def test_rest_calls_add_ca_file_to_the_system_trust_store(
    system_ca: trustme.CA, ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with https_server(system_ca) as public_url, https_server(ca) as private_url:
        with rest.new_session(project="p", token="t", ca_file=ca_file) as session:
            assert session.get(public_url).status_code == 200
            assert session.get(private_url).status_code == 200
        monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", ca_file)
        with rest.new_session(project="p", token="t") as session:
            assert session.get(private_url).status_code == 200
