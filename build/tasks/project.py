"""Project-level tasks: the test suite."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Dict, List

from ..paths import REPO_ROOT

__all__ = ["task_test"]


def _run_pytest(pytest_args: List[str]) -> bool:
    # pytest owns the terminal: its closing line is what CI reads.
    command = [sys.executable, "-m", "pytest", *(pytest_args or ["tests"])]
    return subprocess.call(command, cwd=str(REPO_ROOT), env=dict(os.environ)) == 0


def task_test() -> Dict[str, Any]:
    """Run the test suite (arguments go to pytest: ./piforge test tests/unit -k recipe)."""
    return {
        "actions": [(_run_pytest,)],
        "pos_arg": "pytest_args",
        "verbosity": 2,
        "uptodate": [False],
    }
