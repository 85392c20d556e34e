"""cluster:check against simulated hosts: the TCP mesh finds a firewalled TF port and
an unreachable host; a fit cluster passes; tcp deploy streams get their ports probed."""
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


def test_tcp_deploy_streams_get_their_ports_probed(sim_cluster: SimCluster, tmp_path: Path) -> None:
    """With deploy_stream = "tcp", the mesh also probes a kernel-chosen port on every host,
    as deploy's relays open one: b lets in only ssh and the TF port, so a and c are told
    they cannot reach it, as a warning (deploy still works, in chunks after the cut)."""
    a, b, c = (sim_cluster.add_host(n) for n in "abc")
    for rule in (["-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "22,12345", "-j", "ACCEPT"],
                 ["-A", "INPUT", "-p", "tcp", "--syn", "-j", "DROP"]):
        sh("ip", "netns", "exec", b.netns, "iptables", *rule)
    checks = check_cluster(cluster_of(sim_cluster, tmp_path, cluster_lines='deploy_stream = "tcp"\n'),
                           make_profile(), "smoke")
    table = check_table(checks)
    by_name = {ch.spec.name: ch for ch in checks}
    assert not by_name["b"].unreachable_from, table          # its TF port is open
    assert sorted(u.split()[0] for u in by_name["b"].stream_unreachable_from) == ["a", "c"], table
    assert f'b: warning: deploy_stream = "tcp": port {by_name["b"].stream_port} unreachable from a' in table
    assert not by_name["a"].warnings and not by_name["c"].warnings, table
    # The default (ssh hops) probes no such port.
    plain = check_cluster(cluster_of(sim_cluster, tmp_path), make_profile(), "smoke")
    assert all(ch.stream_port is None and not ch.warnings for ch in plain), check_table(plain)
