"""What a test needs from the machine: root, a tool. Missing in CI means a missing
install step, so there it fails; on a developer's machine it skips.

(Imported by name from test modules: several directories have a conftest.py, so
``from prerequisites import`` would pick whichever was imported first.)
"""
from __future__ import annotations

import os
import shutil

import pytest


def unavailable(reason: str) -> None:
    # In CI everything must be there: a skip would hide a missing install step.
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it: see scripts/setup-host.sh)")
    pytest.skip(reason)


def require_root() -> None:
    if os.geteuid() != 0:
        unavailable("needs root")


def require_tool(name: str) -> None:
    if shutil.which(name) is None:
        unavailable(f"{name} not installed (run scripts/setup-host.sh)")
