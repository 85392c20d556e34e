"""Deploy under faults: a link down, sshd killed mid-copy, a corrupted copy, a failing
import check. Each gives the right summary, never leaves a half-switched venv, and a
rerun completes doing only what is missing."""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Callable, List

import pytest

from build.cluster.config import load_cluster
from build.cluster.deploy import deploy, raise_for_failures, summary
from build.cluster.fanout import ChunkCache
from build.cluster.wheelhouse import Wheelhouse, load_wheelhouse
from build.errors import DeployError
from build.store import Store
from cluster_helpers import (SshdKiller, cluster_of, current_of, imports_on, make_profile, receiving_stream,
                             slow_link, with_crashing_relay)
from simhosts import SimCluster, SimHost

pytestmark = pytest.mark.slow


@pytest.fixture
def wheelhouse(build_output: Callable[[str], Path]) -> Wheelhouse:
    path = build_output("wheelhouse-test-x86")
    return load_wheelhouse(path, Store(path.parent))


def venvs_dir(host: SimHost) -> Path:
    return host.home / "piforge" / "venvs" / "test"


def assert_untouched(host: SimHost) -> None:
    """No active venv and no venv directory left behind by the failed attempt."""
    directory = venvs_dir(host)
    assert not (directory / "current").exists() and not (directory / "current").is_symlink()
    assert not list(directory.glob("v-*")) if directory.exists() else True


def test_link_down(sim_cluster: SimCluster, wheelhouse: Wheelhouse, piforge_home: Path, tmp_path: Path) -> None:
    a, b, c = (sim_cluster.add_host(n) for n in "abc")
    cluster = cluster_of(sim_cluster, tmp_path)
    profile = make_profile()
    b.link_down()
    started = time.monotonic()
    targets = deploy(cluster, profile, wheelhouse, report=lambda line: None)
    table = summary(targets)
    assert [t.status for t in targets] == ["installed", "FAILED", "installed"], table
    assert "ssh to root@10.231.0.11" in targets[1].detail and "timed out" in targets[1].detail, table
    with pytest.raises(DeployError, match=r"deploy failed on 1 of 3 hosts: b\n"):
        raise_for_failures(targets, "deploy")
    assert time.monotonic() - started < 120
    assert_untouched(b)

    b.link_up()
    rerun = deploy(cluster, profile, wheelhouse, report=lambda line: None)
    assert [t.status for t in rerun] == ["up to date", "installed", "up to date"], summary(rerun)
    assert imports_on(cluster.hosts[1], "test", "import wrapt; print(wrapt.__version__)") == "2.5.2"


def test_sshd_killed_mid_copy(sim_cluster: SimCluster, wheelhouse: Wheelhouse, piforge_home: Path,
                              tmp_path: Path) -> None:
    a, _b = sim_cluster.add_host("a"), sim_cluster.add_host("b")
    # Slow a's link so the copy is still running when its sshd dies.
    slow_link(a)
    cluster = cluster_of(sim_cluster, tmp_path)
    profile = make_profile()
    cache = ChunkCache(piforge_home / "chunks", chunk_bytes=64 * 1024)
    incoming = a.home / "piforge" / "wheels" / ".incoming"
    killer = SshdKiller(a, lambda: len([p for p in incoming.glob("*/*") if p.name.isdigit()]) >= 5)
    # The chunk fan-out (what serves any host the stream did not reach): stream=False.
    targets = deploy(cluster, profile, wheelhouse, report=lambda line: None, chunk_cache=cache, stream=False)
    assert killer.join()
    table = summary(targets)
    assert [t.status for t in targets] == ["FAILED", "installed"], table
    assert "sending chunk" in targets[0].detail or "ssh to root@10.231.0.10" in targets[0].detail, table
    assert_untouched(a)
    kept = len([p for p in incoming.glob("*/*") if p.name.isdigit()])
    assert kept >= 5

    sim_cluster.start_sshd(a)
    rerun = deploy(cluster, profile, wheelhouse, report=lambda line: None, chunk_cache=cache, stream=False)
    assert [t.status for t in rerun] == ["installed", "up to date"], summary(rerun)
    # Verified chunks that had arrived before the crash were not sent again.
    assert rerun[0].copied <= wheelhouse.total_bytes - kept * 64 * 1024 + 64 * 1024
    assert imports_on(cluster.hosts[0], "test", "import six; print(six.__version__)") == "1.17.0"


def test_host_killed_mid_stream(sim_cluster: SimCluster, wheelhouse: Wheelhouse, piforge_home: Path,
                                tmp_path: Path) -> None:
    """The streamed chain a -> b -> c -> d loses b while c is receiving through it: a
    finishes from the stream, c and d get the rest in chunks, b is failed and untouched."""
    a, b, c, d = (sim_cluster.add_host(n) for n in "abcd")
    slow_link(a)     # the controller -> a hop paces the whole chain
    cluster = cluster_of(sim_cluster, tmp_path)
    profile = make_profile()
    killer = SshdKiller(b, receiving_stream(c))
    lines: List[str] = []
    targets = deploy(cluster, profile, wheelhouse, report=lines.append,
                     chunk_cache=ChunkCache(piforge_home / "chunks", chunk_bytes=256 * 1024))
    assert killer.join()
    table = summary(targets)
    assert [t.status for t in targets] == ["installed", "FAILED", "installed", "installed"], table + "\n".join(lines)
    assert "ssh to root@10.231.0.11" in targets[1].detail, table
    assert "the rest sent in chunks" in targets[2].detail, table
    assert_untouched(b)
    for host in (a, c, d):
        assert not list((host.home / "piforge").rglob("*.part")) and not list((host.home / "piforge").rglob("in-*"))

    sim_cluster.start_sshd(b)
    rerun = deploy(cluster, profile, wheelhouse, report=lambda line: None)
    assert [t.status for t in rerun] == ["up to date", "installed", "up to date", "up to date"], summary(rerun)
    assert imports_on(cluster.hosts[1], "test", "import six; print(six.__version__)") == "1.17.0"


@pytest.mark.parametrize("transport", ["ssh", "tcp"])
def test_a_slow_link_is_named_as_what_paced_the_stream(sim_cluster: SimCluster, wheelhouse: Wheelhouse,
                                                      piforge_home: Path, tmp_path: Path, transport: str) -> None:
    """b's link is 2 Mbit, the others' are not: the whole chain a -> b -> c -> d goes at
    that pace (forwarding is synchronous), and deploy says which hop it was, whichever
    transport the hops use."""
    a, b, c, d = (sim_cluster.add_host(n) for n in "abcd")
    slow_link(b)     # into b
    cluster = cluster_of(sim_cluster, tmp_path)
    lines: List[str] = []
    targets = deploy(cluster, make_profile(), wheelhouse, report=lines.append, stream_transport=transport)
    assert [t.status for t in targets] == ["installed"] * 4, summary(targets)
    paced = [line for line in lines if "went at the pace of" in line]
    assert paced and paced[0].startswith("deploy: the stream went at the pace of the hop a -> b (a slow link, "
                                         "or either host's NIC; a waited to send"), "\n".join(lines)


def test_relay_dying_at_start_costs_no_wait(sim_cluster: SimCluster, wheelhouse: Wheelhouse, piforge_home: Path,
                                           tmp_path: Path) -> None:
    """b's relay dies at once: a must not wait out its stall time (60 s) on the hop to b's
    FIFO, which never appears; b and c get the files in chunks."""
    a, b, c = (sim_cluster.add_host(n) for n in "abc")
    cluster = load_cluster(with_crashing_relay(sim_cluster, b, tmp_path))
    lines: List[str] = []
    started = time.monotonic()
    targets = deploy(cluster, make_profile(), wheelhouse, report=lines.append,
                     chunk_cache=ChunkCache(piforge_home / "chunks", chunk_bytes=256 * 1024))
    took = time.monotonic() - started
    context = summary(targets) + "\n" + "\n".join(lines)
    assert [t.status for t in targets] == ["installed"] * 3, context
    assert "stream ended here (relay refused)" in targets[1].detail and "upstream" in targets[2].detail, context
    assert any("streamed to 1 hosts" in line for line in lines), context
    assert took < 40, context   # the hop to b was ended by the controller, not by a's 60 s stall


CORRUPTING_SCP = """#!/bin/bash
# Test double of the network: the first $PFC_CORRUPT_TIMES scp runs that carry chunks
# deliver every chunk with one byte flipped.
count_file="$PFC_CORRUPT_DIR/count"
exec 9>"$PFC_CORRUPT_DIR/lock"
flock 9
count=$(cat "$count_file" 2>/dev/null || echo 0)
args=()
after=0
corrupt=0
for arg in "$@"; do
  if [ "$after" = 1 ] && [ "$count" -lt "$PFC_CORRUPT_TIMES" ] && [[ "$arg" == */chunks/* ]]; then
    corrupt=1
    bad="$PFC_CORRUPT_DIR/bad-$$-${#args[@]}"
    cp "$arg" "$bad"
    printf '\\xff' | dd of="$bad" bs=1 seek=100 conv=notrunc 2>/dev/null
    args+=("$bad")
    continue
  fi
  [ "$arg" = "--" ] && after=1
  args+=("$arg")
done
[ "$corrupt" = 1 ] && echo $((count + 1)) > "$count_file"
flock -u 9
exec /usr/bin/scp "${args[@]}"
"""


@pytest.fixture
def corrupting_scp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], Path]:
    """Put an scp that corrupts the first N chunk uploads first on the controller's PATH."""
    directory = tmp_path / "corrupting-bin"
    directory.mkdir()
    script = directory / "scp"
    script.write_text(CORRUPTING_SCP)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{directory}:{os.environ['PATH']}")
    monkeypatch.setenv("PFC_CORRUPT_DIR", str(directory))

    def times(count: int) -> Path:
        monkeypatch.setenv("PFC_CORRUPT_TIMES", str(count))
        return directory / "count"
    return times


def test_corrupted_in_transit(sim_cluster: SimCluster, wheelhouse: Wheelhouse, piforge_home: Path,
                              tmp_path: Path, corrupting_scp: Callable[[int], Path],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = sim_cluster.add_host("a"), sim_cluster.add_host("b")
    cluster = cluster_of(sim_cluster, tmp_path)
    profile = make_profile()
    cache = ChunkCache(piforge_home / "chunks", chunk_bytes=256 * 1024)

    # Every direct upload corrupted: caught on the host, retried, then given up; nothing switched.
    counter = corrupting_scp(1000)
    targets = deploy(cluster, profile, wheelhouse, report=lambda line: None, chunk_cache=cache, relay=False)
    assert [t.status for t in targets] == ["FAILED", "FAILED"], summary(targets)
    assert all("hash mismatch" in t.detail for t in targets), summary(targets)
    assert int(counter.read_text()) >= 6          # each host gave up after 3 corrupted copies of one chunk
    assert_untouched(a)
    assert_untouched(b)

    # One corrupted upload: detected by the hash check on the host, re-sent, deploy succeeds.
    counter.write_text("0")
    corrupting_scp(1)
    rerun = deploy(cluster, profile, wheelhouse, report=lambda line: None, chunk_cache=cache, stream=False)
    assert [t.status for t in rerun] == ["installed", "installed"], summary(rerun)
    assert "arrived corrupted; re-sent" in (rerun[0].detail + rerun[1].detail)
    for spec in cluster.hosts:
        assert imports_on(spec, "test", "import wrapt; print(wrapt.__version__)") == "2.5.2"


def test_failing_import_check_keeps_the_active_venv(sim_cluster: SimCluster, wheelhouse: Wheelhouse,
                                                   build_output: Callable[[str], Path], tmp_path: Path) -> None:
    for name in ("a", "b"):
        sim_cluster.add_host(name)
    cluster = cluster_of(sim_cluster, tmp_path)
    good = deploy(cluster, make_profile(), wheelhouse, report=lambda line: None)
    assert [t.status for t in good] == ["installed", "installed"], summary(good)

    second_path = build_output("wheelhouse-test-x86-b")
    second = load_wheelhouse(second_path, Store(second_path.parent))
    broken = make_profile(check_import="six, wrapt")     # wrapt is not in the second wheelhouse
    targets = deploy(cluster, broken, second, report=lambda line: None)
    table = summary(targets)
    assert [t.status for t in targets] == ["FAILED", "FAILED"], table
    assert all("check import failed: six, wrapt" in t.detail for t in targets), table
    assert all("No module named 'wrapt'" in t.detail for t in targets), table
    for host, spec in zip(sim_cluster.hosts, cluster.hosts):
        assert current_of(spec, "test") == f"v-{wheelhouse.key}"           # still the old, working venv
        assert not (venvs_dir(host) / f"v-{second.key}").exists()           # the failed one is gone
        assert imports_on(spec, "test", "import wrapt; print(wrapt.__version__)") == "2.5.2"

    fixed = deploy(cluster, make_profile(check_import="six"), second, report=lambda line: None)
    assert [t.status for t in fixed] == ["installed", "installed"], summary(fixed)
    assert current_of(cluster.hosts[0], "test") == f"v-{second.key}"
    assert (venvs_dir(sim_cluster.hosts[0]) / "previous").resolve().name == f"v-{wheelhouse.key}"
