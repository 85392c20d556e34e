"""Run piforge's doit tasks as a user would, against the shared test home."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List, Optional

from tests.cli import piforge_argv, piforge_env, run_piforge

REPO = Path(__file__).resolve().parents[3]
EM_AARCH64, EM_X86_64 = 183, 62


def doit_argv(*args: str) -> List[str]:
    return piforge_argv(*args)


def doit_env(home: Path, recipes: Optional[Path] = None, **extra: str) -> Dict[str, str]:
    return piforge_env(home, recipes or REPO / "recipes", extra)


def run_doit(*args: str, home: Path, recipes: Optional[Path] = None, check: bool = True,
             timeout: int = 1800) -> subprocess.CompletedProcess:
    return run_piforge(*args, home=home, recipes=recipes or REPO / "recipes", check=check, timeout=timeout)


def store_path(result: subprocess.CompletedProcess) -> Path:
    """build:<recipe> prints the store path alone on its last line."""
    return Path(result.stdout.rstrip("\n").splitlines()[-1])


def elf_machine(path: Path) -> int:
    data = path.read_bytes()[:20]
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path} is not a 64-bit LE ELF"
    return int.from_bytes(data[18:20], "little")
