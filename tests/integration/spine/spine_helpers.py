"""Helpers shared by the spine integration tests: run doit as a user would."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, Optional

from tests.cli import piforge_argv, run_piforge

REPO = Path(__file__).resolve().parents[3]
SPINE_DODO = Path(__file__).resolve().parent / "spine_dodo.py"


def doit_command(*args: str) -> list:
    return piforge_argv(*args, dodo=SPINE_DODO)


def run_doit(*args: str, home: Path, recipes: Path, check: bool = True,
             extra_env: Optional[Dict[str, str]] = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """``doit ARGS`` (the spine's tasks) in the repo with its own PIFORGE_HOME and recipes dir."""
    return run_piforge(*args, home=home, recipes=recipes, env=extra_env, check=check, timeout=timeout,
                       dodo=SPINE_DODO)


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]
