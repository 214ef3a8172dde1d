"""SMS/MMS and tasks: the MessagingService behind send_message / on_message / on_task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .rpc import JSONDict

if TYPE_CHECKING:
    from .client import RelayClient


class MessagingService:
    """Placeholder wiring; the Messaging issue fills it in."""

    def __init__(self, client: "RelayClient") -> None:
        self._client = client

    def on_message(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        raise NotImplementedError("messaging is not implemented yet")

    def on_task(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        raise NotImplementedError("tasks are not implemented yet")

    def send_message(self, **options: Any) -> Any:
        raise NotImplementedError("messaging is not implemented yet")

    def on_event(self, envelope: JSONDict) -> None:
        return None

    def close(self, error: BaseException) -> None:
        return None
