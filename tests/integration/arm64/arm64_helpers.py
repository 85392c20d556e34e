"""Helpers of the arm64 tests: run doit against the shared test home, start/stop sims."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def doit(*args: str, home: Path, check: bool = True, timeout: int = 3600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIFORGE_HOME=str(home), PIFORGE_RECIPES=str(REPO / "recipes"), PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "doit", *args], cwd=str(REPO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    print(result.stdout[-6000:])
    if check and result.returncode != 0:
        raise AssertionError(f"doit {' '.join(args)} failed ({result.returncode})")
    return result


def start_doit(*args: str, home: Path) -> "subprocess.Popen[str]":
    env = dict(os.environ, PIFORGE_HOME=str(home), PIFORGE_RECIPES=str(REPO / "recipes"), PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "doit", *args], cwd=str(REPO), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def sim_up(out: Path, home: Path, count: int = 2) -> None:
    if out.with_name(out.name + ".sim.json").exists():   # a killed earlier run
        doit("sim:down", f"out={out}", home=home, check=False)
    doit("sim:up", f"count={count}", "arch=arm64", f"out={out}", home=home)
