"""Recordings made on the simulated network: a bounded store of recording
ids and lengths, and the WAV audio served for them (a quiet tone, generated
on download, so memory stays small). Thread-safe.
"""

from __future__ import annotations

import math
import struct
import threading
import uuid
from collections import OrderedDict

SAMPLE_RATE = 8000
MAX_SECONDS = 600.0  # longest audio served for one recording
DEFAULT_MAX_RECORDINGS = 1000


def wav_bytes(seconds: float) -> bytes:
    """A mono 8 kHz 8-bit PCM WAV of ``seconds`` of a soft 440 Hz tone."""
    frames = int(SAMPLE_RATE * max(0.0, min(seconds, MAX_SECONDS)))
    samples = bytes(128 + int(16 * math.sin(2 * math.pi * 440 * n / SAMPLE_RATE)) for n in range(frames))
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE, 1, 8)
    header += b"data" + struct.pack("<I", len(samples))
    return header + samples


def wav_size(seconds: float) -> int:
    return 44 + int(SAMPLE_RATE * max(0.0, min(seconds, MAX_SECONDS)))


class RecordingStore:
    """Recording id -> length in seconds; the oldest are forgotten past ``max_recordings``."""

    def __init__(self, max_recordings: int = DEFAULT_MAX_RECORDINGS) -> None:
        self.max_recordings = max_recordings
        self._lock = threading.Lock()
        self._seconds: OrderedDict[str, float] = OrderedDict()

    def add(self, seconds: float) -> str:
        recording_id = uuid.uuid4().hex
        with self._lock:
            self._seconds[recording_id] = seconds
            while len(self._seconds) > self.max_recordings:
                self._seconds.popitem(last=False)
        return recording_id

    def __len__(self) -> int:
        with self._lock:
            return len(self._seconds)

    def audio(self, recording_id: str) -> bytes | None:
        with self._lock:
            seconds = self._seconds.get(recording_id)
        return None if seconds is None else wav_bytes(seconds)
