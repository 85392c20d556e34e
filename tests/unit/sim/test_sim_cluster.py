"""sim:up's argument parsing and the cluster.toml it writes (real hosts: tests/integration/arm64)."""
from __future__ import annotations

from pathlib import Path

import pytest

from build.cluster.config import load_cluster
from build.errors import SimError
from build.sim.cluster import JOBS, cluster_text, parse_arch, parse_count, state_path
from build.sim.hosts import SimCluster, SimHost


def test_count_and_arch_are_checked() -> None:
    assert parse_count("3") == 3
    for bad in ("0", "x", "99"):
        with pytest.raises(SimError):
            parse_count(bad)
    assert parse_arch("aarch64") == "arm64" and parse_arch("x86_64") == "x86_64"
    with pytest.raises(SimError):
        parse_arch("riscv")


def test_cluster_toml_has_builtin_jobs_on_all_hosts(tmp_path: Path) -> None:
    sim = SimCluster(tmp_path / "sim")
    for i in range(2):
        sim.hosts.append(SimHost(name=f"sim{i}", index=i, address=f"10.231.0.{10 + i}", netns=f"pfc-sim{i}",
                                 veth_bridge_side="b", veth_host_side="h", dir=tmp_path / f"h{i}"))
    path = tmp_path / "cluster.toml"
    path.write_text(cluster_text(sim, "rpios-bookworm-py311", "/usr/bin/python3"))
    cluster = load_cluster(path)
    assert cluster.profile == "rpios-bookworm-py311"
    assert sorted(cluster.jobs) == sorted(JOBS)
    assert all(job.hosts == ("sim0", "sim1") for job in cluster.jobs.values())
    assert state_path(path).name == "cluster.toml.sim.json"
