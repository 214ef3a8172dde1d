"""The simulated phones: how a number behaves when it is dialed or when it
calls in, and what it "presses" and "says" once a call is up.

A ``Phone`` is a declaration (``emulator.phone(...)``); a ``PhoneLine`` is
that phone on one call, consuming its inputs in order. Numbers nobody
declared answer at once and press nothing. No threads here.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

# What a phone does with an outbound SMS sent to it.
SMS_OUTCOMES = ("delivered", "undelivered", "failed")


def _answers(value: str | Sequence[str] | None, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    answers = tuple(value)
    if not all(isinstance(item, str) for item in answers):
        raise TypeError(f"{name} must be a string or a list of strings, not {value!r}")
    return answers


@dataclass(frozen=True)
class Phone:
    """How one number behaves on the simulated network.

    :param answers: picks up when dialed (False: rings until the dial gives up, ``noAnswer``).
    :param after: simulated seconds of ringing before it picks up.
    :param busy: rejects every call with ``busy``.
    :param digits: what it presses, one string per collect (``"1"``, then ``"1234#"``...).
    :param speech: what it says, one string per speech collect.
    :param context: the context its inbound calls and messages go to when
        ``place_call``/``send_sms`` name none.
    :param machine: an answering machine (``calling.detect`` reports ``MACHINE``).
    :param fax: a fax machine (a fax detector reports ``CED``).
    :param message_seconds: how long it speaks when recorded (0: silence, ``no_input``).
    :param hangup_after: simulated seconds after the call is answered when it hangs up (None: never).
    :param sms: what happens to SMS sent to it: ``delivered``, ``undelivered`` or ``failed``.
    """

    number: str
    answers: bool = True
    after: float = 0.0
    busy: bool = False
    digits: tuple[str, ...] = ()
    speech: tuple[str, ...] = ()
    context: str | None = None
    machine: bool = False
    fax: bool = False
    message_seconds: float = 3.0
    hangup_after: float | None = None
    sms: str = "delivered"

    @classmethod
    def declare(
        cls,
        number: str,
        *,
        digits: str | Sequence[str] | None = None,
        speech: str | Sequence[str] | None = None,
        **behaviour: object,
    ) -> Phone:
        if not isinstance(number, str) or not number:
            raise ValueError(f"number must be a non-empty string such as '+15551234567', not {number!r}")
        phone = cls(number, digits=_answers(digits, "digits"), speech=_answers(speech, "speech"), **behaviour)  # type: ignore[arg-type]
        if phone.sms not in SMS_OUTCOMES:
            raise ValueError(f"sms must be one of {', '.join(SMS_OUTCOMES)}, not {phone.sms!r}")
        if phone.after < 0 or phone.message_seconds < 0:
            raise ValueError("after and message_seconds must not be negative")
        return phone


@dataclass
class PhoneLine:
    """A phone on one call: the inputs it has not used yet."""

    phone: Phone
    digits: deque[str] = field(default_factory=deque)
    speech: deque[str] = field(default_factory=deque)

    @classmethod
    def of(cls, phone: Phone) -> PhoneLine:
        return cls(phone, deque(phone.digits), deque(phone.speech))

    @property
    def number(self) -> str:
        return self.phone.number

    def next_digits(self) -> str | None:
        return self.digits.popleft() if self.digits else None

    def next_speech(self) -> str | None:
        return self.speech.popleft() if self.speech else None


class PhoneBook:
    """The declared phones, by number (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phones: dict[str, Phone] = {}

    def add(self, phone: Phone) -> Phone:
        with self._lock:
            self._phones[phone.number] = phone
        return phone

    def get(self, number: str) -> Phone:
        """The declared phone, or a default one that answers at once."""
        with self._lock:
            return self._phones.get(number) or Phone(number)

    def line(self, number: str) -> PhoneLine:
        return PhoneLine.of(self.get(number))
