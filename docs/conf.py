"""Sphinx configuration for the relay_sync documentation.

Build it with ``sphinx-build -W -b html docs docs/_build/html`` (warnings are
errors, as in the test suite). The theme is furo when it is installed, else
Sphinx's default.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the package from this checkout, installed or not

from relay_sync import __version__

project = "relay_sync"
author = "relay_sync contributors"
copyright = "relay_sync contributors"  # Sphinx's setting name
version = release = __version__

extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
default_role = "literal"  # `name` is code, as in the docstrings
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"undoc-members": False}

html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
html_title = f"relay_sync {release}"


def _drop_builtin_docstrings(app, what, name, obj, options, lines):
    """A module constant has no docstring of its own; autodoc would show its type's (``str``'s)."""
    if what == "data" and type(obj).__module__ in ("builtins", "types", "mappingproxy"):
        lines.clear()


def setup(app):
    app.connect("autodoc-process-docstring", _drop_builtin_docstrings)
