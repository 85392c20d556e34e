"""Project-level tasks: the test suite, and what the command line understands."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Dict, List

from ..paths import REPO_ROOT

__all__ = ["task_test", "task_options", "task_exit_codes"]


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


def _print_options() -> None:
    from ..options import help_table
    print(help_table(), flush=True)


def _print_exit_codes() -> None:
    from ..errors import exit_codes
    for code, name, meaning in exit_codes():
        print(f"{code:>4}  {name:<22} {meaning}", flush=True)


def task_options() -> Dict[str, Any]:
    """Every command-line variable piforge understands (name=value), and what it does."""
    return {"actions": [(_print_options,)], "uptodate": [False], "verbosity": 2}


def task_exit_codes() -> Dict[str, Any]:
    """What each exit code of ./piforge means (one per kind of failure)."""
    return {"basename": "exit-codes", "actions": [(_print_exit_codes,)], "uptodate": [False], "verbosity": 2}
