"""scheme=None picks ws for a loopback host (a local emulator) and wss for any other."""

from __future__ import annotations

import socket
import threading

import pytest

from relay_sync import RelayClient, RelayError
from relay_sync.testing import RelayEmulator


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch):
    with RelayEmulator() as emulator:
        for name, value in emulator.environment().items():
            monkeypatch.setenv(name, value)
        yield emulator


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_a_loopback_host_gets_plain_ws(emulator: RelayEmulator, name: str) -> None:
    with RelayClient(host=f"{name}:{emulator.port}") as client:
        assert client.state == "connected"


def test_the_readme_configuration_reaches_a_local_emulator(emulator: RelayEmulator) -> None:
    with RelayClient() as client:  # the environment alone, no scheme, as the README shows
        assert client.state == "connected"


class RefusingProxy:
    """An HTTP proxy on loopback that records the CONNECT target and refuses it,
    so nothing leaves the machine."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.target: str | None = None
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def _serve_one(self) -> None:
        conn, _ = self._listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.target = head.split(b" ")[1].decode()
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> str | None:
        self._thread.join(timeout=10)
        self._listener.close()
        return self.target


def test_any_other_host_gets_wss_on_port_443() -> None:
    proxy = RefusingProxy()
    client = RelayClient("p", "t", host="relay.example.com", proxy=proxy.url)
    with pytest.raises(RelayError):
        client.connect()
    client.disconnect()
    assert proxy.close() == "relay.example.com:443"  # wss's port; ws would have asked for 80


def test_explicit_ws_is_refused_for_a_host_that_is_not_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        RelayClient("p", "t", host="example.signalwire.com", scheme="ws")
