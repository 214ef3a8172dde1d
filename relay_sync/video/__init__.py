"""SignalWire Video rooms over the RELAY session: ``client.video``.

``service`` watches and looks up room sessions and routes their events,
``room`` is the ``RoomSession`` with its commands, ``members`` the
``RoomMember``, ``handles`` the recording/playback/stream handles,
``events`` the layout and audience-count events, ``subscription`` what
``listen()`` returns, ``renewals`` the subscriptions resent after a
reconnect, and ``wire`` the protocol facts as data.
"""

from .events import RoomAudienceCount, RoomLayout, RoomLayoutLayer
from .handles import RoomAction, RoomPlayback, RoomRecording, RoomStream
from .members import RoomMember
from .room import RoomSession
from .service import VideoService
from .subscription import VideoSubscription

__all__ = [
    "RoomAction",
    "RoomAudienceCount",
    "RoomLayout",
    "RoomLayoutLayer",
    "RoomMember",
    "RoomPlayback",
    "RoomRecording",
    "RoomSession",
    "RoomStream",
    "VideoService",
    "VideoSubscription",
]
