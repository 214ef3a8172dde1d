"""examples/notebook.ipynb executed with nbclient in a real Jupyter kernel
(which runs its own asyncio loop): once against an emulator in this process
named by the SIGNALWIRE_* variables, checking the frames it sent, and once
as it is, with the emulator it starts in the kernel, checking its output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay_sync.testing import RelayEmulator

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"
KERNEL_NAME = "relay-sync-tests"
CELL_TIMEOUT = 30  # seconds any one cell may run


@pytest.fixture
def kernel_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kernelspec that starts this interpreter's ipykernel, whatever is on PATH or installed
    for the user; no SignalWire settings inherited from the caller."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "relay_sync tests",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files
    for name in ("SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN", "SIGNALWIRE_JWT_TOKEN", "SIGNALWIRE_SPACE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def execute_notebook(workdir: Path) -> Any:
    """Run every cell in a fresh kernel (which inherits this process's environment); returns the notebook."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return notebook


def output_text(notebook: Any) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture
def emulator() -> Iterator[RelayEmulator]:
    with RelayEmulator(time_factor=0.01) as running:
        yield running


def test_the_notebook_dials_and_plays_in_a_configured_space(
    kernel_environment: Path, emulator: RelayEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in emulator.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EXAMPLE_TO_NUMBER", "+15552222222")
    monkeypatch.setenv("EXAMPLE_FROM_NUMBER", "+15551111111")
    emulator.phone("+15552222222", after=1)

    notebook = execute_notebook(kernel_environment)

    [dial] = emulator.requests("calling.dial")
    assert dial["params"]["devices"] == [
        [{"type": "phone", "params": {"to_number": "+15552222222", "from_number": "+15551111111"}}]
    ]
    [play] = emulator.requests("calling.play")
    assert play["params"]["play"] == [{"type": "tts", "params": {"text": "Hello from a Jupyter notebook."}}]
    assert len(emulator.requests("calling.end")) == 1
    happened = [entry.text for entry in emulator.transcript]
    assert happened.index("+15552222222 answered") < happened.index('played "Hello from a Jupyter notebook."')
    assert happened[-1] == "call with +15552222222 ended (hangup)"
    # what the cells showed: the call's state and the events that ended the play and the call
    shown = output_text(notebook)
    assert "connected: True" in shown
    assert "is answered" in shown
    assert "play: finished | completed: True | same control_id: True" in shown
    assert "call state: ended | end reason: hangup" in shown
    # the last cell disconnected: the session was closed with a close frame, not dropped
    session = emulator.session(0)
    assert session.closed.wait(5)
    assert session.connection.protocol.close_rcvd.code == 1000


def test_the_notebook_runs_its_own_emulator_without_credentials(kernel_environment: Path) -> None:
    notebook = execute_notebook(kernel_environment)

    shown = output_text(notebook)
    assert "play: finished | completed: True" in shown
    assert "call state: ended | end reason: hangup" in shown
    # the transcript printed by the last cell
    assert "app     dialing +15550123" in shown
    assert 'app     played "Hello from a Jupyter notebook."' in shown
    assert "network call with +15550123 ended (hangup)" in shown
