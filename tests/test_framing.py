"""framing: the frames relay_sync writes are what websocket-client (and RFC 6455)
expect, and FrameReader takes bursts, fragments, control frames and split reads."""

from __future__ import annotations

import struct

import pytest
from websocket import ABNF, WebSocketConnectionClosedException, WebSocketProtocolException

from relay_sync.framing import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameReader,
    MaskingKeys,
    control_frame,
    text_frame,
)


def server_frame(payload: bytes, opcode: int = OPCODE_TEXT, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked frame, as a server sends one."""
    first = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, length))
    elif length < 0x10000:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


class FakeSocket:
    """recv_into over scripted chunks; b"" means the peer closed."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def recv_into(self, buffer: memoryview) -> int:
        if not self.chunks:
            return 0
        chunk = self.chunks.pop(0)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def reader_for(*chunks: bytes) -> tuple[FrameReader, list[tuple[int, bytes]]]:
    answered: list[tuple[int, bytes]] = []
    return FrameReader(
        FakeSocket(*chunks).recv_into, lambda opcode, payload: answered.append((opcode, payload))
    ), answered


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_text_frames_are_final_masked_and_unmask_with_websocket_client(size: int) -> None:
    text = ("é" + "x" * size)[:size]
    data = text_frame(text, MaskingKeys())
    assert data[0] == 0x80 | OPCODE_TEXT  # FIN, no reserved bits
    assert data[1] & 0x80  # masked, as a client must
    length, offset = data[1] & 0x7F, 2
    if length == 126:
        length, offset = struct.unpack("!H", data[2:4])[0], 4
    elif length == 127:
        length, offset = struct.unpack("!Q", data[2:10])[0], 10
    key, payload = data[offset : offset + 4], data[offset + 4 :]
    assert length == len(payload) == len(text.encode("utf-8"))
    assert ABNF.mask(key, payload).decode("utf-8") == text


def test_masking_keys_change_from_frame_to_frame() -> None:
    keys = MaskingKeys()
    taken = {keys.take() for _ in range(5000)}
    assert len(taken) > 4900
    assert all(len(key) == 4 for key in taken)


def test_a_burst_of_frames_comes_back_in_one_read() -> None:
    frames = b"".join(server_frame(f'{{"n":{n}}}'.encode()) for n in range(50))
    reader, _ = reader_for(frames)
    messages = reader.read()
    assert [payload for _, payload in messages] == [f'{{"n":{n}}}'.encode() for n in range(50)]


def test_frames_split_across_reads_at_every_byte() -> None:
    data = server_frame(b"a" * 300) + server_frame(b"b" * 70_000) + server_frame(b"c")
    for cut in range(0, len(data), 997):
        reader, _ = reader_for(data[:cut], data[cut:]) if cut else reader_for(data)
        got = []
        while len(got) < 3:
            got += reader.read()
        assert [p for _, p in got] == [b"a" * 300, b"b" * 70_000, b"c"]


def test_fragments_are_joined_and_pings_answered_in_between() -> None:
    data = (
        server_frame(b"hel", OPCODE_TEXT, fin=False)
        + server_frame(b"ping!", OPCODE_PING)
        + server_frame(b"lo", 0, fin=True)
        + server_frame(b"\x00\x01", OPCODE_BINARY)
        + server_frame(b"", OPCODE_PONG)
    )
    reader, answered = reader_for(data)
    assert reader.read() == [(OPCODE_TEXT, b"hello"), (OPCODE_BINARY, b"\x00\x01")]
    assert answered == [(OPCODE_PONG, b"ping!")]


def test_a_close_frame_is_answered_and_ends_the_connection() -> None:
    reader, answered = reader_for(server_frame(b"\x03\xe8bye", OPCODE_CLOSE))
    with pytest.raises(WebSocketConnectionClosedException):
        reader.read()
    assert answered == [(OPCODE_CLOSE, b"\x03\xe8")]


def test_end_of_stream_is_a_lost_connection() -> None:
    reader, _ = reader_for(server_frame(b"x")[:2])
    with pytest.raises(WebSocketConnectionClosedException):
        reader.read()


@pytest.mark.parametrize(
    "data",
    [
        server_frame(b"x", rsv=0x40),  # a reserved bit with no extension
        server_frame(b"x", 0x3),  # an unknown opcode
        server_frame(b"x", 0, fin=True),  # a continuation of nothing
        server_frame(b"a", OPCODE_TEXT, fin=False) + server_frame(b"b", OPCODE_TEXT),  # a new message mid-message
    ],
)
def test_protocol_violations_raise(data: bytes) -> None:
    reader, _ = reader_for(data)
    with pytest.raises(WebSocketProtocolException):
        reader.read()


def test_a_masked_server_frame_is_unmasked() -> None:
    masked = text_frame('{"ok":true}', MaskingKeys())  # a client frame: masked
    reader, _ = reader_for(masked)
    assert reader.read() == [(OPCODE_TEXT, b'{"ok":true}')]


def test_control_frames_are_masked_and_short() -> None:
    frame = control_frame(OPCODE_PONG, b"p" * 300, MaskingKeys())
    assert frame[0] == 0x80 | OPCODE_PONG
    assert frame[1] == 0x80 | 125


def test_an_oversized_frame_is_read_past_without_being_buffered(monkeypatch: pytest.MonkeyPatch) -> None:
    from relay_sync import framing

    monkeypatch.setattr(framing, "MAX_MESSAGE_SIZE", 10)
    oversize = server_frame(b"x" * 1000)
    # The oversize payload arrives in pieces; none of it is kept, and the frame after it is read.
    reader, _ = reader_for(oversize[:300], oversize[300:700], oversize[700:] + server_frame(b"next"))
    assert reader.read() == [(OPCODE_TEXT, b"next")]


def test_an_oversized_fragmented_message_is_dropped_and_the_next_one_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from relay_sync import framing

    monkeypatch.setattr(framing, "MAX_MESSAGE_SIZE", 10)
    data = (
        server_frame(b"123456", OPCODE_TEXT, fin=False)
        + server_frame(b"789012", 0, fin=False)
        + server_frame(b"345", 0, fin=True)
        + server_frame(b"kept", OPCODE_TEXT)
    )
    reader, _ = reader_for(data)
    assert reader.read() == [(OPCODE_TEXT, b"kept")]


def test_a_message_in_too_many_fragments_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from relay_sync import framing

    monkeypatch.setattr(framing, "MAX_FRAGMENTS", 3)
    four = server_frame(b"a", OPCODE_TEXT, fin=False) + server_frame(b"b", 0, fin=False) * 2 + server_frame(b"c", 0)
    three = server_frame(b"a", OPCODE_TEXT, fin=False) + server_frame(b"b", 0, fin=False) + server_frame(b"c", 0)
    reader, _ = reader_for(four + three)
    assert reader.read() == [(OPCODE_TEXT, b"abc")]
