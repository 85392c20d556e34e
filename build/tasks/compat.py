"""`doit compat [profile=NAME]`: the target check on its own, one table row per wheel.

Without ``profile=`` every shipped profile is checked. A built wheelhouse is checked as
built (store entry); an unbuilt one by the wheels its recipe pins by file name, and the
table says which wheels it could not see yet (built from sdists or by input recipes).
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Tuple

from .actions import friendly
from .context import project

__all__ = ["task_compat"]


def _rows_for(profile: Any) -> Tuple[List[List[str]], int, str, List[str]]:
    """(rows, misfits, what was checked, wheel names seen) for one profile."""
    from ..compat import check_wheels, pip_problem, pinned_wheels, target_of

    target = target_of(profile)
    here = project()
    store = here.store
    drv = here.derivation(profile.wheelhouse)
    rows: List[List[str]] = []
    if store.is_valid(drv):
        wheels = sorted(p.name for p in store.path_of(drv).glob("*.whl"))
        what = f"built wheelhouse {store.path_of(drv)}"
        unseen: List[str] = []
    else:
        wheels = pinned_wheels(drv.recipe)
        what = f"recipes/{drv.name}.toml pins (not built yet)"
        unseen = [s.filename for s in drv.recipe.sources if not str(s.filename).endswith(".whl")]
        for dep in drv.inputs:   # wheels an input recipe builds: checked if it is built already
            if dep.name == drv.recipe.builder.base:
                continue
            if store.is_valid(dep):
                wheels += sorted(p.name for p in store.path_of(dep).glob("*.whl"))
            else:
                unseen.append(f"(wheels of recipe {dep.name})")
    verdicts = check_wheels(wheels, target)
    for verdict in verdicts:
        rows.append([verdict.wheel, verdict.tag_text, "yes" if verdict.fits else f"NO: {verdict.why}"])
    for name in unseen:
        rows.append([name, "-", "not built yet (built from source): checked when the wheelhouse builds"])
    misfits = sum(1 for v in verdicts if not v.fits)
    problem = pip_problem(wheels, target)
    if problem:
        rows.append([f"pip {target.pip}", "-", f"NO: {problem}"])
        misfits += 1
    return rows, misfits, what, wheels


def _compat() -> Any:
    from doit.exceptions import TaskFailed

    from ..cluster.table import render_table
    from ..compat import edge_runtime, target_of
    from ..profiles import list_profiles

    chosen = project().options.get("profile")
    names = [chosen] if chosen else list_profiles()
    bad: List[str] = []
    for name in names:
        profile = project().profile(name)
        rows, misfits, what, wheels = _rows_for(profile)
        print(f"compat: {target_of(profile).describe()}", flush=True)
        print(f"compat: checking {what}", flush=True)
        print(f"compat: {name}: edge runtime (infer:): {edge_runtime(wheels)}", flush=True)
        print(render_table(["wheel", "tags", "fits?"], rows), flush=True)
        if misfits:
            bad.append(f"{name} ({misfits})")
    if bad:
        return TaskFailed(f"wheels that do not fit their target: {', '.join(bad)}")
    print(f"compat: every wheel fits ({', '.join(names)})", file=sys.stderr, flush=True)
    return True


def task_compat() -> Dict[str, Any]:
    """Check every wheel of a profile's wheelhouse against its hosts (profile=NAME, default all)."""
    return {"actions": [(friendly(_compat),)], "uptodate": [False], "verbosity": 2}
