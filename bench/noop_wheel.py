"""A no-op `doit wheel` (everything built) against a bare `doit list`, side by side.

Both load dodo.py, every area's tasks and the recipes; `wheel` then decides it has
nothing to do by store lookups of derivation hashes (no file md5s, no timestamps) and
prints the store path. Goal: no-op wheel <= 1.3x `doit list`.

    .venv/bin/python bench/noop_wheel.py [--recipe wrapt] [--rounds 7]

Uses $PIFORGE_HOME (default ~/.cache/piforge); builds the wheel first if it is missing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parent.parent


def doit(*args: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "doit", *args], cwd=str(REPO), env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=None, help="wheel recipe (default: what `doit wheel` picks)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    wheel = ["wheel"] + ([f"recipe={args.recipe}"] if args.recipe else [])
    print(f"warming up: {' '.join(wheel)} (builds it if missing)", flush=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-m", "doit", *wheel], cwd=str(REPO), env=env, check=True)
    lists: List[float] = []
    wheels: List[float] = []
    for _ in range(args.rounds):   # alternate, so machine load hits both alike
        lists.append(doit("list"))
        wheels.append(doit(*wheel))
    list_s, wheel_s = statistics.median(lists), statistics.median(wheels)
    print(f"doit list:            {list_s * 1000:7.0f} ms (median of {args.rounds})")
    print(f"doit {' '.join(wheel)} (no-op): {wheel_s * 1000:7.0f} ms (median of {args.rounds})")
    print(f"ratio wheel / list:   {wheel_s / list_s:7.2f}x   (goal <= 1.3x)")


if __name__ == "__main__":
    main()
