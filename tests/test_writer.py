"""The login is read with FrameReader and written with FrameWriter, through a real
socket: what arrives with the login answer in the same read (or a login answer
in fragments) is handled; and FrameWriter on its own, over a real socket pair:
concurrent senders all get through in one piece, a dead peer fails what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from relay_sync import RelayClient
from relay_sync.framing import OPCODE_CONTINUATION, OPCODE_PING, OPCODE_TEXT, FrameWriter

WAIT = 10.0
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def server_frame(payload: bytes, opcode: int = OPCODE_TEXT, fin: bool = True) -> bytes:
    """An unmasked frame, as a server sends one (payloads under 64 KiB here)."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return bytes((first, len(payload))) + payload
    return struct.pack("!BBH", first, 126, len(payload)) + payload


class FrameSource:
    """Frames a client wrote on a socket, unmasked (test side: blocking reads with a timeout)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(WAIT)
        self.buffer = b""

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the client closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self._take(2)
        assert second & 0x80, "client frames must be masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._take(8))
        key = self._take(4)
        payload = bytes(byte ^ key[i % 4] for i, byte in enumerate(self._take(length)))
        assert first & 0x80, "relay_sync writes whole messages"
        return first & 0x0F, payload

    def json_frame(self) -> dict[str, object]:
        opcode, payload = self.frame()
        assert opcode == OPCODE_TEXT
        decoded = json.loads(payload)
        assert isinstance(decoded, dict)
        return decoded


@dataclass
class LoginServer:
    """A bare RELAY server on 127.0.0.1: it takes the upgrade and the login, then
    writes whatever ``answer`` builds from the login's id in one send."""

    answer: Callable[[str], bytes]

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frames: FrameSource | None = None
        self.ready = threading.Event()
        self.failure: Exception | None = None
        self.thread = threading.Thread(target=self._serve, name="test-login-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.listener.settimeout(WAIT)
            conn, _ = self.listener.accept()
            conn.settimeout(WAIT)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    raise ConnectionError("the client left during the upgrade")
                request += chunk
            head, rest = request.split(b"\r\n\r\n", 1)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID.encode()).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            frames = FrameSource(conn)
            frames.buffer = rest
            login = frames.json_frame()
            assert login["method"] == "signalwire.connect"
            conn.sendall(self.answer(str(login["id"])))
            self.frames = frames
        except (OSError, AssertionError, StopIteration, ValueError) as error:  # reported through wait()
            self.failure = error
        finally:
            self.ready.set()

    def wait(self) -> FrameSource:
        assert self.ready.wait(WAIT)
        if self.failure is not None:
            raise self.failure
        assert self.frames is not None
        return self.frames

    def close(self) -> None:
        self.listener.close()
        if self.frames is not None:
            self.frames.sock.close()


def login_answer(request_id: str) -> bytes:
    result = {"protocol": "signalwire_test", "identity": "test@raw", "authorization": {}}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode()


def server_request(request_id: str, method: str, params: dict[str, object]) -> bytes:
    return server_frame(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode())


EVENT: dict[str, object] = {"event_type": "test.burst", "params": {"n": 1}}


@pytest.fixture
def connect() -> Iterator[Callable[[Callable[[str], bytes]], tuple[RelayClient, FrameSource]]]:
    opened: list[tuple[RelayClient, LoginServer]] = []

    def start(answer: Callable[[str], bytes]) -> tuple[RelayClient, FrameSource]:
        server = LoginServer(answer)
        client = RelayClient(project="p", token="t", host=f"127.0.0.1:{server.port}", scheme="ws", connect_timeout=WAIT)
        opened.append((client, server))
        client.connect()
        return client, server.wait()

    yield start
    for client, server in opened:
        client.disconnect()
        server.close()


def answered_ids(frames: FrameSource, count: int) -> set[object]:
    return {frames.json_frame()["id"] for _ in range(count)}


def test_requests_in_the_same_burst_as_the_login_answer_are_answered(
    connect: Callable[[Callable[[str], bytes]], tuple[RelayClient, FrameSource]],
) -> None:
    def burst(login_id: str) -> bytes:
        return (
            server_frame(login_answer(login_id))
            + server_request("ping-after-login", "signalwire.ping", {})
            + server_request("event-after-login", "signalwire.event", EVENT)
        )

    client, frames = connect(burst)
    assert client.connected
    assert client.identity == "test@raw"
    # Read in the same recv() as the login answer, they wait for the I/O thread and are answered.
    assert answered_ids(frames, 2) == {"ping-after-login", "event-after-login"}


def test_a_fragmented_login_answer_with_a_ping_between_its_fragments(
    connect: Callable[[Callable[[str], bytes]], tuple[RelayClient, FrameSource]],
) -> None:
    def fragmented(login_id: str) -> bytes:
        answer = login_answer(login_id)
        third = len(answer) // 3
        return (
            server_request("ping-before-login", "signalwire.ping", {})
            + server_frame(answer[:third], OPCODE_TEXT, fin=False)
            + server_frame(b"are you there", OPCODE_PING)
            + server_frame(answer[third : 2 * third], OPCODE_CONTINUATION, fin=False)
            + server_frame(answer[2 * third :], OPCODE_CONTINUATION)
            + server_request("event-after-login", "signalwire.event", EVENT)
        )

    client, frames = connect(fragmented)
    assert client.connected
    assert client.identity == "test@raw"
    # Pongs go out as the ping is read, answers to requests at the end of the read.
    answers = [frames.frame() for _ in range(3)]
    assert (0xA, b"are you there") in answers
    answered = [json.loads(payload)["id"] for opcode, payload in answers if opcode == OPCODE_TEXT]
    assert answered == ["ping-before-login", "event-after-login"]


@dataclass
class Text:
    text: str


def test_concurrent_senders_all_arrive_whole_through_one_writer() -> None:
    ours, theirs = socket.socketpair()
    failed: list[Text] = []
    writer: FrameWriter[Text] = FrameWriter(ours, limit=WAIT, on_failed=lambda items, error: failed.extend(items))
    writer.limit_sends()
    per_thread, threads = 200, 8

    def send_all(name: int) -> None:
        for n in range(per_thread):
            writer.send(Text(json.dumps({"thread": name, "n": n, "pad": "x" * (n % 300)})))

    senders = [threading.Thread(target=send_all, args=(name,)) for name in range(threads)]
    for sender in senders:
        sender.start()
    frames = FrameSource(theirs)
    seen: dict[int, list[int]] = {name: [] for name in range(threads)}
    for _ in range(per_thread * threads):
        message = frames.json_frame()
        seen[int(str(message["thread"]))].append(int(str(message["n"])))
    for sender in senders:
        sender.join(WAIT)
    # Each sender's messages arrive whole and in the order it sent them.
    assert all(numbers == list(range(per_thread)) for numbers in seen.values())
    assert failed == []
    ours.close()
    theirs.close()


def test_a_write_on_a_closed_peer_fails_its_messages() -> None:
    ours, theirs = socket.socketpair()
    theirs.close()
    failures: list[tuple[list[Text], BaseException]] = []
    writer: FrameWriter[Text] = FrameWriter(
        ours, limit=WAIT, on_failed=lambda items, error: failures.append((items, error))
    )
    message = Text('{"lost": true}')
    writer.send(message)
    writer.send(b"already framed bytes are not reported")
    # Framed bytes (answers to the server) are nobody's request: only the message is reported.
    assert [items for items, _ in failures] == [[message], []]
    assert all(isinstance(error, OSError) for _, error in failures)
    ours.close()
