"""The Sphinx documentation builds with warnings as errors, and its API
reference documents every public name: everything in ``relay_sync.__all__``
and the members API.md promises on the client, calls, actions and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import relay_sync

pytest.importorskip("sphinx")

DOCS = Path(__file__).resolve().parent.parent / "docs"

# Members API.md names, besides the top-level names.
API_MEMBERS = {
    "RelayClient": [
        "connect",
        "disconnect",
        "close",
        "run",
        "stop",
        "on_call",
        "on_message",
        "on_task",
        "dial",
        "dial_future",
        "send_message",
        "deliver_task",
        "execute",
        "receive",
        "unreceive",
        "relay_protocol",
        "project",
        "host",
        "contexts",
        "connected",
        "state",
        "healthy",
        "stats",
        "on_connected",
        "on_disconnected",
        "on_reconnecting",
        "on_auth_error",
    ],
    "Call": [
        "call_id",
        "node_id",
        "project_id",
        "context",
        "tag",
        "direction",
        "device",
        "state",
        "segment_id",
        "answer",
        "hangup",
        "pass_",
        "play",
        "record",
        "play_and_collect",
        "collect",
        "detect",
        "send_fax",
        "receive_fax",
        "tap",
        "stream",
        "pay",
        "transcribe",
        "ai",
        "connect",
        "disconnect",
        "send_digits",
        "refer",
        "transfer",
        "join_conference",
        "leave_conference",
        "hold",
        "unhold",
        "denoise",
        "denoise_stop",
        "live_transcribe",
        "live_translate",
        "echo",
        "amazon_bedrock",
        "ai_message",
        "ai_hold",
        "ai_unhold",
        "join_room",
        "leave_room",
        "queue_enter",
        "queue_leave",
        "bind_digit",
        "clear_digit_bindings",
        "user_event",
        "on",
        "wait_for",
        "wait_for_ended",
        "ended",
        "peer",
        "bridge",
        "play_tts",
        "play_audio",
        "play_silence",
        "play_ringtone",
        "prompt_tts",
        "prompt_audio",
        "detect_answering_machine",
        "detect_fax",
        "detect_digit",
        "wait_for_ringing",
        "wait_for_answered",
        "wait_for_ending",
    ],
    "Action": ["control_id", "wait", "is_done", "completed", "result", "future", "stop"],
    "PlayAction": ["pause", "resume", "volume"],
    "RecordAction": ["pause", "resume"],
    "CollectAction": ["volume", "start_input_timers", "pause", "resume"],
    "StandaloneCollectAction": ["start_input_timers"],
    "Message": [
        "message_id",
        "context",
        "direction",
        "from_number",
        "to_number",
        "body",
        "media",
        "segments",
        "state",
        "reason",
        "tags",
        "is_done",
        "result",
        "wait",
        "on",
        "future",
    ],
    "RelayError": ["code", "message"],
    "RoomSession": [
        "get_members",
        "audio_mute",
        "audio_unmute",
        "video_mute",
        "video_unmute",
        "deaf",
        "undeaf",
        "remove_member",
        "set_layout",
        "lock",
        "unlock",
        "set_meta",
        "start_recording",
        "play",
        "start_stream",
        "listen",
    ],
    "RoomRecording": ["pause", "resume", "stop", "wait", "future"],
    "RoomPlayback": ["pause", "resume", "stop", "set_volume", "seek", "wait", "future"],
    "RoomStream": ["stop", "wait", "future"],
}
REST_HELPERS = ["deliver_task", "create_jwt", "refresh_jwt", "download_recording"]


def documented_names(inventory: Path) -> set[str]:
    """Every object name in a Sphinx objects.inv."""
    from sphinx.util.inventory import InventoryFile

    data = inventory.read_bytes()
    if hasattr(InventoryFile, "loads"):  # Sphinx >= 8.2
        objects = InventoryFile.loads(data, uri="").data
    else:
        import io

        objects = InventoryFile.load(io.BytesIO(data), "", lambda base, target: target)
    return {name for by_name in objects.values() for name in by_name}


# A full Sphinx build takes about 25 s of CPU; on a loaded 2-core machine that is
# over a minute of wall time, so this test gets its own generous bound.
@pytest.mark.timeout(600)
def test_the_docs_build_without_warnings_and_cover_the_api(tmp_path: Path) -> None:
    html = tmp_path / "html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(html),
        ],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=540,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    names = documented_names(html / "objects.inv")
    missing = [name for name in relay_sync.__all__ if f"relay_sync.{name}" not in names]
    missing += [
        f"{owner}.{member}"
        for owner, members in API_MEMBERS.items()
        for member in members
        if f"relay_sync.{owner}.{member}" not in names
        and not any(f"relay_sync.{base}.{member}" in names for base in ("Action",) if owner.endswith("Action"))
    ]
    missing += [helper for helper in REST_HELPERS if f"relay_sync.rest.{helper}" not in names]
    assert missing == [], f"not in the API reference: {missing}"
    for page in (
        "quickstart",
        "concepts",
        "migrating",
        "api",
        "performance",
        "reliability",
        "examples",
        "protocol_video",
    ):
        assert (html / f"{page}.html").is_file(), page
    for guide in ("flask", "django", "jupyter", "prefork", "testing", "jwt", "proxies", "video", "operations"):
        assert (html / "guides" / f"{guide}.html").is_file(), guide
