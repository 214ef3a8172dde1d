"""Inbound and outbound calls: the CallingService behind RelayClient.on_call / dial."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from .rpc import JSONDict

if TYPE_CHECKING:
    from .client import RelayClient


class CallingService:
    """Placeholder wiring; the Calls issue fills it in."""

    def __init__(self, client: "RelayClient") -> None:
        self._client = client

    def on_call(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        raise NotImplementedError("calls are not implemented yet")

    def dial(self, devices: List[List[JSONDict]], **options: Any) -> Any:
        raise NotImplementedError("calls are not implemented yet")

    def dial_future(self, devices: List[List[JSONDict]], **options: Any) -> "Future[Any]":
        raise NotImplementedError("calls are not implemented yet")

    def on_event(self, envelope: JSONDict) -> None:
        return None

    def close(self, error: Optional[BaseException]) -> None:
        return None
