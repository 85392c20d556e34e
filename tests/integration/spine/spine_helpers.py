"""Helpers shared by the spine integration tests: run doit as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

REPO = Path(__file__).resolve().parents[3]
SPINE_DODO = Path(__file__).resolve().parent / "spine_dodo.py"


def doit_command(*args: str) -> list:
    return [sys.executable, "-m", "doit", "-f", str(SPINE_DODO), "--dir", str(REPO), *args]


def run_doit(*args: str, home: Path, recipes: Path, check: bool = True,
             extra_env: Optional[Dict[str, str]] = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """``doit ARGS`` (the spine's tasks) in the repo with its own PIFORGE_HOME and recipes dir."""
    env = dict(os.environ, PIFORGE_HOME=str(home), PIFORGE_RECIPES=str(recipes),
               PYTHONPATH=str(REPO), **(extra_env or {}))
    result = subprocess.run(doit_command(*args), cwd=str(REPO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"doit {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]
