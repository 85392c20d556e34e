"""The user's scale: 35 simulated Pis (network namespaces, real sshd, private homes) through
deploy (streamed through all 35, one host dropping mid-stream), cluster:check (the whole
TCP mesh), TF_CONFIG and a 35-worker launch whose one killed worker stops the whole job,
naming the host, with every port freed.

One test on purpose: bringing up 35 hosts is the expensive part, every stage reuses them.
The MEASURE lines are figures for the log (start-up, memory, stage times), not assertions.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from build.cluster.check import check_cluster, check_table
from build.cluster.deploy import deploy, summary
from build.cluster.fanout import ChunkCache
from build.cluster.tfconfig import render_tf_config, tf_config_lines
from build.cluster.wheelhouse import load_wheelhouse
from build.errors import TrainingError
from build.store import Store
from build.train.launcher import train
from build.train.supervisor import port_open
from cluster_helpers import REPO, SshdKiller, cluster_of, make_profile, receiving_stream, slow_link
from simhosts import SimCluster, SimHost, sh

pytestmark = pytest.mark.slow

HOSTS = 35
PORT = 12345
SCRIPT = REPO / "tests" / "integration" / "train" / "jobs" / "peer_wait_job.py"


def job_pids(hosts: List[SimHost]) -> Dict[str, List[int]]:
    """host -> pids of the job script's interpreter running in its namespace."""
    found: Dict[str, List[int]] = {}
    for host in hosts:
        for pid in host.pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if SCRIPT.name.encode() in argv:
                found.setdefault(host.name, []).append(pid)
    return found


def measure(capsys: pytest.CaptureFixture, line: str) -> None:
    """A MEASURE line straight to the terminal (capsys holds the job's output meanwhile)."""
    with capsys.disabled():
        print(f"MEASURE {line}", flush=True)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.5)


def test_35_hosts_check_deploy_tfconfig_and_fail_fast_launch(
        sim_cluster: SimCluster, build_output: Callable[[str], Path], piforge_home: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    path = build_output("wheelhouse-test-x86")
    wheelhouse = load_wheelhouse(path, Store(path.parent))

    started = time.monotonic()
    hosts = sim_cluster.add_hosts([f"s{i}" for i in range(HOSTS)])
    rss, pss = sim_cluster.memory()
    measure(capsys, f"sim hosts: {HOSTS} up in {time.monotonic() - started:.1f} s; their processes "
          f"RSS {rss / 1e6:.0f} MB total, PSS {pss / 1e6:.0f} MB ({pss / HOSTS / 1e6:.1f} MB per host)")

    names = ", ".join(f'"{h.name}"' for h in hosts)
    cluster = cluster_of(sim_cluster, tmp_path, jobs=f'''
[jobs.mesh]
[jobs.mesh.params]
script = "{SCRIPT}"
idle = 600
wait = 120

[jobs.chiefed]
hosts = [{names}]
roles = {{ s0 = "chief" }}
[jobs.chiefed.params]
script = "{SCRIPT}"
''')
    profile = make_profile()

    # -- deploy: streamed through all 35, every hop verified by hash; s17 drops mid-way --
    dropped, watched = hosts[17], hosts[20]
    slow_link(hosts[0], "4mbit")     # the controller -> s0 hop paces the chain: the drop lands mid-stream
    killer = SshdKiller(dropped, receiving_stream(watched))
    lines: List[str] = []
    started = time.monotonic()
    targets = deploy(cluster, profile, wheelhouse, report=lines.append,
                     chunk_cache=ChunkCache(piforge_home / "chunks", chunk_bytes=256 * 1024))
    measure(capsys, f"deploy to {HOSTS} hosts, one dropped mid-stream: {time.monotonic() - started:.1f} s")
    assert killer.join()
    sh("tc", "qdisc", "del", "dev", hosts[0].veth_bridge_side, "root")
    context = summary(targets) + "\n" + "\n".join(lines[-20:])
    assert [t.host.name for t in targets if t.failed] == [dropped.name], context
    assert all(t.status == "installed" for t in targets if t.host.name != dropped.name), context
    assert all("the rest sent in chunks" in t.detail for t in targets[18:]), context   # the stream ended at s17
    assert any("streamed to 17 hosts" in line for line in lines), context              # s0..s16 got it all streamed
    venvs = dropped.home / "piforge" / "venvs" / "test"
    assert not (venvs / "current").exists() and not list(venvs.glob("v-*")), "the dropped host was touched"
    sim_cluster.start_sshd(dropped)
    back = deploy(cluster, profile, wheelhouse, report=lines.append)
    assert [t.host.name for t in back if t.status == "installed"] == [dropped.name], summary(back)

    started = time.monotonic()
    again = deploy(cluster, profile, wheelhouse, report=lines.append)
    measure(capsys, f"no-op redeploy to {HOSTS} hosts: {time.monotonic() - started:.1f} s")
    assert [(t.status, t.copied) for t in again] == [("up to date", 0)] * HOSTS

    # -- cluster:check: 35 rows, the mesh of every pair; one firewalled TF port --------
    blocked = hosts[7]
    sh("ip", "netns", "exec", blocked.netns, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(PORT),
       "-j", "DROP")
    started = time.monotonic()
    checks = check_cluster(cluster, profile, "mesh", report=lambda line: None)
    measure(capsys, f"cluster:check of {HOSTS} hosts, mesh with one silent port: {time.monotonic() - started:.1f} s")
    table = check_table(checks)
    print(table)
    assert len(checks) == HOSTS and all(ch.reachable for ch in checks), table
    rows = [line for line in table.splitlines() if line.split(" ", 1)[0] in {h.name for h in hosts}]
    assert len(rows) == HOSTS and rows[0].startswith(f"{blocked.name} "), table   # the problem comes first
    by_name = {ch.spec.name: ch for ch in checks}
    assert not by_name[blocked.name].fit
    assert sorted(u.split()[0] for u in by_name[blocked.name].unreachable_from) == \
        sorted(h.name for h in hosts if h is not blocked), table   # every other host probed it
    assert all(ch.fit for ch in checks if ch.spec.name != blocked.name), table
    sh("ip", "netns", "exec", blocked.netns, "iptables", "-D", "INPUT", "-p", "tcp", "--dport", str(PORT),
       "-j", "DROP")

    # -- tfconfig: 35 workers, and chief + 34 workers ----------------------------------
    configs = render_tf_config(cluster, "mesh")
    endpoints = [f"{h.address}:{PORT}" for h in hosts]
    assert list(configs) == [h.name for h in hosts]
    assert all(c["cluster"] == {"worker": endpoints} for c in configs.values())
    assert [c["task"]["index"] for c in configs.values()] == list(range(HOSTS))
    chiefed = render_tf_config(cluster, "chiefed")
    assert chiefed["s0"]["task"] == {"type": "chief", "index": 0}
    assert chiefed["s34"]["task"] == {"type": "worker", "index": 33}
    assert chiefed["s1"]["cluster"] == {"chief": endpoints[:1], "worker": endpoints[1:]}
    assert len(tf_config_lines(cluster, "chiefed")) == HOSTS

    # -- train: 35 workers reach each other; kill -9 one; the whole job stops ----------
    capsys.readouterr()
    said: List[str] = []
    failure: List[Optional[BaseException]] = []

    def launch() -> None:
        try:
            train(cluster, "mesh", {}, say=said.append)
            failure.append(None)
        except BaseException as error:  # handed to the test's thread
            failure.append(error)

    started = time.monotonic()
    runner = threading.Thread(target=launch, name="train-35")
    runner.start()
    try:
        runs = piforge_home / "runs"

        def all_peers_reached() -> bool:
            assert not failure, f"train ended early: {failure} {said}"
            logs = list(runs.glob("*/logs/*.log"))
            return sum("peers reached" in log.read_text(errors="replace") for log in logs) == HOSTS

        wait_until(all_peers_reached, 180, f"all {HOSTS} workers reached their peers")
        measure(capsys, f"launch of {HOSTS} workers until all reached all peers: {time.monotonic() - started:.1f} s")
        victim = hosts[17]
        (pid,) = job_pids([victim])[victim.name]
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        runner.join(timeout=60)
        stopped = time.monotonic() - killed
    finally:
        if runner.is_alive():  # no stray job: the fixture's teardown kills the namespaces anyway
            for pids in job_pids(hosts).values():
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
            runner.join(timeout=60)
    out = capsys.readouterr().out
    print(out[-3000:])
    measure(capsys, f"kill -9 of one worker to the whole job stopped: {stopped:.1f} s")
    assert not runner.is_alive()
    (error,) = failure
    assert isinstance(error, TrainingError), (error, said)
    assert "job mesh failed: worker on s17" in error.message, error.message
    assert stopped < 30, f"the job took {stopped:.1f} s to stop"
    assert " s3 | worker 3: all 34 peers reached" in out          # live logs with host prefixes
    (record,) = runs.iterdir()
    info = json.loads((record / "run.json").read_text())
    assert info["status"] == "failed" and info["failed_host"] == "s17" and info["busy_ports"] == []
    assert info["stopped_in"] < 30
    wait_until(lambda: not job_pids(hosts), 15, "every worker process gone")
    assert [h.name for h in hosts if port_open((h.address, PORT), timeout=1)] == []
