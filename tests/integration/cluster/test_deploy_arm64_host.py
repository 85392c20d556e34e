"""Deploy to arm64 hosts: simulated hosts whose ssh sessions run inside an arm64 root
filesystem (sshd ChrootDirectory), so their shell, python3, pip and ssh are arm64
binaries under qemu. One receives the aarch64 wrapt wheel built by the spine plus a
pure-Python wheel, and the imports are checked there; three pass a deploy's stream
along with their own relays."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, List

import pytest

from build.cluster.check import check_cluster, check_table
from build.cluster.config import load_cluster
from build.cluster.deploy import deploy, summary
from build.cluster.wheelhouse import load_wheelhouse
from build.recipe import load_recipe
from build.store import Store
from cluster_helpers import REPO, current_of, imports_on, make_profile
from simhosts import SimCluster
from wheelhouses import data_wheel, wheelhouse_entry

pytestmark = pytest.mark.slow


def test_deploy_wrapt_aarch64_to_an_arm64_host(sim_cluster: SimCluster, build_output: Callable[[str], Path],
                                               piforge_home: Path, tmp_path: Path) -> None:
    path = build_output("wheelhouse-test-arm64")
    wheelhouse = load_wheelhouse(path, Store(path.parent))
    assert any(w.name.endswith("linux_aarch64.whl") and w.name.startswith("wrapt-") for w in wheelhouse.wheels)
    rootfs = build_output(str(load_recipe(REPO / "recipes" / "wrapt.toml").builder.base))
    sim_cluster.add_host("arm", rootfs=rootfs)
    (tmp_path / "cluster.toml").write_text(sim_cluster.cluster_toml(profile="test", python="/usr/bin/python3"))
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


@pytest.mark.parametrize("transport", ["ssh", "tcp"])
def test_the_stream_passes_through_arm64_hosts(sim_cluster: SimCluster, build_output: Callable[[str], Path],
                                              piforge_home: Path, tmp_path: Path, transport: str) -> None:
    """A deploy streamed through three Pi-like hosts (Debian 12 arm64 under qemu): each runs
    the relay under its own aarch64 Python 3.11, the first two pass the stream on (ssh: with
    their own aarch64 ssh, the controller's agent forwarded into their chroot; tcp: over the
    sockets their relays open), and every host verifies and installs what it needs, with no
    chunk copies at all."""
    rootfs = build_output("rootfs-bookworm-arm64")
    sim_cluster.add_hosts(["pi0", "pi1", "pi2"], rootfs=rootfs)
    entry = tmp_path / "store" / "0000000000000000arm-wheelhouse-1"
    entry.mkdir(parents=True)
    for wheel in build_output("wheelhouse-test-x86").glob("*-none-any.whl"):   # pip, six: pure Python
        shutil.copy(wheel, entry)
    data_wheel(entry, "pfarm_data0", 6_000_000)
    data_wheel(entry, "pfarm_data1", 2_000_000)
    wheelhouse = wheelhouse_entry(entry)
    (tmp_path / "cluster.toml").write_text(sim_cluster.cluster_toml(profile="test", python="/usr/bin/python3"))
    cluster = load_cluster(tmp_path / "cluster.toml")
    profile = make_profile(platform="linux/aarch64", check_import="six, pfarm_data0, pfarm_data1")

    lines: List[str] = []
    targets = deploy(cluster, profile, wheelhouse, report=lines.append, stream_transport=transport)
    assert [t.status for t in targets] == ["installed"] * 3, summary(targets) + "\n".join(lines)
    copied = [line for line in lines if "streamed to" in line]
    assert copied and "streamed to 3 hosts, 0 relayed and 0 direct chunk copies" in copied[-1], "\n".join(lines)
    for spec in cluster.hosts:
        assert imports_on(spec, "test", "import platform, pfarm_data0; print(platform.machine())") == "aarch64"
