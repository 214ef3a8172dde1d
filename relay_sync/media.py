"""Builders for the media objects ``play``, ``play_and_collect`` and a
connect's ``ringback`` take, so nobody hand-writes
``{"type": "tts", "params": {...}}``. Plain functions returning plain dicts
(the wire shape); they run in the caller's thread.

Example::

    from relay_sync import media

    call.play([media.tts("Please hold"), media.silence(1), media.audio("https://example.com/hold.mp3")])
"""

from __future__ import annotations

from .rpc import JSONDict


def _item(kind: str, params: JSONDict) -> JSONDict:
    return {"type": kind, "params": {name: value for name, value in params.items() if value is not None}}


def tts(text: str, *, language: str | None = None, gender: str | None = None, voice: str | None = None) -> JSONDict:
    """Text to speech: ``{"type": "tts", "params": {"text": ..., ...}}``."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"tts needs the text to speak, not {text!r}")
    return _item("tts", {"text": text, "language": language, "gender": gender, "voice": voice})


def audio(url: str) -> JSONDict:
    """An audio file fetched from ``url`` (MP3 or WAV)."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"audio needs the URL of the file to play, not {url!r}")
    return _item("audio", {"url": url})


def silence(duration: float) -> JSONDict:
    """``duration`` seconds of silence."""
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0:
        raise ValueError(f"silence needs a positive duration in seconds, not {duration!r}")
    return _item("silence", {"duration": duration})


def ringtone(name: str, *, duration: float | None = None) -> JSONDict:
    """The ringtone of a country (``"us"``, ``"gb"``, ...), for ``duration`` seconds or once."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"ringtone needs a country's ringtone name such as 'us', not {name!r}")
    return _item("ringtone", {"name": name, "duration": duration})
