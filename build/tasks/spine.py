"""doit tasks of the spine: build, inspect, check and clean content-addressed outputs.

Up-to-dateness is the store lookup of a derivation's hash (an ``uptodate`` callable),
never timestamps or doit's md5 of files: ``realise:<recipe>`` is skipped exactly when its
store entry exists. ``build:<recipe>`` and ``wheel`` then print the store path alone as
their last line, so ``path=$(./piforge build:wrapt | tail -1)`` works.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, Iterator, List, Optional

from doit.exceptions import TaskFailed

from .actions import friendly
from .context import project

__all__ = ["task_realise", "task_build", "task_path", "task_plan", "task_check", "task_wheel",
           "task_verify", "task_gc"]


def realise_task_dep(name: Optional[str]) -> List[str]:
    """``task_dep`` for another area's task that needs recipe ``name`` built: empty when
    no such recipe exists here (the task's action then reports that clearly)."""
    return [f"realise:{name}"] if project().has_recipe(name) else []


def _realise(name: str) -> None:
    from ..realise import realise, report_stderr

    here = project()
    drv = here.derivation(name)
    if here.options.flag("substitute_only"):
        from ..cache.substitute import substitute_or_fail

        substitute_or_fail(drv, here.store, log=report_stderr)
        return
    realise(drv, here.store, substituters=here.substituters(report_stderr))


def _print_path(name: str) -> Any:
    here = project()
    print(here.store.require(here.derivation(name)), flush=True)


def _is_built(name: str) -> Any:
    def uptodate() -> bool:
        here = project()
        return here.recipe_error() is None and here.store.is_valid(here.derivation(name))
    return uptodate


def task_realise() -> Iterator[Dict[str, Any]]:
    """Build one derivation unless its hash is already in the store (behind build:/wheel)."""
    yield {"basename": "realise", "name": None, "doc": task_realise.__doc__}
    for name in project().recipe_names():
        yield {
            "name": name,
            "actions": [(friendly(_realise), [name])],
            # No task_dep on the inputs: realise() walks the closure itself and asks the
            # binary caches top-down first; a task_dep would build every input (rootfs,
            # Bazel...) before the cache is even asked for the wheel.
            "uptodate": [_is_built(name)],
            "verbosity": 2,
        }


def task_build() -> Iterator[Dict[str, Any]]:
    """Build a recipe (build:<recipe>) and print its store path alone on the last line
    (substitute_only=1: from a trusted cache or fail, never build)."""
    yield {"basename": "build", "name": None, "doc": task_build.__doc__}
    for name in project().recipe_names():
        yield {
            "name": name,
            "actions": [(friendly(_print_path), [name])],
            "task_dep": [f"realise:{name}"],
            "uptodate": [False],
            "verbosity": 2,
        }


def _path_or_fail(name: str) -> Any:
    here = project()
    drv, store = here.derivation(name), here.store
    if not store.is_valid(drv):
        print(f"piforge: {name} is not built ({store.path_of(drv)}); run ./piforge build:{name}",
              file=sys.stderr)
        return TaskFailed(f"{name} is not built")
    print(store.path_of(drv), flush=True)
    return True


def _per_recipe(basename: str, doc: Optional[str], action: Any) -> Iterator[Dict[str, Any]]:
    """``<basename>:<recipe>`` for every recipe: ``action(name)``, always run."""
    yield {"basename": basename, "name": None, "doc": doc}
    for name in project().recipe_names():
        yield {"name": name, "actions": [(friendly(action), [name])], "uptodate": [False], "verbosity": 2}


def task_path() -> Iterator[Dict[str, Any]]:
    """Print a recipe's store path (path:<recipe>); fail if it is not built."""
    yield from _per_recipe("path", task_path.__doc__, _path_or_fail)


def _plan(name: str) -> None:
    from ..plan import render_plan

    here = project()
    print(render_plan(here.derivation(name), here.store), flush=True)


def task_plan() -> Iterator[Dict[str, Any]]:
    """Show a recipe's derivation graph (plan:<recipe>): hashes, built/missing, phase scripts."""
    yield from _per_recipe("plan", task_plan.__doc__, _plan)


def _check(name: str) -> None:
    from ..check import check_reproducible

    here = project()
    print(check_reproducible(here.derivation(name), here.store), flush=True)


def task_check() -> Iterator[Dict[str, Any]]:
    """Rebuild a recipe (check:<recipe>) and compare bit for bit with its store entry."""
    yield from _per_recipe("check", task_check.__doc__, _check)


def task_wheel() -> Dict[str, Any]:
    """Build the profile's wheel and print its store path (recipe=NAME, e.g. recipe=wrapt; profile=NAME;
    substitute_only=1: from a trusted cache or fail)."""
    name = project().wheel_recipe()
    return {
        "actions": [(friendly(_print_path), [name])],
        "task_dep": realise_task_dep(name),
        "uptodate": [False],
        "verbosity": 2,
    }


def _verify() -> Any:
    store = project().store
    entries = store.entries()
    problems = [problem for path in entries for problem in store.verify(path)]
    for problem in problems:
        print(f"corrupt: {problem}", flush=True)
    if problems:
        return TaskFailed(f"{len(problems)} problem(s) in {store.root}")
    print(f"verified {len(entries)} store entr{'y' if len(entries) == 1 else 'ies'} in {store.root}: all intact")
    return True


def task_verify() -> Dict[str, Any]:
    """Re-hash every store entry against its manifest and name any corrupted file."""
    return {"actions": [(friendly(_verify),)], "uptodate": [False], "verbosity": 2}


def _gc(dry_run: bool) -> None:
    from ..gc import collect_garbage

    here = project()   # never collect against a partial view of the recipes: a broken one raises
    removed = collect_garbage(here.store, here.derivations.values(), dry_run=dry_run)
    for path in removed:
        print(f"{'would remove' if dry_run else 'removed'} {path}")
    print(f"gc: {len(removed)} path(s) {'to remove' if dry_run else 'removed'}")


def task_gc() -> Dict[str, Any]:
    """Remove store entries and cached sources no recipe references (dry=1 to only list)."""
    return {"actions": [(friendly(_gc), [project().options.flag("dry")])], "uptodate": [False], "verbosity": 2}
