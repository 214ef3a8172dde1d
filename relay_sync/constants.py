"""RELAY protocol constants: call states, event types, message states, end
reasons and dial states, as the server spells them on the wire.

Plain module-level strings, so ``event.state == CALL_STATE_ENDED`` reads well
and a typo is a NameError instead of a silent mismatch. No code runs here.
"""

from __future__ import annotations

from typing import Final

# Call states, in the order a call passes through them.
CALL_STATE_CREATED: Final[str] = "created"
CALL_STATE_RINGING: Final[str] = "ringing"
CALL_STATE_ANSWERED: Final[str] = "answered"
CALL_STATE_ENDING: Final[str] = "ending"
CALL_STATE_ENDED: Final[str] = "ended"
CALL_STATES: Final[tuple[str, ...]] = (
    CALL_STATE_CREATED,
    CALL_STATE_RINGING,
    CALL_STATE_ANSWERED,
    CALL_STATE_ENDING,
    CALL_STATE_ENDED,
)

# Event types: the ``event_type`` of a ``signalwire.event``.
EVENT_CALL_STATE: Final[str] = "calling.call.state"
EVENT_CALL_RECEIVE: Final[str] = "calling.call.receive"
EVENT_CALL_PLAY: Final[str] = "calling.call.play"
EVENT_CALL_RECORD: Final[str] = "calling.call.record"
EVENT_CALL_COLLECT: Final[str] = "calling.call.collect"
EVENT_CALL_CONNECT: Final[str] = "calling.call.connect"
EVENT_CALL_DETECT: Final[str] = "calling.call.detect"
EVENT_CALL_FAX: Final[str] = "calling.call.fax"
EVENT_CALL_TAP: Final[str] = "calling.call.tap"
EVENT_CALL_STREAM: Final[str] = "calling.call.stream"
EVENT_CALL_SEND_DIGITS: Final[str] = "calling.call.send_digits"
EVENT_CALL_DIAL: Final[str] = "calling.call.dial"
EVENT_CALL_REFER: Final[str] = "calling.call.refer"
EVENT_CALL_DENOISE: Final[str] = "calling.call.denoise"
EVENT_CALL_PAY: Final[str] = "calling.call.pay"
EVENT_CALL_QUEUE: Final[str] = "calling.call.queue"
EVENT_CALL_ECHO: Final[str] = "calling.call.echo"
EVENT_CALL_TRANSCRIBE: Final[str] = "calling.call.transcribe"
EVENT_CALL_HOLD: Final[str] = "calling.call.hold"
EVENT_CONFERENCE: Final[str] = "calling.conference"
EVENT_CALLING_ERROR: Final[str] = "calling.error"
EVENT_MESSAGING_RECEIVE: Final[str] = "messaging.receive"
EVENT_MESSAGING_STATE: Final[str] = "messaging.state"
EVENT_TASK: Final[str] = "queuing.relay.tasks"
EVENT_AUTHORIZATION_STATE: Final[str] = "signalwire.authorization.state"

# Message states. ``received`` is the state of an inbound message.
MESSAGE_STATE_QUEUED: Final[str] = "queued"
MESSAGE_STATE_INITIATED: Final[str] = "initiated"
MESSAGE_STATE_SENT: Final[str] = "sent"
MESSAGE_STATE_DELIVERED: Final[str] = "delivered"
MESSAGE_STATE_UNDELIVERED: Final[str] = "undelivered"
MESSAGE_STATE_FAILED: Final[str] = "failed"
MESSAGE_STATE_RECEIVED: Final[str] = "received"
# After one of these no further state event arrives for the message.
MESSAGE_TERMINAL_STATES: Final[tuple[str, ...]] = (
    MESSAGE_STATE_DELIVERED,
    MESSAGE_STATE_UNDELIVERED,
    MESSAGE_STATE_FAILED,
)

# Why a call ended: ``end_reason`` of the ``ended`` state event, and the
# ``reason`` a client may give to ``calling.end``.
END_REASON_HANGUP: Final[str] = "hangup"
END_REASON_CANCEL: Final[str] = "cancel"
END_REASON_BUSY: Final[str] = "busy"
END_REASON_NO_ANSWER: Final[str] = "noAnswer"
END_REASON_DECLINE: Final[str] = "decline"
END_REASON_ERROR: Final[str] = "error"
END_REASON_ABANDONED: Final[str] = "abandoned"
END_REASON_MAX_DURATION: Final[str] = "max_duration"
END_REASON_NOT_FOUND: Final[str] = "not_found"

# ``dial_state`` of a ``calling.call.dial`` event.
DIAL_STATE_DIALING: Final[str] = "dialing"
DIAL_STATE_ANSWERED: Final[str] = "answered"
DIAL_STATE_FAILED: Final[str] = "failed"
