"""``doit gc``: remove store entries and cached sources that no recipe references.

Live = the closure of every recipe in the recipes directory. Anything else in the store
(old hashes after a recipe changed, test leftovers) and every cached source whose sha256
no recipe pins goes; so do staging dirs of killed builds and orphaned build dirs.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable, List, Set

from .derivation import Derivation
from .paths import piforge_home, sources_dir
from .store import Store


def live_closure(roots: Iterable[Derivation]) -> List[Derivation]:
    seen: Set[str] = set()
    live: List[Derivation] = []
    for root in roots:
        for drv in root.closure():
            if drv.hash not in seen:
                seen.add(drv.hash)
                live.append(drv)
    return live


def collect_garbage(store: Store, roots: Iterable[Derivation], *, dry_run: bool = False) -> List[Path]:
    live = live_closure(roots)
    keep = {drv.store_name for drv in live}
    pinned = {source.sha256 for drv in live for source in drv.recipe.sources}
    doomed: List[Path] = [path for path in store.entries() if path.name not in keep]
    if sources_dir().is_dir():
        doomed += [path for path in sorted(sources_dir().iterdir())
                   if not path.name.startswith(".") and path.name not in pinned]
    if not dry_run:
        for path in doomed:
            if path.parent == store.root:
                store.remove(path)   # renamed aside first: gone from the store at once
            else:
                shutil.rmtree(path, ignore_errors=True)
        doomed += store.remove_stale_staging()
        doomed += _remove_orphan_build_dirs(store)
    return doomed


def _remove_orphan_build_dirs(store: Store) -> List[Path]:
    """Build dirs of killed builds; a live build holds its derivation's lock."""
    removed: List[Path] = []
    builds = piforge_home() / "build"
    if not builds.is_dir():
        return removed
    for stale in sorted(builds.iterdir()):
        with store.unclaimed(stale.name) as orphan:
            if orphan:
                shutil.rmtree(stale, ignore_errors=True)
                removed.append(stale)
    return removed
