"""deploy_stream = "tcp": the deploy stream hops between simulated hosts over plain sockets
the relays open with the deploy's token, hash-checked on every host; the faults the ssh
chain is tested against (a host crashing mid-stream, a hop that cannot connect) end the
same way: the others finish, the rest goes in chunks, nothing is half-installed."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List

import pytest

from build.cluster.config import load_cluster
from build.cluster.deploy import deploy, summary
from build.cluster.fanout import ChunkCache
from build.cluster.wheelhouse import Wheelhouse, load_wheelhouse
from build.store import Store
from cluster_helpers import (SshdKiller, cluster_of, imports_on, make_profile, receiving_stream, slow_link,
                             with_crashing_relay)
from simhosts import SimCluster, sh

pytestmark = pytest.mark.slow


@pytest.fixture
def wheelhouse(build_output: Callable[[str], Path]) -> Wheelhouse:
    path = build_output("wheelhouse-test-x86")
    return load_wheelhouse(path, Store(path.parent))


TCP = 'deploy_stream = "tcp"\n'


def tcp_cluster(sim: SimCluster, directory: Path):  # type: ignore[no-untyped-def]
    """The sim's cluster.toml with the stream over tcp, as a user would set it."""
    cluster = cluster_of(sim, directory, cluster_lines=TCP)
    assert cluster.deploy_stream == "tcp"
    return cluster


def test_the_stream_over_tcp_reaches_every_host(sim_cluster: SimCluster, wheelhouse: Wheelhouse,
                                               piforge_home: Path, tmp_path: Path) -> None:
    for name in "abc":
        sim_cluster.add_host(name)
    cluster = tcp_cluster(sim_cluster, tmp_path)
    lines: List[str] = []
    targets = deploy(cluster, make_profile(), wheelhouse, report=lines.append)
    context = summary(targets) + "\n" + "\n".join(lines)
    assert [t.status for t in targets] == ["installed"] * 3, context
    assert any("streamed to 3 hosts, 0 relayed and 0 direct chunk copies" in line for line in lines), context
    for spec in cluster.hosts:
        assert imports_on(spec, "test", "import wrapt; print(wrapt.__version__)") == "2.5.2"
    for host in sim_cluster.hosts:   # every relay ended: no listener, no partial file left
        assert not list((host.home / "piforge").rglob("*.part"))
        listening = sh("ip", "netns", "exec", host.netns, "ss", "-Htln").stdout.splitlines()
        assert all(line.split()[3].endswith(":22") for line in listening), listening   # sshd only


def test_host_killed_mid_stream_over_tcp(sim_cluster: SimCluster, wheelhouse: Wheelhouse, piforge_home: Path,
                                         tmp_path: Path) -> None:
    """a -> b -> c -> d over tcp; b crashes while c is receiving through it: a finishes
    from the stream, c and d get the rest in chunks, b is failed and untouched."""
    a, b, c, d = (sim_cluster.add_host(n) for n in "abcd")
    slow_link(a)     # the controller -> a hop paces the whole chain
    cluster = tcp_cluster(sim_cluster, tmp_path)
    killer = SshdKiller(b, receiving_stream(c))
    lines: List[str] = []
    targets = deploy(cluster, make_profile(), wheelhouse, report=lines.append,
                     chunk_cache=ChunkCache(piforge_home / "chunks", chunk_bytes=256 * 1024))
    assert killer.join()
    context = summary(targets) + "\n" + "\n".join(lines)
    assert [t.status for t in targets] == ["installed", "FAILED", "installed", "installed"], context
    assert "ssh to root@10.231.0.11" in targets[1].detail, context
    assert "the rest sent in chunks" in targets[2].detail, context
    assert not (b.home / "piforge" / "venvs" / "test" / "current").exists()
    for host in (a, c, d):
        assert not list((host.home / "piforge").rglob("*.part"))


def test_a_hop_that_cannot_connect_falls_back_to_chunks(sim_cluster: SimCluster, wheelhouse: Wheelhouse,
                                                       piforge_home: Path, tmp_path: Path) -> None:
    """b lets in ssh and nothing else (a firewall): a cannot reach b's relay, says so, and
    b and c get the files in chunks over ssh; a's own copy came from the stream."""
    a, b, c = (sim_cluster.add_host(n) for n in "abc")
    for rule in (["-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
                 ["-A", "INPUT", "-p", "tcp", "--syn", "-j", "DROP"]):
        sh("ip", "netns", "exec", b.netns, "iptables", *rule)
    cluster = tcp_cluster(sim_cluster, tmp_path)
    lines: List[str] = []
    started = time.monotonic()
    targets = deploy(cluster, make_profile(), wheelhouse, report=lines.append,
                     chunk_cache=ChunkCache(piforge_home / "chunks", chunk_bytes=256 * 1024))
    context = summary(targets) + "\n" + "\n".join(lines)
    assert [t.status for t in targets] == ["installed"] * 3, context
    assert "stream to the next host failed (cannot connect to 10.231.0.11 port" in targets[0].detail, context
    assert 'deploy_stream = "ssh"' in targets[0].detail, context
    assert any("streamed to 1 hosts" in line for line in lines), context
    assert time.monotonic() - started < 60, context   # a's 3 s connect timeout, not a 60 s stall
    for spec in cluster.hosts:
        assert imports_on(spec, "test", "import six; print(six.__version__)") == "1.17.0"


def test_a_relay_dying_at_start_is_left_out_of_the_chain(sim_cluster: SimCluster, wheelhouse: Wheelhouse,
                                                         piforge_home: Path, tmp_path: Path) -> None:
    """b's relay dies before it listens: over tcp the chain is wired a -> c around it (over
    ssh it would end at a); b alone gets the files in chunks."""
    a, b, c = (sim_cluster.add_host(n) for n in "abc")
    cluster = load_cluster(with_crashing_relay(sim_cluster, b, tmp_path, TCP))
    lines: List[str] = []
    targets = deploy(cluster, make_profile(), wheelhouse, report=lines.append,
                     chunk_cache=ChunkCache(piforge_home / "chunks", chunk_bytes=256 * 1024))
    context = summary(targets) + "\n" + "\n".join(lines)
    assert [t.status for t in targets] == ["installed"] * 3, context
    assert "stream ended here (relay refused)" in targets[1].detail, context
    assert "chunks" not in targets[2].detail, context
    assert any("streamed to 2 hosts" in line for line in lines), context


def test_one_host_is_streamed_over_tcp_too(sim_cluster: SimCluster, wheelhouse: Wheelhouse,
                                           piforge_home: Path, tmp_path: Path) -> None:
    """Over ssh one host gets chunks (a chain of one buys nothing there); over tcp the
    stream still skips ssh's encryption, so even one host is streamed."""
    sim_cluster.add_host("a")
    cluster = tcp_cluster(sim_cluster, tmp_path)
    lines: List[str] = []
    targets = deploy(cluster, make_profile(), wheelhouse, report=lines.append)
    assert [t.status for t in targets] == ["installed"], summary(targets)
    assert any("streamed to 1 hosts, 0 relayed and 0 direct chunk copies" in line for line in lines), lines
