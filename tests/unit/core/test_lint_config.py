"""ruff and mypy skip directories named `build` by default: pyproject.toml must not let
them skip piforge's own package."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[3]


def _tools() -> Dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]


def test_ruff_replaces_its_default_excludes_without_build() -> None:
    ruff = _tools()["ruff"]
    # `exclude` replaces ruff's defaults (which contain "build"); `extend-exclude` would keep them.
    assert "exclude" in ruff
    assert not any(p.strip("/").split("/")[0] == "build" for p in ruff["exclude"] + ruff.get("extend-exclude", []))


def test_mypy_checks_every_python_tree() -> None:
    mypy = _tools()["mypy"]
    assert set(mypy["files"]) >= {"build", "tests", "dodo.py", "bench", "jobs"}
    assert not any("build" in pattern for pattern in mypy.get("exclude", []))
