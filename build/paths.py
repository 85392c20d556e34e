"""Where piforge keeps its state: one root, ``$PIFORGE_HOME`` or ``~/.cache/piforge``."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def piforge_home() -> Path:
    """The per-user state root; tests point PIFORGE_HOME at a temp dir."""
    env = os.environ.get("PIFORGE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "piforge"


def store_dir() -> Path:
    """Content-addressed build outputs: ``<store>/<hash>-<name>-<version>``."""
    return piforge_home() / "store"


def sources_dir() -> Path:
    """Fixed-output source cache, addressed by sha256."""
    return piforge_home() / "sources"


def runs_dir() -> Path:
    """Training run records."""
    return piforge_home() / "runs"


def persistent_cache_dir(kind: str) -> Path:
    """Caches that outlive store entries (Bazel output bases, disk caches, ...)."""
    return piforge_home() / "cache" / kind


def recipes_dir() -> Path:
    return Path(os.environ.get("PIFORGE_RECIPES", str(REPO_ROOT / "recipes")))
