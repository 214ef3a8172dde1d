"""The emulator's REST endpoints, on the same host and port as its WebSocket:
``POST /api/relay/rest/tasks``, ``POST``/``PUT /api/relay/rest/jwt`` and
``GET /recordings/<id>.wav``, all behind HTTP Basic ``project:token``.

Runs on the HTTP connection's thread (see ``http.py``).
"""

from __future__ import annotations

import hmac
import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from .http import HttpRequest, HttpResponse
from .recordings import RecordingStore
from .sms import MessagingEngine
from .tokens import TokenIssuer

log = logging.getLogger(__name__)

TASKS_PATH = "/api/relay/rest/tasks"
JWT_PATH = "/api/relay/rest/jwt"
RECORDINGS_PREFIX = "/recordings/"


class RestApi:
    def __init__(
        self,
        *,
        project: str,
        token: str,
        tokens: TokenIssuer,
        messaging: MessagingEngine,
        recordings: RecordingStore,
    ) -> None:
        self._project = project
        self._token = token
        self._tokens = tokens
        self._messaging = messaging
        self._recordings = recordings

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = urlsplit(request.path).path
        known = path in (TASKS_PATH, JWT_PATH) or path.startswith(RECORDINGS_PREFIX)
        if not known:
            return HttpResponse.error(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}")
        if not self._authorized(request):
            return HttpResponse.error(
                HTTPStatus.UNAUTHORIZED,
                "check the project id and API token",
                **{"WWW-Authenticate": 'Basic realm="relay"'},
            )
        if path == TASKS_PATH:
            return self._task(request) if request.method == "POST" else _not_allowed("POST")
        if path == JWT_PATH:
            if request.method == "POST":
                return self._create_jwt(request)
            if request.method == "PUT":
                return self._refresh_jwt(request)
            return _not_allowed("POST, PUT")
        if request.method != "GET":
            return _not_allowed("GET")
        return self._recording(path[len(RECORDINGS_PREFIX) :])

    def _authorized(self, request: HttpRequest) -> bool:
        credentials = request.basic_auth()
        if credentials is None:
            return False
        project_ok = hmac.compare_digest(credentials[0].encode(), self._project.encode())
        token_ok = hmac.compare_digest(credentials[1].encode(), self._token.encode())
        return project_ok and token_ok

    def _task(self, request: HttpRequest) -> HttpResponse:
        body = _json_object(request)
        if body is None:
            return HttpResponse.error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        context, message = body.get("context"), body.get("message")
        if not isinstance(context, str) or not context:
            return HttpResponse.error(HTTPStatus.UNPROCESSABLE_ENTITY, "context must be a non-empty string")
        if not isinstance(message, dict):
            return HttpResponse.error(HTTPStatus.UNPROCESSABLE_ENTITY, "message must be a JSON object")
        self._messaging.task(context, message)
        return HttpResponse(HTTPStatus.NO_CONTENT)

    def _create_jwt(self, request: HttpRequest) -> HttpResponse:
        body = _json_object(request)
        if body is None:
            return HttpResponse.error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        resource, minutes = body.get("resource"), body.get("expires_in")
        if resource is not None and (not isinstance(resource, str) or not resource):
            return HttpResponse.error(HTTPStatus.UNPROCESSABLE_ENTITY, "resource must be a non-empty string")
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1):
            return HttpResponse.error(
                HTTPStatus.UNPROCESSABLE_ENTITY, "expires_in must be a positive number of minutes"
            )
        jwt_token, refresh_token = self._tokens.mint(resource, minutes)
        return HttpResponse.json(HTTPStatus.OK, {"jwt_token": jwt_token, "refresh_token": refresh_token})

    def _refresh_jwt(self, request: HttpRequest) -> HttpResponse:
        body = _json_object(request)
        refresh_token = body.get("refresh_token") if body is not None else None
        if not isinstance(refresh_token, str) or not refresh_token:
            return HttpResponse.error(HTTPStatus.UNPROCESSABLE_ENTITY, "refresh_token is required")
        pair = self._tokens.refresh(refresh_token)
        if pair is None:
            return HttpResponse.error(HTTPStatus.UNAUTHORIZED, "the refresh token is unknown or was already used")
        return HttpResponse.json(HTTPStatus.OK, {"jwt_token": pair[0], "refresh_token": pair[1]})

    def _recording(self, name: str) -> HttpResponse:
        recording_id = name.removesuffix(".wav")
        audio = self._recordings.audio(recording_id)
        if audio is None:
            return HttpResponse.error(HTTPStatus.NOT_FOUND, "no such recording")
        return HttpResponse(HTTPStatus.OK, audio, content_type="audio/wav")


def _json_object(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = request.json()
    except ValueError:  # also UnicodeDecodeError
        return None
    return body if isinstance(body, dict) else None


def _not_allowed(allowed: str) -> HttpResponse:
    return HttpResponse.error(HTTPStatus.METHOD_NOT_ALLOWED, f"use {allowed}", Allow=allowed)
