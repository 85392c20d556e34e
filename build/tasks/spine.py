"""doit tasks of the spine: build, inspect, check and clean content-addressed outputs.

Up-to-dateness is the store lookup of a derivation's hash (an ``uptodate`` callable),
never timestamps or doit's md5 of files: ``realise:<recipe>`` is skipped exactly when its
store entry exists. ``build:<recipe>`` and ``wheel`` then print the store path alone as
their last line, so ``path=$(./piforge build:wrapt | tail -1)`` works.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, Iterator, List, Optional, Tuple

from doit import get_var
from doit.exceptions import TaskFailed

from ..errors import PiforgeError, StoreError
from .actions import friendly

__all__ = ["task_realise", "task_build", "task_path", "task_plan", "task_check", "task_wheel",
           "task_verify", "task_gc"]

DEFAULT_WHEEL_RECIPE = "wrapt"   # until a profile's TensorFlow wheel recipe can be built here

_loaded: Optional[Tuple[Any, Dict[str, Any], Optional[PiforgeError]]] = None


def _derivations() -> Tuple[Dict[str, Any], Optional[PiforgeError]]:
    """Every recipe's derivation, loaded once per doit run. A broken recipe is reported
    once (file:LINE: field: problem) and leaves the build tasks empty, not a traceback."""
    global _loaded
    if _loaded is None:
        from ..derivation import derive
        from ..recipe import load_recipes
        from ..store import Store

        try:
            recipes = load_recipes()
            _loaded = (Store.default(), {name: derive(recipes, name) for name in recipes}, None)
        except PiforgeError as error:
            print(f"piforge: error: {error}", file=sys.stderr)
            error.reported = True  # type: ignore[attr-defined]  # friendly() won't repeat it
            _loaded = (Store.default(), {}, error)
    return _loaded[1], _loaded[2]


def _valid_derivations() -> Dict[str, Any]:
    """For actions: the derivations, or the recipe error (friendly() prints it)."""
    drvs, error = _derivations()
    if error:
        raise error
    return drvs


def _names() -> List[str]:
    """Recipe names to make tasks for. With a broken recipe: every recipe file's stem, so
    tasks that depend on ``realise:<name>`` (other areas') still resolve and then report
    the recipe error when run, instead of doit failing on a missing task."""
    drvs, error = _derivations()
    if error is None:
        return list(drvs)
    from ..paths import recipes_dir

    return sorted(path.stem for path in recipes_dir().glob("*.toml"))


def realise_task_dep(name: Optional[str]) -> List[str]:
    """``task_dep`` for another area's task that needs recipe ``name`` built: empty when
    no such recipe exists here (the task's action then reports that clearly)."""
    return [f"realise:{name}"] if name and name in _names() else []


def _store() -> Any:
    _derivations()
    assert _loaded is not None
    return _loaded[0]


def configured_substituters(report: Any) -> List[Any]:
    """Binary caches from the cache config (``piforge.toml [cache] urls``), if any."""
    from ..cache.config import load_cache_config
    from ..cache.substitute import Substituter

    config = load_cache_config()
    return [Substituter.from_config(config, log=report)] if config.urls else []


def substitute_only() -> bool:
    """``substitute_only=1``: take build:X / wheel from a trusted cache or fail, never build
    (a Pi, or a CI job that must not start a 20-hour build)."""
    return str(get_var("substitute_only", "")).lower() in ("1", "true", "yes")


def _realise(name: str) -> None:
    from ..realise import realise, report_stderr

    drvs = _valid_derivations()
    if substitute_only():
        from ..cache.substitute import substitute_or_fail

        substitute_or_fail(drvs[name], _store(), log=report_stderr)
        return
    realise(drvs[name], _store(), substituters=configured_substituters(report_stderr))


def _print_path(name: str) -> Any:
    drvs = _valid_derivations()
    print(_store().require(drvs[name]), flush=True)


def _is_built(name: str) -> Any:
    def uptodate() -> bool:
        drvs, _ = _derivations()
        return name in drvs and _store().is_valid(drvs[name])
    return uptodate


def task_realise() -> Iterator[Dict[str, Any]]:
    """Build one derivation unless its hash is already in the store (behind build:/wheel)."""
    drvs, _ = _derivations()
    yield {"basename": "realise", "name": None, "doc": task_realise.__doc__}
    for name in _names():
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
    for name in _names():
        yield {
            "name": name,
            "actions": [(friendly(_print_path), [name])],
            "task_dep": [f"realise:{name}"],
            "uptodate": [False],
            "verbosity": 2,
        }


def _path_or_fail(name: str) -> Any:
    drvs = _valid_derivations()
    store = _store()
    if not store.is_valid(drvs[name]):
        print(f"piforge: {name} is not built ({store.path_of(drvs[name])}); run ./piforge build:{name}",
              file=sys.stderr)
        return TaskFailed(f"{name} is not built")
    print(store.path_of(drvs[name]), flush=True)
    return True


def _per_recipe(basename: str, doc: Optional[str], action: Any) -> Iterator[Dict[str, Any]]:
    """``<basename>:<recipe>`` for every recipe: ``action(name)``, always run."""
    yield {"basename": basename, "name": None, "doc": doc}
    for name in _names():
        yield {"name": name, "actions": [(friendly(action), [name])], "uptodate": [False], "verbosity": 2}


def task_path() -> Iterator[Dict[str, Any]]:
    """Print a recipe's store path (path:<recipe>); fail if it is not built."""
    yield from _per_recipe("path", task_path.__doc__, _path_or_fail)


def _plan(name: str) -> None:
    from ..plan import render_plan

    drvs = _valid_derivations()
    print(render_plan(drvs[name], _store()), flush=True)


def task_plan() -> Iterator[Dict[str, Any]]:
    """Show a recipe's derivation graph (plan:<recipe>): hashes, built/missing, phase scripts."""
    yield from _per_recipe("plan", task_plan.__doc__, _plan)


def _check(name: str) -> None:
    from ..check import check_reproducible

    drvs = _valid_derivations()
    print(check_reproducible(drvs[name], _store()), flush=True)


def task_check() -> Iterator[Dict[str, Any]]:
    """Rebuild a recipe (check:<recipe>) and compare bit for bit with its store entry."""
    yield from _per_recipe("check", task_check.__doc__, _check)


def wheel_recipe() -> str:
    """``recipe=NAME`` on the command line, else the profile's wheel recipe if this
    checkout has it, else wrapt (the proof recipe) until the TensorFlow recipes land."""
    chosen = get_var("recipe", None) or os.environ.get("PIFORGE_WHEEL_RECIPE")
    if chosen:
        return str(chosen)
    drvs, _ = _derivations()
    try:
        from ..profiles import load_profile

        profile = load_profile(get_var("profile", None))
    except PiforgeError:
        return DEFAULT_WHEEL_RECIPE
    return profile.wheel if profile.wheel and profile.wheel in drvs else DEFAULT_WHEEL_RECIPE


def _wheel(name: str) -> Any:
    drvs = _valid_derivations()
    if name not in drvs:
        raise StoreError(f"no recipe named '{name}' for the wheel (known: {', '.join(sorted(drvs))})")
    return _print_path(name)


def task_wheel() -> Dict[str, Any]:
    """Build the profile's wheel and print its store path (recipe=NAME, e.g. recipe=wrapt; profile=NAME;
    substitute_only=1: from a trusted cache or fail)."""
    name = wheel_recipe()
    drvs, _ = _derivations()
    return {
        "actions": [(friendly(_wheel), [name])],
        "task_dep": [f"realise:{name}"] if name in drvs else [],
        "uptodate": [False],
        "verbosity": 2,
    }


def _verify() -> Any:
    store = _store()
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

    drvs = _valid_derivations()   # never collect against a partial view of the recipes
    removed = collect_garbage(_store(), drvs.values(), dry_run=dry_run)
    for path in removed:
        print(f"{'would remove' if dry_run else 'removed'} {path}")
    print(f"gc: {len(removed)} path(s) {'to remove' if dry_run else 'removed'}")


def task_gc() -> Dict[str, Any]:
    """Remove store entries and cached sources no recipe references (dry=1 to only list)."""
    dry = str(get_var("dry", "")).lower() in ("1", "true", "yes")
    return {"actions": [(friendly(_gc), [dry])], "uptodate": [False], "verbosity": 2}
