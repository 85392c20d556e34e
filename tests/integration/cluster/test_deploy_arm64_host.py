"""Deploy to an arm64 host: a simulated host whose ssh sessions run inside the spine's
arm64 root filesystem (sshd ChrootDirectory), so its shell, python3 and pip are arm64
binaries under qemu. It receives the aarch64 wrapt wheel built by the spine plus a
pure-Python wheel, and the imports are checked there."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from build.cluster.check import check_cluster, check_table
from build.cluster.deploy import deploy, summary
from build.cluster.wheelhouse import load_wheelhouse
from build.recipe import load_recipe
from build.store import Store
from cluster_helpers import REPO, current_of, imports_on, make_profile
from simhosts import SimCluster

pytestmark = pytest.mark.slow


def test_deploy_wrapt_aarch64_to_an_arm64_host(sim_cluster: SimCluster, build_output: Callable[[str], Path],
                                               piforge_home: Path, tmp_path: Path) -> None:
    path = build_output("wheelhouse-test-arm64")
    wheelhouse = load_wheelhouse(path, Store(path.parent))
    assert any(w.name.endswith("linux_aarch64.whl") and w.name.startswith("wrapt-") for w in wheelhouse.wheels)
    rootfs = build_output(str(load_recipe(REPO / "recipes" / "wrapt.toml").builder.base))
    sim_cluster.add_host("arm", rootfs=rootfs)
    (tmp_path / "cluster.toml").write_text(sim_cluster.cluster_toml(profile="test", python="/usr/bin/python3"))
    from build.cluster.config import load_cluster
    cluster = load_cluster(tmp_path / "cluster.toml")
    python = imports_on_system(cluster.hosts[0])
    profile = make_profile(platform="linux/aarch64", python=python)

    targets = deploy(cluster, profile, wheelhouse, report=print)
    assert [t.status for t in targets] == ["installed"], summary(targets)
    out = imports_on(cluster.hosts[0], "test",
                     "import platform, six, wrapt, wrapt._wrappers; print(platform.machine(), wrapt.__version__, six.__version__)")
    assert out == "aarch64 1.12.1 1.17.0"
    assert current_of(cluster.hosts[0], "test") == f"v-{wheelhouse.key}"
    # The venv exists in the host's own home, not in the (read-only, shared) rootfs.
    assert (sim_cluster.hosts[0].home / "piforge" / "venvs" / "test" / f"v-{wheelhouse.key}").is_dir()
    assert not (rootfs / "root" / "piforge").exists()

    checks = check_cluster(cluster, profile)
    print(check_table(checks))
    assert checks[0].facts["arch"] == "aarch64" and checks[0].fit, check_table(checks)


def imports_on_system(spec) -> str:  # type: ignore[no-untyped-def]
    """major.minor of the host's system python3 (the rootfs decides: 3.9 or 3.11)."""
    from build.cluster.hosts import open_host
    with open_host(spec) as host:
        return host.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                        timeout=120).stdout.strip()
