"""Helpers of the arm64 tests: run doit against the shared test home, start/stop sims."""
from __future__ import annotations

import subprocess
from pathlib import Path

from cli import REPO, run_piforge, start_piforge


def doit(*args: str, home: Path, check: bool = True, timeout: int = 3600) -> "subprocess.CompletedProcess[str]":
    result = run_piforge(*args, home=home, recipes=REPO / "recipes", timeout=timeout, merge_stderr=True)
    print(result.stdout[-6000:])
    if check and result.returncode != 0:
        raise AssertionError(f"doit {' '.join(args)} failed ({result.returncode})")
    return result


def start_doit(*args: str, home: Path) -> "subprocess.Popen[str]":
    return start_piforge(*args, home=home, recipes=REPO / "recipes")


def sim_up(out: Path, home: Path, count: int = 2) -> None:
    if out.with_name(out.name + ".sim.json").exists():   # a killed earlier run
        doit("sim:down", f"out={out}", home=home, check=False)
    doit("sim:up", f"count={count}", "arch=arm64", f"out={out}", home=home)
