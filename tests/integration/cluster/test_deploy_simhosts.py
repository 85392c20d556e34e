"""deploy / rollback to simulated ssh hosts (network namespaces, real sshd, own homes)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from build.cluster.deploy import deploy, raise_for_failures, rollback, summary
from build.cluster.fanout import ChunkCache
from build.cluster.wheelhouse import load_wheelhouse
from build.errors import DeployError
from build.store import Store
from cluster_helpers import cluster_of, current_of, imports_on, make_profile
from simhosts import SimCluster

pytestmark = pytest.mark.slow

CHECK = "import os, sys, six, wrapt; print(wrapt.__version__, six.__version__, os.path.realpath(sys.prefix))"


def wheelhouse_of(path: Path):  # type: ignore[no-untyped-def]
    return load_wheelhouse(path, Store(path.parent))


def test_deploy_three_hosts_rerun_and_rollback(sim_cluster: SimCluster, build_output: Callable[[str], Path],
                                               piforge_home: Path, tmp_path: Path) -> None:
    first = wheelhouse_of(build_output("wheelhouse-test-x86"))
    second = wheelhouse_of(build_output("wheelhouse-test-x86-b"))
    for name in ("a", "b", "c"):
        sim_cluster.add_host(name)
    cluster = cluster_of(sim_cluster, tmp_path)
    profile = make_profile()
    lines = []
    # Small chunks, should any host need the chunk fan-out after the stream.
    cache = ChunkCache(piforge_home / "chunks", chunk_bytes=256 * 1024)

    targets = deploy(cluster, profile, first, report=lines.append, chunk_cache=cache)
    print(summary(targets))
    assert [t.status for t in targets] == ["installed"] * 3, summary(targets)
    assert any("streamed to 3 hosts" in line for line in lines)   # a fed b, b fed c, all at once
    assert any("copying:" in line and "MB" in line for line in lines)
    for spec in cluster.hosts:
        wrapt_version, six_version, prefix = imports_on(spec, "test", CHECK).split()
        assert (wrapt_version, six_version) == ("2.5.2", "1.17.0")
        assert prefix == f"/root/piforge/venvs/test/v-{first.key}"
    # Each host has its own filesystem: the venvs live in three different homes here.
    for host in sim_cluster.hosts:
        assert (host.home / "piforge" / "venvs" / "test" / f"v-{first.key}" / ".piforge-ok").is_file()
        assert not (host.home / "piforge" / "wheels" / ".incoming" / first.wheels[0].sha256).exists()

    again = deploy(cluster, profile, first, report=lines.append, chunk_cache=cache)
    assert [(t.status, t.copied) for t in again] == [("up to date", 0)] * 3

    # A different wheelhouse: only the missing wheels travel, the old venv stays as previous.
    profile_b = make_profile(check_import="six")
    newer = deploy(cluster, profile_b, second, report=lines.append, chunk_cache=cache)
    assert [t.status for t in newer] == ["installed"] * 3, summary(newer)
    assert all(t.copied == 0 for t in newer)   # pip and six were already there, by sha256
    assert current_of(cluster.hosts[0], "test") == f"v-{second.key}"
    back = rollback(cluster, profile_b, report=lines.append)
    assert [t.status for t in back] == ["rolled back"] * 3
    for spec in cluster.hosts:
        assert current_of(spec, "test") == f"v-{first.key}"
        assert imports_on(spec, "test", CHECK).split()[0] == "2.5.2"
    forth = rollback(cluster, profile_b, report=lines.append, hosts=["b"])
    assert [t.serves for t in forth] == [("b",)]
    assert current_of(cluster.hosts[1], "test") == f"v-{second.key}"
    assert current_of(cluster.hosts[0], "test") == f"v-{first.key}"


def test_rollback_without_previous_fails_clearly(sim_cluster: SimCluster, build_output: Callable[[str], Path],
                                                 tmp_path: Path) -> None:
    sim_cluster.add_host("solo")
    cluster = cluster_of(sim_cluster, tmp_path)
    targets = rollback(cluster, make_profile(), report=lambda line: None)
    assert targets[0].failed and "no previous deployment" in targets[0].detail
    with pytest.raises(DeployError, match="rollback failed on 1 of 1 hosts: solo"):
        raise_for_failures(targets, "rollback")
