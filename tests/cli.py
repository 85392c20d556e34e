"""The one way tests run piforge in a subprocess, as a user would run ./piforge.

`./piforge ARGS` minus the venv check: this interpreter runs ``python -m build.main``
(piforge's entry point, which maps piforge's errors to exit codes) when that module
exists, else ``python -m doit``, in the repo, with PIFORGE_HOME (and optionally the
recipes dir and any extra variables) set. Results are CompletedProcess objects
(returncode, stdout, stderr)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]


def piforge_argv(*args: str, dodo: Optional[Path] = None) -> List[str]:
    """The command line; ``dodo`` runs another task file (e.g. a test's own) from the repo."""
    entry = "build.main" if (REPO / "build" / "main.py").exists() else "doit"
    chosen = ["-f", str(dodo), "--dir", str(REPO)] if dodo is not None else []
    return [sys.executable, "-m", entry, *chosen, *args]


def piforge_env(home: Optional[Path] = None, recipes: Optional[Path] = None,
                env: Optional[Mapping[str, str]] = None, drop: Tuple[str, ...] = ()) -> Dict[str, str]:
    """This process's environment plus the repo on PYTHONPATH, the home, recipes, ``env``;
    the names in ``drop`` removed (e.g. a PIFORGE_RECIPES the caller must not inherit)."""
    environ = dict(os.environ, PYTHONPATH=str(REPO))
    if home is not None:
        environ["PIFORGE_HOME"] = str(home)
    if recipes is not None:
        environ["PIFORGE_RECIPES"] = str(recipes)
    environ.update(env or {})
    for name in drop:
        environ.pop(name, None)
    return environ


def run_piforge(*args: str, home: Optional[Path] = None, recipes: Optional[Path] = None,
                env: Optional[Mapping[str, str]] = None, drop: Tuple[str, ...] = (),
                cwd: Path = REPO, timeout: float = 1800, check: bool = False,
                merge_stderr: bool = False, dodo: Optional[Path] = None) -> "subprocess.CompletedProcess[str]":
    """Run piforge ARGS and wait; ``check`` turns a non-zero exit into an AssertionError that
    shows the ends of both streams; ``merge_stderr`` interleaves stderr into stdout."""
    result = subprocess.run(piforge_argv(*args, dodo=dodo), cwd=str(cwd),
                            env=piforge_env(home, recipes, env, drop), text=True, timeout=timeout,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
    if check and result.returncode != 0:
        raise AssertionError(f"piforge {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{(result.stderr or '')[-6000:]}")
    return result


def start_piforge(*args: str, home: Optional[Path] = None, recipes: Optional[Path] = None,
                  env: Optional[Mapping[str, str]] = None, cwd: Path = REPO,
                  dodo: Optional[Path] = None) -> "subprocess.Popen[str]":
    """Start piforge ARGS in the background (faults injected mid-run); stderr joins stdout."""
    return subprocess.Popen(piforge_argv(*args, dodo=dodo), cwd=str(cwd), env=piforge_env(home, recipes, env),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
