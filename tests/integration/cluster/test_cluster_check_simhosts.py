"""cluster:check against simulated hosts: the TCP mesh finds a firewalled TF port and
an unreachable host; a fit cluster passes."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from build.cluster.check import check_cluster, check_table
from build.cluster.deploy import deploy
from build.cluster.wheelhouse import load_wheelhouse
from build.store import Store
from cluster_helpers import cluster_of, make_profile
from simhosts import SimCluster, sh

pytestmark = pytest.mark.slow


def test_mesh_finds_blocked_port_and_down_host(sim_cluster: SimCluster, build_output: Callable[[str], Path],
                                               tmp_path: Path) -> None:
    path = build_output("wheelhouse-test-x86")
    a, b, c = (sim_cluster.add_host(n) for n in "abc")
    cluster = cluster_of(sim_cluster, tmp_path)
    profile = make_profile()
    # Before any deploy: reachable, but the profile's imports are missing -> unfit, and says so.
    before = check_cluster(cluster, profile, "smoke")
    assert all(ch.reachable and not ch.fit for ch in before)
    assert "run: doit deploy" in check_table(before)
    deploy(cluster, profile, load_wheelhouse(path, Store(path.parent)), report=lambda line: None)

    fit = check_cluster(cluster, profile, "smoke")
    table = check_table(fit)
    assert all(ch.fit for ch in fit), table
    assert [ch.facts["arch"] for ch in fit] == ["x86_64"] * 3
    assert all(ch.port == "free" and abs(ch.clock_offset or 99) < 5 for ch in fit), table
    assert all(ch.tf == "wrapt 2.5.2, six 1.17.0" for ch in fit), table

    # A firewall on b drops TF traffic: a and c cannot connect to b's TF port.
    sh("ip", "netns", "exec", b.netns, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "12345", "-j", "DROP")
    c.link_down()
    checks = check_cluster(cluster, profile, "smoke")
    table = check_table(checks)
    by_name = {ch.spec.name: ch for ch in checks}
    assert by_name["a"].fit, table
    assert not by_name["b"].fit and [u.split()[0] for u in by_name["b"].unreachable_from] == ["a"], table
    assert "TF port 12345 unreachable from a" in table
    assert not by_name["c"].reachable and "timed out" in by_name["c"].problems[0], table
    assert "UNFIT" in table
