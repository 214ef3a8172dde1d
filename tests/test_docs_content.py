"""What a newcomer reads: every logger in the operations guide, every
constructor parameter on the API page, the license, install lines that work
from a checkout, RELAY_MAX_CONNECTIONS explained, and the front page's example
run as written."""

from __future__ import annotations

import ast
import configparser
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guides" / "operations.rst"


def loggers_in_the_package() -> set[str]:
    """Names passed to logging.getLogger in relay_sync (``__name__`` resolved), emulator aside."""
    names = set()
    for path in (ROOT / "relay_sync").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module.startswith("relay_sync.testing"):
            continue  # documented as one row: relay_sync.testing.*
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger" and node.args:
                argument = node.args[0]
                if isinstance(argument, ast.Name) and argument.id == "__name__":
                    names.add(module.removesuffix(".__init__"))
                elif isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    names.add(argument.value)
    return names


def test_every_logger_has_a_row_in_the_operations_guide() -> None:
    guide = GUIDE.read_text()
    names = loggers_in_the_package()
    assert {"relay_sync.lifecycle", "relay_sync.transport", "relay_sync.frames"} <= names
    missing = sorted(name for name in names - {"relay_sync"} if f"``{name}``" not in guide)
    assert missing == [], f"add a row for each to the logger table of {GUIDE.relative_to(ROOT)}: {missing}"
    assert "``relay_sync.testing.*``" in guide


def test_the_relay_client_page_documents_every_constructor_parameter() -> None:
    from relay_sync import RelayClient

    parameters = [name for name in inspect.signature(RelayClient.__init__).parameters if name != "self"]
    documented = RelayClient.__doc__ or ""  # autodoc renders it on the API page
    assert [name for name in parameters if f":param {name}:" not in documented] == []


def test_there_is_an_mit_license_as_the_metadata_says() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "setup.cfg")
    assert metadata["metadata"]["license"] == "MIT"


def test_install_instructions_work_from_a_checkout() -> None:
    for page in (ROOT / "README.rst", ROOT / "docs" / "quickstart.rst", ROOT / "docs" / "index.rst"):
        assert "pip install -e '.[testing]'" in page.read_text(), page
    for page in [ROOT / "README.rst", *(ROOT / "docs").rglob("*.rst")]:
        text = " ".join(page.read_text().split())
        # The package-index line stays for later, marked as not true yet.
        for mention in re.findall(r".{0,60}pip install '?relay-sync.{0,30}", text):
            assert re.search(r"not on PyPI yet|later|once (it is )?published", mention, re.IGNORECASE), (page, mention)


def test_relay_max_connections_is_explained_where_newcomers_meet_it() -> None:
    for page in (ROOT / "README.rst", ROOT / "docs" / "guides" / "jupyter.rst"):
        text = " ".join(page.read_text().split())
        assert "RELAY_MAX_CONNECTIONS" in text and "disconnect()" in text, page


def test_the_front_page_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "docs" / "index.rst").read_text()
    first_screen = text[text.index("Start here, no account needed") :]
    block = first_screen.split(".. code-block:: python\n", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    exec(compile("\n".join(lines), "docs/index.rst", "exec"), {})  # noqa: S102 - the page's own example
    printed = capsys.readouterr().out
    assert "Hello" in printed and "+15552222222" in printed
