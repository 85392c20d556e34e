"""Run piforge's doit tasks as a user would, against the shared test home."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[3]
EM_AARCH64, EM_X86_64 = 183, 62


def doit_argv(*args: str) -> List[str]:
    return [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "--dir", str(REPO), *args]


def doit_env(home: Path, recipes: Optional[Path] = None, **extra: str) -> Dict[str, str]:
    env = dict(os.environ, PIFORGE_HOME=str(home), PYTHONPATH=str(REPO), **extra)
    env["PIFORGE_RECIPES"] = str(recipes or REPO / "recipes")
    return env


def run_doit(*args: str, home: Path, recipes: Optional[Path] = None, check: bool = True,
             timeout: int = 1800) -> subprocess.CompletedProcess:
    result = subprocess.run(doit_argv(*args), cwd=str(REPO), env=doit_env(home, recipes),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"doit {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def store_path(result: subprocess.CompletedProcess) -> Path:
    """build:<recipe> prints the store path alone on its last line."""
    return Path(result.stdout.rstrip("\n").splitlines()[-1])


def elf_machine(path: Path) -> int:
    data = path.read_bytes()[:20]
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path} is not a 64-bit LE ELF"
    return int.from_bytes(data[18:20], "little")
