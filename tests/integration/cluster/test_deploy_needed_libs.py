"""Self-contained wheels, end to end (issue 9): yamlver, a C extension linking libyaml,
built in the arm64 rootfs under qemu (chroot builder), deployed to an arm64 simulated
host whose root filesystem has no libyaml. Repaired by auditwheel it installs and
imports there; unrepaired, deploy's needed-libraries check names libyaml-0.so.2 and the
wheel, and the host's ``current`` stays where it was."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable

import pytest

from build.cluster.config import load_cluster
from build.cluster.deploy import deploy, raise_for_failures, summary
from build.cluster.wheelhouse import load_wheelhouse
from build.errors import DeployError
from build.recipe import load_recipe
from build.store import Store
from cluster_helpers import HERE, current_of, imports_on, make_profile
from simhosts import SimCluster

pytestmark = pytest.mark.slow


def test_repaired_wheel_imports_and_unrepaired_is_refused_before_current(
        sim_cluster: SimCluster, build_output: Callable[[str], Path], tmp_path: Path) -> None:
    built = build_output("yamlext")
    (repaired_wheel,) = (built / "repaired").glob("*.whl")
    assert "manylinux" in repaired_wheel.name and repaired_wheel.name.endswith("_aarch64.whl")
    with zipfile.ZipFile(repaired_wheel) as wheel:
        assert any(n.startswith("yamlver.libs/libyaml-0") for n in wheel.namelist()), wheel.namelist()

    rootfs = build_output(str(load_recipe(HERE / "recipes" / "yamlext.toml").builder.base))
    assert not list(rootfs.glob("usr/lib/*/libyaml*")) and not list(rootfs.glob("lib/*/libyaml*"))
    sim_cluster.add_host("arm", rootfs=rootfs)
    (tmp_path / "cluster.toml").write_text(sim_cluster.cluster_toml(profile="test", python="/usr/bin/python3"))
    cluster = load_cluster(tmp_path / "cluster.toml")
    profile = make_profile(platform="linux/aarch64", python="3.9", check_import="yamlver, six")

    path = build_output("wheelhouse-test-yaml-repaired")
    good = load_wheelhouse(path, Store(path.parent))
    targets = deploy(cluster, profile, good, report=print)
    assert [t.status for t in targets] == ["installed"], summary(targets)
    assert imports_on(cluster.hosts[0], "test", "import yamlver; print(yamlver.version())") == "0.2.2"
    assert current_of(cluster.hosts[0], "test") == f"v-{good.key}"

    path = build_output("wheelhouse-test-yaml-raw")
    raw = load_wheelhouse(path, Store(path.parent))
    targets = deploy(cluster, profile, raw, report=print)
    print(summary(targets))
    assert [t.status for t in targets] == ["FAILED"]
    assert "libyaml-0.so.2" in targets[0].detail
    assert "yamlver-1.0-cp39-cp39-linux_aarch64.whl" in targets[0].detail
    with pytest.raises(DeployError) as error:
        raise_for_failures(targets, "deploy")
    assert "arm" in str(error.value) and "libyaml-0.so.2" in str(error.value)
    assert current_of(cluster.hosts[0], "test") == f"v-{good.key}"
    venvs = sim_cluster.hosts[0].home / "piforge" / "venvs" / "test"
    assert not (venvs / f"v-{raw.key}").exists()
    assert imports_on(cluster.hosts[0], "test", "import yamlver; print(yamlver.version())") == "0.2.2"
