"""Fixtures of the cluster integration tests: simulated ssh hosts and real wheelhouses.

Other areas can use the simulated hosts too: ``sys.path.insert(0, <this dir>)`` and
``from simhosts import SimCluster`` (see simhosts.py), or copy the ``sim_cluster`` fixture.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from build.recipe import load_recipe
from cluster_helpers import HERE, REPO, doit
from prerequisites import require_root, require_tool
from simhosts import SimCluster


@pytest.fixture
def sim_cluster(tmp_path: Path) -> Iterator[SimCluster]:
    """An empty simulated cluster (bridge + controller link); add hosts with add_host()."""
    require_root()
    for tool in ("sshd", "ssh", "scp", "ssh-keygen", "ssh-agent", "ssh-add", "ip", "tc", "unshare", "iptables"):
        require_tool(tool)
    with SimCluster(tmp_path / "sim") as sim:
        yield sim



@pytest.fixture(scope="session")
def cluster_recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test wheelhouses plus the real wrapt recipe and its arm64 rootfs, and the
    bookworm arm64 rootfs of the simulated Pis (same hashes as in recipes/, so the builds
    in the shared home are reused)."""
    directory = tmp_path_factory.mktemp("cluster-recipes")
    for recipe in (HERE / "recipes").glob("*.toml"):
        shutil.copy(recipe, directory)
    wrapt = load_recipe(REPO / "recipes" / "wrapt.toml")
    shutil.copy(REPO / "recipes" / "wrapt.toml", directory)
    if wrapt.builder.base:
        shutil.copy(REPO / "recipes" / f"{wrapt.builder.base}.toml", directory)
    shutil.copy(REPO / "recipes" / "auditwheel.toml", directory)   # yamlext repairs with it
    shutil.copy(REPO / "recipes" / "rootfs-bookworm-arm64.toml", directory)   # the simulated Pis' (with ssh)
    return directory


@pytest.fixture(scope="session")
def build_output(shared_home: Path, cluster_recipes: Path) -> Callable[[str], Path]:
    """Build (or reuse) a recipe in the shared test home and return its store path."""
    def build(name: str) -> Path:
        result = doit(f"build:{name}", home=shared_home, recipes=cluster_recipes)
        return Path(result.stdout.strip().splitlines()[-1])
    return build
