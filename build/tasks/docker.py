"""doit tasks of the docker/Bazel area: the preflight of a long build and its fix.

``doit preflight:<recipe>`` says whether this machine can run a recipe's build (RAM +
swap, disk) and which Bazel limits it would get; ``doit swap size=6`` adds the swap file
the preflight asks for, after asking (``yes=1`` skips the question).
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional

from ..errors import PrerequisiteError, ResourceError, UsageError
from ..paths import piforge_home
from .actions import friendly
from .context import project

__all__ = ["task_preflight", "task_swap"]


def _recipe_names() -> List[str]:
    return project().recipe_names()   # broken recipes: the task exists and says why


def preflight_report(name: str) -> str:
    from .. import preflight

    recipe = project().derivation(name).recipe
    figures = preflight.measure(piforge_home())
    cpus, ram_mb = preflight.bazel_limits(figures, recipe.resources.cpus)
    lines = [
        f"{name}: needs ram_gb={recipe.resources.ram_gb} swap_gb={recipe.resources.swap_gb} "
        f"disk_gb={recipe.resources.disk_gb}",
        f"this machine: {figures.ram_gb:.1f} GB RAM + {figures.swap_gb:.1f} GB swap, "
        f"{figures.disk_free_gb:.1f} GB free under {piforge_home()}, {figures.cpus} CPUs",
        f"bazel limits: --local_cpu_resources={cpus} --local_ram_resources={ram_mb}",
    ]
    preflight.check(recipe.resources, figures, name)
    lines.append("preflight: ok")
    return "\n".join(lines)


def _print_preflight(name: str) -> None:
    print(preflight_report(name), flush=True)


def task_preflight() -> Iterator[Dict[str, Any]]:
    """Check this machine against a recipe's [resources] (preflight:<recipe>)."""
    yield {"basename": "preflight", "name": None, "doc": task_preflight.__doc__}
    for name in _recipe_names():
        yield {"name": name, "actions": [(friendly(_print_preflight), [name])],
               "uptodate": [False], "verbosity": 2}


Runner = Callable[[List[str]], None]


def _run(argv: List[str]) -> None:
    subprocess.run(argv, check=True)


def add_swap(size_gb: int, path: str, *, confirm: Callable[[str], bool],
             run: Runner = _run, exists: Callable[[str], bool] = os.path.exists,
             is_root: Optional[bool] = None) -> List[List[str]]:
    """Create and enable a ``size_gb`` swap file at ``path`` (the user's commands);
    returns the commands run. Refuses an existing path and asks before touching the disk."""
    from ..preflight import swap_commands

    if size_gb < 1:
        raise UsageError(f"size={size_gb}: expected a whole number of GB >= 1")
    if exists(path):
        raise ResourceError(f"{path} already exists: piforge will not overwrite it",
                            hint=f"choose another file: ./piforge swap size={size_gb} path={path}2")
    if not (os.geteuid() == 0 if is_root is None else is_root):
        raise PrerequisiteError("adding swap needs root", hint=f"sudo ./piforge swap size={size_gb}")
    commands = [command.split()[1:] for command in swap_commands(size_gb, path)]   # without "sudo"
    shown = "\n  ".join(" ".join(c) for c in commands)
    if not confirm(f"piforge will run:\n  {shown}\nProceed? [y/N] "):
        raise ResourceError("swap: not confirmed, nothing changed")
    for command in commands:
        run(command)
    return commands


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(question).strip().lower() in ("y", "yes")


def _swap_action() -> None:
    from ..preflight import free_swapfile_path

    options = project().options
    size = int(options.get("size", 6))
    path = str(options.get("path") or free_swapfile_path())
    add_swap(size, path, confirm=(lambda _q: True) if options.flag("yes") else _ask)
    print(f"swap: {path} ({size} GB) is on; add it to /etc/fstab to keep it after a reboot:\n"
          f"  {path} none swap sw 0 0", flush=True)


def task_swap() -> Dict[str, Any]:
    """Add a swap file for a long build after asking (size=GB path=/swapfile yes=1)."""
    return {"actions": [(friendly(_swap_action),)], "uptodate": [False], "verbosity": 2}
