"""The core (recipes, derivations, the store) is data: it must not depend on what runs
builds (builders), ships them (cache), deploys them (cluster) or trains (train).
Walks the real import statements of the source files with ast, so adding such an
import anywhere in these modules (even inside a function) fails here."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[3]
CORE = ("build/recipe.py", "build/derivation.py", "build/store.py")
FORBIDDEN = ("build.builders", "build.cache", "build.cluster", "build.train")


def imported_modules(path: Path) -> List[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved)."""
    package = "build"
    names: List[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def offending(path: Path) -> List[str]:
    return [name for name in imported_modules(path)
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)]


def test_core_modules_import_no_builder_cache_cluster_or_train() -> None:
    for relative in CORE:
        assert offending(REPO / relative) == [], f"{relative} imports {offending(REPO / relative)}"


def test_the_walk_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from .builders import BUILDER_KINDS\nfrom . import cache\n"
                      "import build.train.loop\n")
    assert sorted(offending(sample)) == ["build.builders", "build.builders.BUILDER_KINDS", "build.cache",
                                 "build.train.loop"]
