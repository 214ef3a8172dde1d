"""WebSocket frames (RFC 6455) on the socket once the upgrade is done: one
owner per direction.

opening.py does TCP, proxying and TLS and websocket-client the upgrade
handshake; from the login on, every frame read goes through a
:class:`FrameReader` and every frame written through the connection's
:class:`FrameWriter`. The reader takes whatever the socket holds in one
``recv`` and hands back every complete message in it, so a burst of events
costs one system call instead of two or three per frame, and the I/O thread
learns when the burst is over (to flush its ACKs in one write). Each system
call lets another thread take the GIL, which the I/O thread then has to wait
to get back: fewer calls keep it running while the server is talking.

A message over the size cap (one frame, or the sum of a fragmented
message's frames), or fragmented into more frames than the fragment cap, is
read past without being kept, logged and dropped: the session goes on.

``FrameReader`` runs in the thread reading the connection (the one logging
in, then the I/O thread). ``FrameWriter`` is used from any thread; its
reply queue only from the reading thread.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

from websocket import (
    WebSocketConnectionClosedException,
    WebSocketException,
    WebSocketProtocolException,
    WebSocketTimeoutException,
)

log = logging.getLogger(__name__)

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA

# Bytes asked of the socket per read: a few hundred events at once. Read into one
# buffer kept for the purpose: a fresh bytes object this large per read would cost
# an mmap, mremap and munmap each time.
READ_SIZE = 256 * 1024
# The largest message accepted (one frame or the sum of its fragments): without a
# cap a server could make the client buffer without limit. RELAY frames are small.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
# The most frames one message may be split into. Each kept fragment costs an
# object; 16 MiB in 4 KiB pieces still fits.
MAX_FRAGMENTS = 4096
# Random bytes fetched at a time for masking keys (RFC 6455 wants them unpredictable).
_MASK_POOL_SIZE = 4096

# What a write on a lost link raises (ssl.SSLError is an OSError).
WRITE_ERRORS = (OSError, WebSocketException)
# How long a goodbye close frame may take before the socket is dropped anyway.
CLOSE_TIMEOUT = 1.0
CLOSE_NORMAL = struct.pack("!H", 1000)

_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


class MaskingKeys:
    """Masking keys from ``os.urandom``, fetched a page at a time. Not thread-safe:
    used under the send lock."""

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0

    def take(self) -> bytes:
        if self._next >= len(self._pool):
            self._pool = os.urandom(_MASK_POOL_SIZE)
            self._next = 0
        key = self._pool[self._next : self._next + 4]
        self._next += 4
        return key


def text_frame(text: str, keys: MaskingKeys) -> bytes:
    """One masked, final text frame carrying ``text``."""
    return _frame(OPCODE_TEXT, text.encode("utf-8"), keys)


def control_frame(opcode: int, payload: bytes, keys: MaskingKeys) -> bytes:
    """A masked close/ping/pong frame (payload at most 125 bytes)."""
    return _frame(opcode, payload[:125], keys)


def _frame(opcode: int, payload: bytes, keys: MaskingKeys) -> bytes:
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 0x10000:
        header = _pack_16(first, 0x80 | 126, length)
    else:
        header = _pack_64(first, 0x80 | 127, length)
    key = keys.take()
    return header + key + _mask(key, payload)


def _mask(key: bytes, payload: bytes) -> bytes:
    length = len(payload)
    if not length:
        return payload
    repeated = key * ((length >> 2) + 1)
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated[:length], "little")).to_bytes(length, "little")


class FrameReader:
    """Whole messages from a socket, a burst at a time (I/O thread).

    ``read()`` blocks until at least one message is complete and returns all
    that are, as ``(opcode, payload)`` with opcode text or binary; fragments
    are joined. Pings are answered through ``send_control``; a close frame is
    answered and then reported as a closed connection. A message over
    ``MAX_MESSAGE_SIZE`` or ``MAX_FRAGMENTS`` is skipped (see the module docstring).
    """

    def __init__(self, recv_into: Callable[[memoryview], int], send_control: Callable[[int, bytes], None]) -> None:
        self._recv_into = recv_into
        self._send_control = send_control
        self._chunk = memoryview(bytearray(READ_SIZE))
        self._buffer = bytearray()
        # The fragmented message being received: its frames so far and their total size
        # (kept as it grows: summing the list per frame is quadratic in the fragments).
        self._in_message = False
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._fragment_opcode = 0
        self._discarding = False  # the message in progress broke a cap: drop the rest of it
        self._skip = 0  # payload bytes of an oversize frame still to read past

    def read(self) -> list[tuple[int, bytes]]:
        messages: list[tuple[int, bytes]] = []
        while not messages:
            received = self._recv_into(self._chunk)
            if not received:
                raise WebSocketConnectionClosedException("Connection to remote host was lost.")
            self._buffer += self._chunk[:received]
            self._parse(messages)
        return messages

    def _parse(self, messages: list[tuple[int, bytes]]) -> None:
        buffer = self._buffer
        size = len(buffer)
        position = 0
        while True:
            if self._skip:
                skipped = min(self._skip, size - position)
                position += skipped
                self._skip -= skipped
                if self._skip:
                    break
            if size - position < 2:
                break
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                length = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            key = b""
            if second & 0x80:  # servers must not mask, but unmasking costs little
                if size - start < 4:
                    break
                key = bytes(buffer[start : start + 4])
                start += 4
            if first & 0x70:
                raise WebSocketProtocolException("a frame used reserved bits with no extension negotiated")
            if length > MAX_MESSAGE_SIZE:
                # Decided on the header alone, so the payload is never buffered: read past it.
                self._drop_oversize_frame(first & 0x80, first & 0x0F, length)
                position = start
                self._skip = length
                continue
            end = start + length
            if end > size:
                break
            payload = bytes(buffer[start:end])
            position = end
            if key:
                payload = _mask(key, payload)
            self._frame(first & 0x80, first & 0x0F, payload, messages)
        if position:
            del buffer[:position]

    def _frame(self, fin: int, opcode: int, payload: bytes, messages: list[tuple[int, bytes]]) -> None:
        if opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
            if self._in_message:
                raise WebSocketProtocolException("a new message started before the previous one ended")
            if fin:
                messages.append((opcode, payload))
            else:
                self._in_message = True
                self._fragments = [payload]
                self._fragments_size = len(payload)
                self._fragment_opcode = opcode
        elif opcode == OPCODE_CONTINUATION:
            if not self._in_message:
                raise WebSocketProtocolException("a continuation frame arrived with no message to continue")
            if not self._discarding:
                self._fragments_size += len(payload)
                self._fragments.append(payload)
                if self._fragments_size > MAX_MESSAGE_SIZE or len(self._fragments) > MAX_FRAGMENTS:
                    log.warning(
                        "dropping a fragmented message over the limit (%d+ frames, %d+ bytes; at most %d and %d)",
                        len(self._fragments),
                        self._fragments_size,
                        MAX_FRAGMENTS,
                        MAX_MESSAGE_SIZE,
                    )
                    self._start_discarding()
            if fin:
                if not self._discarding:
                    messages.append((self._fragment_opcode, b"".join(self._fragments)))
                self._end_message()
        elif opcode == OPCODE_PING:
            self._send_control(OPCODE_PONG, payload)
        elif opcode == OPCODE_PONG:
            pass
        elif opcode == OPCODE_CLOSE:
            self._send_control(OPCODE_CLOSE, payload[:2])
            raise WebSocketConnectionClosedException("the server closed the connection")
        else:
            raise WebSocketProtocolException(f"unknown opcode {opcode:#x}")

    def _drop_oversize_frame(self, fin: int, opcode: int, length: int) -> None:
        """A frame over ``MAX_MESSAGE_SIZE``: its message is dropped (its payload is skipped by the caller)."""
        if opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
            if self._in_message:
                raise WebSocketProtocolException("a new message started before the previous one ended")
            log.warning("dropping a %d-byte message over the %d-byte limit", length, MAX_MESSAGE_SIZE)
            if not fin:
                self._in_message = True
                self._start_discarding()
        elif opcode == OPCODE_CONTINUATION:
            if not self._in_message:
                raise WebSocketProtocolException("a continuation frame arrived with no message to continue")
            if not self._discarding:
                log.warning("dropping a fragmented message with a %d-byte frame (limit %d)", length, MAX_MESSAGE_SIZE)
                self._start_discarding()
            if fin:
                self._end_message()
        else:
            raise WebSocketProtocolException(f"a {length}-byte control frame (opcode {opcode:#x})")

    def _start_discarding(self) -> None:
        self._discarding = True
        self._fragments = []
        self._fragments_size = 0

    def _end_message(self) -> None:
        self._in_message = False
        self._discarding = False
        self._fragments = []
        self._fragments_size = 0


class TextMessage(Protocol):
    """What the writer sends as a text frame (a JSON-RPC request)."""

    @property
    def text(self) -> str: ...


Message = TypeVar("Message", bound=TextMessage)


class FrameWriter(Generic[Message]):
    """The one owner of the frames written on one connection (any thread).

    Writers never wait for each other. Each puts its message in the queue
    and then writes everything queued if it can take the send lock at once;
    if not, the thread holding the lock writes it along with its own (it
    looks at the queue again after letting go), and the writer goes on to
    wait for its response. When 300 handlers send at once, a few system
    calls carry all the frames and no thread sleeps on the lock.

    Every write must finish within ``limit`` seconds: the kernel's send
    timeout bounds each ``send()`` (see :meth:`limit_sends`) and the send
    loop bounds the whole. When a write fails, the messages in it may or may
    not have left: they go to ``on_failed`` with the error, never retried.

    The reading thread also answers the server (event ACKs, pongs) here:
    :meth:`reply` frames an answer at once and :meth:`flush_replies` writes a
    burst's worth in one go.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        limit: float,
        on_failed: Callable[[list[Message], BaseException], None],
    ) -> None:
        self._sock = sock
        self._limit = limit
        self._on_failed = on_failed
        self._lock = threading.Lock()
        self._queue: deque[Message | bytes] = deque()
        # Keys for frames framed under the send lock, and for the reading thread's
        # answers, which it frames as it goes (two owners: no lock needed for either).
        self._keys = MaskingKeys()
        self._reply_keys = MaskingKeys()
        self._replies: list[bytes] = []

    def limit_sends(self) -> None:
        """Make a send that cannot go on for ``limit`` seconds fail instead of blocking.

        Called once the socket has no timeout (the I/O thread waits in recv()
        for as long as the server is quiet): the kernel's send timeout leaves
        reads alone, and a peer that stops reading makes send() fail with
        EAGAIN once the buffers are full and ``limit`` seconds have passed.
        """
        if sys.platform == "win32":
            value = struct.pack("I", max(1, int(self._limit * 1000)))  # a DWORD of milliseconds
        else:
            whole = int(self._limit)
            value = struct.pack("ll", whole, int((self._limit - whole) * 1_000_000))  # a struct timeval
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)

    def send(self, item: Message | bytes) -> None:
        """Write a message (or framed bytes) now or, if another thread is writing, through it."""
        self._queue.append(item)
        self._drain()

    def send_now(self, text: str) -> None:
        """Write one text frame at once, raising what the write raised (the login
        request: nothing else is written on the connection yet)."""
        with self._lock:
            self._write(text_frame(text, self._keys), self._limit)

    @contextmanager
    def held(self) -> Iterator[Callable[[Message], None]]:
        """Hold the send lock for a block that queues messages (with the function
        given); they are written, ahead of anything sent meanwhile, when it ends."""
        with self._lock:
            yield self._queue.append
            self._write_queued()
        self._drain()

    def answer_control(self, opcode: int, payload: bytes) -> None:
        """Answer a WebSocket ping or close frame (reading thread)."""
        self.send(control_frame(opcode, payload, self._reply_keys))

    def reply(self, text: str) -> None:
        """Queue an answer to a server request (reading thread); ``flush_replies`` writes it."""
        self._replies.append(text_frame(text, self._reply_keys))

    def flush_replies(self, *, wait: bool = False) -> None:
        """Write the queued answers in one go (reading thread). With ``wait``, return
        only once they are written (or failed), even if another thread is writing."""
        replies = self._replies
        if not replies:
            return
        self._queue.append(replies[0] if len(replies) == 1 else b"".join(replies))
        replies.clear()
        if wait:
            with self._lock:
                self._write_queued()
        self._drain()

    def close(self) -> None:
        """Say goodbye with a close frame if the link takes it within ``CLOSE_TIMEOUT``."""
        if not self._lock.acquire(timeout=CLOSE_TIMEOUT):
            return
        try:
            self._sock.settimeout(CLOSE_TIMEOUT)
            self._write(control_frame(OPCODE_CLOSE, CLOSE_NORMAL, self._keys), CLOSE_TIMEOUT)
        except WRITE_ERRORS:
            pass  # the link is already gone; dropping the socket is all that is left
        finally:
            self._lock.release()

    def _drain(self) -> None:
        queue, lock = self._queue, self._lock
        while queue:
            if not lock.acquire(blocking=False):
                return  # the holder writes what we queued
            try:
                self._write_queued()
            finally:
                lock.release()

    def _write_queued(self) -> None:
        """Write every queued frame in one go (send lock held: only we pop)."""
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(len(queue))]
            frames = [item if isinstance(item, bytes) else text_frame(item.text, self._keys) for item in batch]
            try:
                self._write(frames[0] if len(frames) == 1 else b"".join(frames), self._limit)
            except WRITE_ERRORS as error:
                log.debug("send of %d frame(s) failed: %s", len(frames), error)
                self._on_failed([item for item in batch if not isinstance(item, bytes)], error)

    def _write(self, data: bytes, limit: float) -> None:
        """Write whole frames within ``limit`` seconds (send lock held).

        Each send() is bounded by the socket's send timeout, and a peer that
        takes a little now and then must still take it all within the limit:
        a link that cannot take a write in time is lost.
        """
        view = memoryview(data)
        deadline = time.monotonic() + limit
        while True:
            sent = self._sock.send(view)
            if sent == len(view):
                return
            view = view[sent:]
            if time.monotonic() >= deadline:
                raise WebSocketTimeoutException(f"the server took no write for {limit:g} s")
