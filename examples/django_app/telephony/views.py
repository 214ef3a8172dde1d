"""JSON views that send an SMS, start a call and deliver a task through the process's RelayClient.

They run in Django's request threads and block only briefly: ``send_message``
until SignalWire accepted the message, ``dial_future`` not at all (the call
is handled on the client's handler pool once answered).
"""

from __future__ import annotations

import json
import logging
import uuid
from concurrent.futures import Future
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from relay_sync import Call, RelayError

from .relay import get_client

log = logging.getLogger(__name__)

CALL_STEP_TIMEOUT = 60.0  # seconds the message of a started call may take


def _json_body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except ValueError:
        return None


@csrf_exempt  # a JSON API for other services, not a form in a browser
@require_POST
def send_sms(request: HttpRequest) -> JsonResponse:
    data = _json_body(request)
    data = data if isinstance(data, dict) else {}
    try:
        message = get_client().send_message(
            to_number=data.get("to", ""),
            from_number=data.get("from", ""),
            body=data.get("body"),
            media=data.get("media"),
        )
    except ValueError as error:
        return JsonResponse({"error": str(error)}, status=400)
    except RelayError as error:
        return JsonResponse({"error": str(error)}, status=502)
    return JsonResponse({"message_id": message.message_id, "state": message.state}, status=202)


@csrf_exempt
@require_POST
def start_call(request: HttpRequest) -> JsonResponse:
    data = _json_body(request)
    data = data if isinstance(data, dict) else {}
    to_number, from_number, text = data.get("to"), data.get("from"), data.get("say")
    if not (isinstance(to_number, str) and isinstance(from_number, str) and isinstance(text, str)):
        return JsonResponse({"error": '"to", "from" and "say" are required strings'}, status=400)
    tag = str(uuid.uuid4())
    device = {"type": "phone", "params": {"to_number": to_number, "from_number": from_number}}
    try:
        dialing = get_client().dial_future([[device]], tag=tag, dial_timeout=60)
    except RelayError as error:
        return JsonResponse({"error": str(error)}, status=502)

    def on_dialed(dialed: Future[Call]) -> None:  # on the client's handler pool
        if dialed.exception() is not None:
            log.info("call %s not answered: %s", tag, dialed.exception())
            return
        call = dialed.result()
        try:
            call.play([{"type": "tts", "params": {"text": text}}]).wait(CALL_STEP_TIMEOUT)
        finally:
            call.hangup()

    dialing.add_done_callback(on_dialed)
    return JsonResponse({"tag": tag, "state": "dialing"}, status=202)


@csrf_exempt
@require_POST
def deliver_task(request: HttpRequest, context: str) -> JsonResponse:
    task = _json_body(request)
    if not isinstance(task, dict):
        return JsonResponse({"error": "the task must be a JSON object"}, status=400)
    try:
        get_client().deliver_task(context, task)
    except RelayError as error:  # RestError is a RelayError
        return JsonResponse({"error": str(error)}, status=502)
    return JsonResponse({"delivered": True, "context": context}, status=202)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Readiness for a load balancer or a Kubernetes ``readinessProbe``: 200 while
    the RELAY link is up and the server was heard from recently, else 503. The
    first probe creates and connects the client, so a new process is ready once it
    reached RELAY."""
    try:
        client = get_client()
    except RelayError as error:
        return JsonResponse({"healthy": False, "error": str(error)}, status=503)
    healthy = client.healthy()
    stats = client.stats()
    body = {key: stats[key] for key in ("state", "reconnects", "backlog", "last_rtt_ms")}
    return JsonResponse({"healthy": healthy, **body}, status=200 if healthy else 503)
