"""REST helpers against a mocked HTTP layer (responses): what the server sees
(URL, method, body, auth, User-Agent, timeouts, TLS settings) and what the
caller sees (a result, a RestError with the server's words, or a ValueError
before anything is sent). Credentials never show up in errors or logs."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from relay_sync import rest
from relay_sync._version import __version__
from relay_sync.errors import RelayError, RestError
from relay_sync.rest import (
    JWTPair,
    create_jwt,
    deliver_task,
    download_recording,
    new_session,
    refresh_jwt,
)

PROJECT = "proj-3b1f-secret-id"
TOKEN = "PT-very-secret-token"
HOST = "example.signalwire.com"
CREDENTIALS: dict[str, Any] = {"project": PROJECT, "token": TOKEN, "host": HOST}
TASKS_URL = f"https://{HOST}/api/relay/rest/tasks"
JWT_URL = f"https://{HOST}/api/relay/rest/jwt"
RECORDING_URL = "https://files.example.com/recordings/rec-1.wav"

ENVIRONMENT = [
    "SIGNALWIRE_PROJECT_ID",
    "SIGNALWIRE_API_TOKEN",
    "SIGNALWIRE_SPACE",
    "SIGNALWIRE_RELAY_CA_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def rest_mock() -> Iterator[responses.RequestsMock]:
    """The REST API's HTTP layer, mocked with responses (no socket is opened)."""
    with responses.RequestsMock() as mock:
        yield mock


def sent(rest_mock: responses.RequestsMock, index: int = 0) -> Any:
    return rest_mock.calls[index].request


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_no_secrets(text: str) -> None:
    assert PROJECT not in text
    assert TOKEN not in text


# --- tasks ---------------------------------------------------------------


def test_deliver_task_posts_context_and_message(rest_mock: responses.RequestsMock) -> None:
    rest_mock.post(TASKS_URL, status=204)

    deliver_task("office", {"job": 42, "who": "ada"}, **CREDENTIALS)

    request = sent(rest_mock)
    assert request.method == "POST"
    assert request.url == TASKS_URL
    assert json.loads(request.body) == {"context": "office", "message": {"job": 42, "who": "ada"}}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == basic_auth(PROJECT, TOKEN)
    assert request.headers["User-Agent"] == f"relay_sync/{__version__}"
    assert request.req_kwargs["timeout"] == (5.0, 30.0)
    assert request.req_kwargs["verify"] is True


def test_any_2xx_delivers(rest_mock: responses.RequestsMock) -> None:
    rest_mock.post(TASKS_URL, status=200, body="queued")

    deliver_task("office", {}, **CREDENTIALS)

    assert len(rest_mock.calls) == 1


def test_credentials_and_host_come_from_the_environment(
    rest_mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", "env-project")
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", "env-token")
    monkeypatch.setenv("SIGNALWIRE_SPACE", "env.signalwire.com")
    rest_mock.post("https://env.signalwire.com/api/relay/rest/tasks", status=204)

    deliver_task("office", {"n": 1})

    assert sent(rest_mock).headers["Authorization"] == basic_auth("env-project", "env-token")


def test_arguments_win_over_the_environment(rest_mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", "env-project")
    monkeypatch.setenv("SIGNALWIRE_SPACE", "env.signalwire.com")
    rest_mock.post(TASKS_URL, status=204)

    deliver_task("office", {}, **CREDENTIALS)

    assert sent(rest_mock).headers["Authorization"] == basic_auth(PROJECT, TOKEN)


@pytest.mark.parametrize(
    ("missing", "words"),
    [
        ("project", ["project is required", "SIGNALWIRE_PROJECT_ID"]),
        ("token", ["token is required", "SIGNALWIRE_API_TOKEN"]),
        ("host", ["host is required", "SIGNALWIRE_SPACE"]),
    ],
)
def test_a_missing_setting_names_its_parameter_and_variable(missing: str, words: list[str]) -> None:
    arguments = {key: value for key, value in CREDENTIALS.items() if key != missing}

    with pytest.raises(ValueError, match="required") as caught:
        deliver_task("office", {}, **arguments)

    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    "host",
    [
        "https://example.signalwire.com",
        "user@example.signalwire.com",
        "example.signalwire.com/api",
        "example.signalwire.com?x=1",
        "example.signalwire.com#x",
        "example\\signalwire.com",
        "example signalwire.com",
        "example.signalwire.com\r\nX-Injected: 1",
        "example.signalwire.com:99999",
        "example.signalwire.com:port",
    ],
)
def test_a_host_that_is_not_a_hostname_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="host"):
        deliver_task("office", {}, project=PROJECT, token=TOKEN, host=host)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080/api/relay/rest/tasks"),
        ("127.8.9.10:8080", "http://127.8.9.10:8080/api/relay/rest/tasks"),
        ("localhost:9000", "http://localhost:9000/api/relay/rest/tasks"),
        ("[::1]:7000", "http://[::1]:7000/api/relay/rest/tasks"),
        ("::1", "http://[::1]/api/relay/rest/tasks"),
    ],
)
def test_plain_http_reaches_a_loopback_emulator(rest_mock: responses.RequestsMock, host: str, url: str) -> None:
    rest_mock.post(url, status=204)

    deliver_task("office", {}, project=PROJECT, token=TOKEN, host=host, scheme="http")

    assert sent(rest_mock).url == url


@pytest.mark.parametrize("host", ["example.signalwire.com", "10.0.0.1:8080", "localhost.evil.com"])
def test_plain_http_is_refused_for_other_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="clear text"):
        deliver_task("office", {}, project=PROJECT, token=TOKEN, host=host, scheme="http")


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        deliver_task("office", {}, **CREDENTIALS, scheme="ftp")


def test_task_arguments_are_checked_before_sending(rest_mock: responses.RequestsMock) -> None:
    with pytest.raises(ValueError, match="context"):
        deliver_task("", {}, **CREDENTIALS)
    with pytest.raises(TypeError, match="message must be a dict"):
        deliver_task("office", ["not", "an", "object"], **CREDENTIALS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON"):
        deliver_task("office", {"when": object()}, **CREDENTIALS)
    with pytest.raises(ValueError, match="JSON"):
        deliver_task("office", {"ratio": float("nan")}, **CREDENTIALS)

    assert len(rest_mock.calls) == 0


# --- failures ------------------------------------------------------------


def test_401_says_what_to_check(rest_mock: responses.RequestsMock) -> None:
    rest_mock.post(TASKS_URL, status=401, json={"error": "Unauthorized"})

    with pytest.raises(RestError) as caught:
        deliver_task("office", {}, **CREDENTIALS)

    error = caught.value
    assert isinstance(error, RelayError)
    assert error.status == error.code == 401
    assert (error.method, error.url) == ("POST", TASKS_URL)
    assert "Unauthorized" in error.body
    assert "SIGNALWIRE_API_TOKEN" in error.message
    assert_no_secrets(str(error))


def test_404_carries_the_status_and_body(rest_mock: responses.RequestsMock) -> None:
    rest_mock.post(TASKS_URL, status=404, body="no such space")

    with pytest.raises(RestError) as caught:
        deliver_task("office", {}, **CREDENTIALS)

    assert caught.value.status == 404
    assert caught.value.body == "no such space"
    assert "HTTP 404" in str(caught.value)


def test_500_body_is_in_the_error_and_truncated(rest_mock: responses.RequestsMock) -> None:
    rest_mock.post(TASKS_URL, status=500, body="database on fire " + "x" * 5000)

    with pytest.raises(RestError) as caught:
        deliver_task("office", {}, **CREDENTIALS)

    error = caught.value
    assert error.status == 500
    assert error.body.startswith("database on fire")
    assert len(error.body) == RestError.BODY_LIMIT
    assert "database on fire" in str(error)
    assert len(str(error)) < 1000


def test_a_server_echoing_the_credentials_does_not_leak_them(rest_mock: responses.RequestsMock) -> None:
    rest_mock.post(TASKS_URL, status=403, body=f"token {TOKEN} of project {PROJECT} may not post tasks")

    with pytest.raises(RestError) as caught:
        deliver_task("office", {}, **CREDENTIALS)

    assert_no_secrets(str(caught.value))
    assert_no_secrets(caught.value.body)
    assert "may not post tasks" in caught.value.body


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (requests.ConnectionError("Name or service not known"), "could not connect"),
        (requests.ConnectTimeout("connect timed out"), "timed out"),
        (requests.ReadTimeout("read timed out"), "timed out"),
    ],
)
def test_network_failures_are_rest_errors_with_status_0(
    rest_mock: responses.RequestsMock, failure: Exception, words: str
) -> None:
    rest_mock.post(TASKS_URL, body=failure)

    with pytest.raises(RestError, match=words) as caught:
        deliver_task("office", {}, **CREDENTIALS)

    error = caught.value
    assert error.status == error.code == 0
    assert (error.method, error.url) == ("POST", TASKS_URL)
    assert isinstance(error.__cause__, requests.RequestException)
    assert_no_secrets(str(error))


def test_logs_carry_no_credentials(rest_mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    rest_mock.post(TASKS_URL, status=500, body="oops")
    caplog.set_level(logging.DEBUG, logger="relay_sync")

    with pytest.raises(RestError):
        deliver_task("office", {}, **CREDENTIALS)

    assert "POST" in caplog.text
    assert_no_secrets(caplog.text)


# --- JWT -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "body"),
    [
        ({}, {}),
        ({"resource": "alice"}, {"resource": "alice"}),
        ({"expires_in": 60}, {"expires_in": 60}),
        ({"resource": "alice", "expires_in": 15}, {"resource": "alice", "expires_in": 15}),
    ],
)
def test_create_jwt_sends_only_the_given_fields(
    rest_mock: responses.RequestsMock, arguments: dict[str, Any], body: dict[str, Any]
) -> None:
    rest_mock.post(JWT_URL, json={"jwt_token": "eyJ.jwt", "refresh_token": "eyJ.refresh"})

    pair = create_jwt(**CREDENTIALS, **arguments)

    assert pair == JWTPair(jwt_token="eyJ.jwt", refresh_token="eyJ.refresh")
    request = sent(rest_mock)
    assert request.method == "POST"
    assert json.loads(request.body) == body
    assert request.headers["Authorization"] == basic_auth(PROJECT, TOKEN)
    assert request.headers["User-Agent"] == f"relay_sync/{__version__}"


def test_refresh_jwt_puts_the_refresh_token(rest_mock: responses.RequestsMock) -> None:
    rest_mock.put(JWT_URL, json={"jwt_token": "eyJ.new", "refresh_token": "eyJ.new-refresh"})

    pair = refresh_jwt("eyJ.old-refresh", **CREDENTIALS)

    assert (pair.jwt_token, pair.refresh_token) == ("eyJ.new", "eyJ.new-refresh")
    request = sent(rest_mock)
    assert request.method == "PUT"
    assert json.loads(request.body) == {"refresh_token": "eyJ.old-refresh"}
    assert request.headers["Authorization"] == basic_auth(PROJECT, TOKEN)


def test_a_jwt_pair_masks_its_tokens() -> None:
    pair = JWTPair(jwt_token="eyJ.jwt-secret", refresh_token="eyJ.refresh-secret")

    assert repr(pair) == "JWTPair(jwt_token='***', refresh_token='***')"
    assert "secret" not in str(pair)
    with pytest.raises(AttributeError):
        pair.jwt_token = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "reply",
    [
        {"body": "<html>gateway says hi eyJ.half-token</html>", "content_type": "text/html"},
        {"body": '{"jwt_token": "eyJ.half-token"', "content_type": "application/json"},
        {"json": ["eyJ.half-token"]},
        {"json": {"jwt_token": "eyJ.half-token"}},
        {"json": {"jwt_token": "eyJ.half-token", "refresh_token": 5}},
        {"body": ""},
    ],
)
def test_a_2xx_without_a_token_pair_is_a_rest_error(rest_mock: responses.RequestsMock, reply: dict[str, Any]) -> None:
    rest_mock.post(JWT_URL, status=200, **reply)

    with pytest.raises(RestError, match="jwt_token and refresh_token|JSON object") as caught:
        create_jwt(**CREDENTIALS)

    assert caught.value.status == 200
    assert "half-token" not in str(caught.value)
    assert "half-token" not in caught.value.body


def test_a_refused_refresh_does_not_quote_the_refresh_token(rest_mock: responses.RequestsMock) -> None:
    rest_mock.put(JWT_URL, status=422, body="refresh token eyJ.old-refresh has expired")

    with pytest.raises(RestError) as caught:
        refresh_jwt("eyJ.old-refresh", **CREDENTIALS)

    assert caught.value.status == 422
    assert "has expired" in str(caught.value)
    assert "eyJ.old-refresh" not in str(caught.value)


def test_jwt_arguments_are_checked_before_sending(rest_mock: responses.RequestsMock) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        create_jwt(**CREDENTIALS, expires_in=0)
    with pytest.raises(ValueError, match="expires_in"):
        create_jwt(**CREDENTIALS, expires_in=True)
    with pytest.raises(ValueError, match="resource"):
        create_jwt(**CREDENTIALS, resource="")
    with pytest.raises(ValueError, match="refresh_token"):
        refresh_jwt("", **CREDENTIALS)

    assert len(rest_mock.calls) == 0


# --- recordings ----------------------------------------------------------


class BreaksAfterFirstChunk(io.RawIOBase):
    """A response body whose connection resets after the first bytes."""

    def __init__(self) -> None:
        self.sent_first = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.sent_first:
            raise ConnectionResetError("connection reset by peer")
        self.sent_first = True
        buffer[:4] = b"RIFF"
        return 4


def test_download_recording_returns_the_bytes(rest_mock: responses.RequestsMock) -> None:
    audio = b"RIFF" + bytes(range(256)) * 10
    rest_mock.get(RECORDING_URL, body=audio)

    data = download_recording(RECORDING_URL, project=PROJECT, token=TOKEN, chunk_size=100)

    assert data == audio
    request = sent(rest_mock)
    assert request.headers["Authorization"] == basic_auth(PROJECT, TOKEN)
    assert request.headers["User-Agent"] == f"relay_sync/{__version__}"
    assert request.req_kwargs["stream"] is True


def test_download_recording_to_a_file(rest_mock: responses.RequestsMock, tmp_path: Path) -> None:
    audio = b"RIFF" + b"\x01" * 200_000
    rest_mock.get(RECORDING_URL, body=audio)
    target = tmp_path / "call.wav"

    result = download_recording(RECORDING_URL, project=PROJECT, token=TOKEN, path=str(target))

    assert result == target and isinstance(result, Path)
    assert target.read_bytes() == audio
    assert sorted(tmp_path.iterdir()) == [target]


def test_a_failed_download_leaves_no_file(rest_mock: responses.RequestsMock, tmp_path: Path) -> None:
    rest_mock.get(RECORDING_URL, status=404, body="recording not found")
    target = tmp_path / "call.wav"

    with pytest.raises(RestError) as caught:
        download_recording(RECORDING_URL, project=PROJECT, token=TOKEN, path=target)

    assert caught.value.status == 404
    assert (caught.value.method, caught.value.url) == ("GET", RECORDING_URL)
    assert "recording not found" in caught.value.body
    assert list(tmp_path.iterdir()) == []


def test_a_download_cut_midway_leaves_the_old_file_alone(rest_mock: responses.RequestsMock, tmp_path: Path) -> None:
    rest_mock.get(RECORDING_URL, body=io.BufferedReader(BreaksAfterFirstChunk()))
    target = tmp_path / "call.wav"
    target.write_bytes(b"yesterday's recording")

    with pytest.raises(RestError, match="GET") as caught:
        download_recording(RECORDING_URL, project=PROJECT, token=TOKEN, path=target, chunk_size=2)

    assert caught.value.status == 0
    assert target.read_bytes() == b"yesterday's recording"
    assert list(tmp_path.iterdir()) == [target]


def test_a_download_cut_midway_into_memory_is_a_rest_error(rest_mock: responses.RequestsMock) -> None:
    rest_mock.get(RECORDING_URL, body=io.BufferedReader(BreaksAfterFirstChunk()))

    with pytest.raises(RestError) as caught:
        download_recording(RECORDING_URL, project=PROJECT, token=TOKEN, chunk_size=2)

    assert caught.value.status == 0


def test_a_download_that_cannot_connect_leaves_no_file(rest_mock: responses.RequestsMock, tmp_path: Path) -> None:
    rest_mock.get(RECORDING_URL, body=requests.ConnectionError("refused"))

    with pytest.raises(RestError, match="could not connect"):
        download_recording(RECORDING_URL, project=PROJECT, token=TOKEN, path=tmp_path / "call.wav")

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    ["ftp://files.example.com/rec.wav", "file:///etc/passwd", "recordings/rec.wav", "https://", ""],
)
def test_only_http_urls_can_be_downloaded(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        download_recording(url, project=PROJECT, token=TOKEN)


def test_plain_http_downloads_only_from_loopback(rest_mock: responses.RequestsMock) -> None:
    rest_mock.get("http://127.0.0.1:8080/rec.wav", body=b"RIFF")

    assert download_recording("http://127.0.0.1:8080/rec.wav", project=PROJECT, token=TOKEN) == b"RIFF"
    with pytest.raises(ValueError, match="clear text"):
        download_recording("http://files.example.com/rec.wav", project=PROJECT, token=TOKEN)


def test_download_errors_never_show_url_credentials(rest_mock: responses.RequestsMock) -> None:
    url = "https://user:url-password@files.example.com/rec.wav"
    rest_mock.get(url, status=500, body="url-password is wrong")

    with pytest.raises(RestError) as caught:
        download_recording(url, project=PROJECT, token=TOKEN)

    assert caught.value.url == "https://files.example.com/rec.wav"
    assert "url-password" not in str(caught.value)
    assert "url-password" not in caught.value.body


def test_network_errors_never_show_url_credentials(rest_mock: responses.RequestsMock) -> None:
    url = "https://user:url-password@files.example.com/rec.wav"
    rest_mock.get(url, body=requests.ConnectionError(f"could not reach {url}"))

    with pytest.raises(RestError) as caught:
        download_recording(url, project=PROJECT, token=TOKEN)

    assert caught.value.status == 0
    assert "url-password" not in str(caught.value)


def test_download_needs_credentials() -> None:
    with pytest.raises(ValueError, match="SIGNALWIRE_PROJECT_ID"):
        download_recording(RECORDING_URL, token=TOKEN)


def test_download_checks_the_chunk_size() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        download_recording(RECORDING_URL, project=PROJECT, token=TOKEN, chunk_size=0)


# --- the session ---------------------------------------------------------


def test_a_ca_file_that_is_not_a_file_is_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a ca_file adds to the trust store is tested over real TLS in
    # tests/reliability/test_handshake_faults.py.
    with pytest.raises(ValueError, match="ca_file"):
        new_session(project=PROJECT, token=TOKEN, ca_file="/no/such/ca.pem")
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", "/no/such/env-ca.pem")
    with pytest.raises(ValueError, match="SIGNALWIRE_RELAY_CA_FILE"):
        new_session(project=PROJECT, token=TOKEN)


def test_a_custom_timeout_is_used(rest_mock: responses.RequestsMock) -> None:
    rest_mock.post(TASKS_URL, status=204)

    deliver_task("office", {}, **CREDENTIALS, timeout=(1.5, 4.0))

    assert sent(rest_mock).req_kwargs["timeout"] == (1.5, 4.0)


def test_a_session_applies_the_default_timeout_to_any_request(rest_mock: responses.RequestsMock) -> None:
    rest_mock.get(f"https://{HOST}/api/other", json={})

    with new_session(project=PROJECT, token=TOKEN) as session:
        session.get(f"https://{HOST}/api/other")

    assert sent(rest_mock).req_kwargs["timeout"] == rest.DEFAULT_TIMEOUT


def test_proxy_settings_from_the_environment_apply(
    rest_mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    rest_mock.post(TASKS_URL, status=204)

    deliver_task("office", {}, **CREDENTIALS)

    assert sent(rest_mock).req_kwargs["proxies"].get("https") == "http://proxy.internal:3128"


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """A real HTTP server on loopback that sends a recording one byte at a
    time, each well within the read timeout, until the client goes away."""
    listener = socket.create_server(("127.0.0.1", 0))
    gone = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            try:
                for _ in range(1000):
                    connection.sendall(b"x")
                    if gone.wait(0.2):  # the pace of the trickle, not an ordering
                        return
            except OSError:
                return  # the client shut the connection: what the test expects

    thread = threading.Thread(target=serve, name="test-trickling-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/recordings/slow.wav"
    gone.set()
    thread.join(timeout=10)
    listener.close()


def test_a_trickling_download_fails_at_the_read_timeout_overall(trickling_server: str, tmp_path: Path) -> None:
    with pytest.raises(RestError) as caught:
        download_recording(trickling_server, path=tmp_path / "slow.wav", project=PROJECT, token=TOKEN, timeout=(5, 1.5))

    assert caught.value.status == 0
    assert "did not finish within 1.5 s" in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # no partial file
