"""``doit check:<recipe>``: build a derivation again and compare bit for bit, as
``nix-build --check`` does. Proves (or disproves) that a recipe is reproducible."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Dict, List

from .derivation import Derivation
from .errors import BuildError
from .paths import piforge_home
from .realise import Report, build, realise, report_stderr
from .store import Store


def compare_manifests(first: Dict[str, Dict], second: Dict[str, Dict]) -> List[str]:
    """Every file whose type, content, size or mode differs, or that only one side has."""
    differences = []
    for name in sorted(set(first) | set(second)):
        a, b = first.get(name), second.get(name)
        if a is None or b is None:
            differences.append(f"{name}: only in the {'rebuild' if a is None else 'store'}")
        elif a != b:
            fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            differences.append(f"{name}: {', '.join(fields)} differ")
    return differences


def check_reproducible(drv: Derivation, store: Store, *, report: Report = report_stderr) -> Path:
    """Rebuild ``drv`` beside its store entry (building that first if missing) and compare.

    Returns the store path when identical; raises BuildError listing the differing files.
    """
    path = realise(drv, store, report=report)
    scratch = Path(tempfile.mkdtemp(prefix="check-", dir=str(_scratch_root())))
    try:
        with store.lock(drv):   # the rebuild uses the same fixed build dir as a real build
            report(f"{drv.name} {drv.version}: rebuilding to compare with {path}")
            rebuilt = build(drv, Store(scratch), report=report, input_store=store)
            differences = compare_manifests(store.manifest(path)["files"], Store(scratch).manifest(rebuilt)["files"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if differences:
        shown = "\n".join(f"  {line}" for line in differences[:50])
        raise BuildError(f"{drv.name} is not reproducible: the rebuild differs from {path}:\n{shown}")
    report(f"{drv.name} {drv.version}: rebuild is bit-identical ({len(store.manifest(path)['files'])} files)")
    return path


def _scratch_root() -> Path:
    root = piforge_home() / "check"
    root.mkdir(parents=True, exist_ok=True)
    return root
