"""The target check on real outputs: `doit compat` on a built wheelhouse, and deploy
refusing an x86_64 wheelhouse for an arm64 host before copying anything."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from build.cluster.deploy import deploy, summary
from build.cluster.wheelhouse import load_wheelhouse
from build.recipe import load_recipe
from build.store import Store
from cluster_helpers import REPO, current_of, doit, make_profile
from simhosts import SimCluster

pytestmark = pytest.mark.slow

PROFILE = """name = "{name}"
description = "test: the small x86 wheelhouse"
os = "debian-12"
platform = "{platform}"
python = "3.11"
glibc = "2.31"
pip = "24.3.1"
tensorflow = "none"
wheelhouse = "wheelhouse-test-x86"
host_python = "/usr/bin/python3"
check_import = "wrapt, six"
"""


def test_compat_on_a_built_wheelhouse(shared_home: Path, cluster_recipes: Path,
                                      build_output: Callable[[str], Path], tmp_path: Path) -> None:
    built = build_output("wheelhouse-test-x86")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "x86.toml").write_text(PROFILE.format(name="x86", platform="linux/x86_64"))
    (profiles / "arm.toml").write_text(PROFILE.format(name="arm", platform="linux/aarch64"))
    env = {"PIFORGE_PROFILES": str(profiles)}
    good = doit("compat", "profile=x86", home=shared_home, recipes=cluster_recipes, extra_env=env)
    assert f"checking built wheelhouse {built}" in good.stdout
    rows = [line for line in good.stdout.splitlines() if line.endswith(" yes")]
    assert {r.split()[0] for r in rows} == {p.name for p in built.glob("*.whl")}

    bad = doit("compat", "profile=arm", home=shared_home, recipes=cluster_recipes, extra_env=env, check=False)
    assert bad.returncode != 0
    row = [line for line in bad.stdout.splitlines() if line.startswith("wrapt-2.5.2-cp311-cp311-manylinux1_x86_64")][0]
    assert "NO: platform manylinux1_x86_64 is not aarch64" in row


def test_deploy_refuses_an_x86_64_wheelhouse_for_an_arm64_host(
        sim_cluster: SimCluster, build_output: Callable[[str], Path], tmp_path: Path) -> None:
    path = build_output("wheelhouse-test-x86")
    wheelhouse = load_wheelhouse(path, Store(path.parent))
    rootfs = build_output(str(load_recipe(REPO / "recipes" / "wrapt.toml").builder.base))
    sim_cluster.add_host("arm", rootfs=rootfs)
    (tmp_path / "cluster.toml").write_text(sim_cluster.cluster_toml(profile="test", python="/usr/bin/python3"))
    from build.cluster.config import load_cluster
    cluster = load_cluster(tmp_path / "cluster.toml")
    before = current_of(cluster.hosts[0], "test")

    targets = deploy(cluster, make_profile(platform="linux/x86_64"), wheelhouse, report=print)
    assert [t.status for t in targets] == ["FAILED"], summary(targets)
    assert targets[0].detail == ("host arm has architecture aarch64, profile test is linux/x86_64 "
                                 "(its wheels are for x86_64); refused before copying anything")
    assert targets[0].copied == 0
    assert not list((sim_cluster.hosts[0].home / "piforge" / "wheels").glob("*/*.whl"))
    assert current_of(cluster.hosts[0], "test") == before
