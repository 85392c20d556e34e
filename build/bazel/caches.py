"""Bazel's caches live outside the store, keyed by recipe and target platform.

A store entry appears only when a build finishes; Bazel's output base, disk cache and
repository cache must outlive a killed build so the next attempt resumes where the
last one stopped (hours of a Pi's work), hence ``persistent_cache_dir``, not the store.
The key is the recipe name and target, not the derivation hash: a changed flag must
still reuse the thousands of unchanged actions (Bazel's own action keys decide).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from ..paths import persistent_cache_dir


@dataclass(frozen=True)
class BazelCaches:
    """Where Bazel keeps its state for one recipe+target; paths as the build sees them."""

    output_user_root: str
    output_base: str
    disk_cache: str
    repository_cache: str

    def directories(self) -> List[str]:
        return [self.output_user_root, self.output_base, self.disk_cache, self.repository_cache]


def cache_key(recipe_name: str, platform: str) -> str:
    """``tensorflow-linux-aarch64``: one output base per recipe and target."""
    return f"{recipe_name}-{platform.replace('/', '-')}"


def host_caches(recipe_name: str, platform: str, root: Path = None) -> BazelCaches:  # type: ignore[assignment]
    """The caches on this machine (created); the repository cache is shared by all
    recipes because it is content-addressed by sha256 already."""
    base = Path(root) if root is not None else persistent_cache_dir("bazel")
    keyed = base / cache_key(recipe_name, platform)
    caches = BazelCaches(
        output_user_root=str(keyed / "user-root"),
        output_base=str(keyed / "output-base"),
        disk_cache=str(keyed / "disk-cache"),
        repository_cache=str(base / "repository-cache"),
    )
    for directory in caches.directories():
        Path(directory).mkdir(parents=True, exist_ok=True)
    return caches


# Where the docker builder mounts them inside a container.
CONTAINER_ROOT = "/piforge/bazel"


def container_caches() -> BazelCaches:
    return BazelCaches(
        output_user_root=f"{CONTAINER_ROOT}/user-root",
        output_base=f"{CONTAINER_ROOT}/output-base",
        disk_cache=f"{CONTAINER_ROOT}/disk-cache",
        repository_cache=f"{CONTAINER_ROOT}/repository-cache",
    )


def container_mounts(host: BazelCaches) -> Dict[str, str]:
    """host path -> container path, for the docker builder's volumes."""
    inside = container_caches()
    return {
        host.output_user_root: inside.output_user_root,
        host.output_base: inside.output_base,
        host.disk_cache: inside.disk_cache,
        host.repository_cache: inside.repository_cache,
    }
