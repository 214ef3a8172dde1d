"""The SDK's import graph, read from the source (``TYPE_CHECKING`` imports
included, since they couple modules just the same): no module may sit on an
import cycle, and no service module may import client.py (services get a
narrow session from the client instead, ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import relay_sync

PACKAGE_DIR = Path(relay_sync.__file__).parent
CLIENT = "relay_sync.client"

# Modules that legitimately import the client (besides the package front): the command
# line, the emulator and the integrations build or hand out RelayClients.
CLIENT_USERS = ("relay_sync.cli", "relay_sync.__main__", "relay_sync.testing.", "relay_sync.contrib.")


def module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The relay_sync modules ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from . import payload`` imports a module; ``from .rpc import JSONDict`` a name.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def import_graph() -> dict[str, set[str]]:
    known = module_files()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in on_stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_graph_reader_sees_relative_type_checking_and_package_imports() -> None:
    graph = import_graph()
    assert "relay_sync.rpc" in graph["relay_sync.events"]  # from .rpc import JSONDict, masked
    assert "relay_sync.session" in graph["relay_sync.dialing"]  # under TYPE_CHECKING only
    assert "relay_sync.video.payload" in graph["relay_sync.video.events"]  # from . import payload
    assert "relay_sync.client" in graph["relay_sync.testing.plugin"]  # from ..client import RelayClient


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_no_service_module_imports_the_client() -> None:
    importers = {name for name, imported in import_graph().items() if CLIENT in imported}
    services = {name for name in importers if name != "relay_sync" and not name.startswith(CLIENT_USERS)}
    assert services == set()
