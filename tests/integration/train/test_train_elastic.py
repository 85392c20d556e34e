"""Elastic training with real TensorFlow workers: a worker killed (kill -9) mid-epoch, or
a host whose link goes down, costs one restart on the survivors (or a spare), not the job.

Each test checks several things at once (CI budget): the job finishes every epoch, the
accuracy, the record's attempts (members, TF_CONFIGs, cause, resume epoch, time lost),
the checkpoint's journey by sha256, and that nothing is left running."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from processes import worker_pids

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
# 5 epochs of 40 steps: an epoch lasts seconds, so the kill lands inside epoch 2.
JOB = ("dataset=fashion_mnist", "optimizer=adam", "epochs=5", "steps=40", "batch=64")


def events_of(run: Path) -> List[Dict[str, Any]]:
    path = run / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_checkpoint(home: Path, epoch: int, process: "subprocess.Popen[str]", timeout: float = 240) -> Path:
    """The run whose chief has just backed up ``epoch`` (so the next epoch is running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for events in (home / "runs").glob("*/events.jsonl"):
            if any(e["kind"] == "checkpoint" and e["epoch"] == epoch for e in events_of(events.parent)):
                return events.parent
        time.sleep(0.2)
    process.kill()
    finish(process)
    raise AssertionError(f"no checkpoint of epoch {epoch} within {timeout} s")


def accuracy_of(out: str) -> float:
    return float(out.split("test_accuracy=")[-1].split()[0])


def finish(process: "subprocess.Popen[str]", timeout: float = 400) -> str:
    out, _ = process.communicate(timeout=timeout)
    print(out[-8000:])
    return out


def check_resumed_record(run: Path, *, members: List[str], failed: str, cause: str) -> Dict[str, Any]:
    """Two attempts; the second on ``members`` from the epoch the first backed up last; the
    chief's epochs 1..5 each exactly once across the attempts."""
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "succeeded", info
    first, second = info["attempts"]
    assert first["status"] == "failed" and first["failed_hosts"] == [failed] and cause in first["cause"]
    assert second["members"] == members and second["status"] == "succeeded"
    assert second["resumed_from_epoch"] == first["checkpoint_epoch"] >= 1
    assert second["checkpoint"]["sha256"] and len(second["tf_configs"]) == len(members)
    assert first["work_lost_seconds"] is not None and first["recovery_seconds"] > 0
    chief_epochs = sorted((e["attempt"], e["epoch"]) for e in events_of(run)
                          if e["kind"] == "epoch" and e["host"] == members[0])
    resumed = second["resumed_from_epoch"]
    assert chief_epochs == [(1, n) for n in range(1, resumed + 1)] + [(2, n) for n in range(resumed + 1, 6)]
    assert any(e["kind"] == "resumed" and e["attempt"] == 2 for e in events_of(run))
    return info


@pytest.mark.parametrize("profile", ["local", "local-py38-tf2.2"])
def test_kill_one_of_three_finishes_on_the_two_survivors(profile: str, test_cluster, piforge_home: Path,
                                                         start_piforge, run_piforge):
    cluster = test_cluster.write('[jobs.mnist]\nhosts = ["h0", "h1", "h2"]\nmax_restarts = 1\nmin_workers = 2\n',
                                 hosts=3, profile=profile)
    process = start_piforge("train:mnist", f"cluster={cluster}", *JOB)
    run = wait_for_checkpoint(piforge_home, 1, process)
    victims = worker_pids(test_cluster.root / "hosts" / "h1")
    assert victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    out = finish(process)
    assert process.returncode == 0, out
    assert accuracy_of(out) >= 0.80
    assert "restart 1 of 1: h1 failed (worker on h1 killed by signal 9 (SIGKILL))" in out
    info = check_resumed_record(run, members=["h0", "h2"], failed="h1", cause="killed by signal 9")
    # keep = "global_batch": 3 x 64 before, 2 x 96 after
    assert info["attempts"][1]["params"]["batch"] == 96
    assert info["attempts"][1]["tf_configs"]["h2"]["task"] == {"type": "worker", "index": 1}
    assert (run / "model" / "saved_model.pb").is_file()
    assert worker_pids(test_cluster.root / "hosts") == []
    if profile == "local":  # the report marks the restart (plots need no second TF run)
        report = run_piforge("report", f"run={run}")
        assert report.returncode == 0
        text = (run / "report" / "report.md").read_text()
        assert "restart 1" in text and "time lost" in text


def test_too_few_survivors_fails_at_once(test_cluster, run_piforge, piforge_home: Path):
    """min_workers = 2 of 2: the first failure leaves too few, so no restart is tried."""
    script = test_cluster.root / "dies.py"
    script.write_text("import json, os, sys, time\n"
                      "task = json.loads(os.environ['TF_CONFIG'])['task']\n"
                      "sys.exit(3) if task['index'] == 1 else time.sleep(600)\n")
    cluster = test_cluster.write(f'''
        [jobs.dies]
        hosts = ["h0", "h1"]
        max_restarts = 3
        min_workers = 2
        [jobs.dies.params]
        script = "{script}"
    ''')
    started = time.monotonic()
    result = run_piforge("train:dies", f"cluster={cluster}", timeout=120)
    assert result.returncode != 0
    assert "too few workers to go on: 1 left (h0) after h1 failed, min_workers = 2" in result.stdout
    assert "worker on h1 exited with code 3" in result.stdout
    (run,) = (piforge_home / "runs").iterdir()
    info = json.loads((run / "run.json").read_text())
    assert len(info["attempts"]) == 1 and info["status"] == "failed"
    assert time.monotonic() - started < 60


# -- simulated Pis: network namespaces, real sshd, private homes (no shared filesystem) -----
@pytest.fixture
def sim_hosts(tmp_path: Path):  # type: ignore[no-untyped-def]
    from prerequisites import require_root, require_tool

    require_root()
    for tool in ("sshd", "ssh", "scp", "ip", "unshare"):
        require_tool(tool)
    from build.sim.hosts import SimCluster

    with SimCluster(tmp_path / "sim") as sim:
        for name in ("s0", "s1", "s2"):
            sim.add_host(name)
        yield sim


def sim_python(tf_venv: Path, where: Path) -> Path:
    """The TF venv's packages under the system Python: the test venvs' own Python lives
    in /root/.pyenv, which every simulated host's private home hides."""
    import glob

    system = Path("/usr/bin/python3")
    if not system.exists():
        pytest.fail("/usr/bin/python3 missing (Debian's python3)")
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(where)], check=True)
    (site,) = glob.glob(str(tf_venv / "lib" / "python3.*" / "site-packages"))
    (mine,) = glob.glob(str(where / "lib" / "python3.*" / "site-packages"))
    (Path(mine) / "piforge-tf.pth").write_text(site + "\n")
    return where / "bin" / "python"


@pytest.mark.root
def test_link_down_swaps_in_the_spare(sim_hosts, tf_venvs, piforge_home: Path, start_piforge):
    """s1's link goes down mid-epoch 2: the job resumes on s0 and the spare s2, the chief's
    backup shipped over ssh into s2's private home, and finishes."""
    python = sim_python(tf_venvs["local"], piforge_home / "sim-venv")   # outside /root: every host sees it
    cluster = piforge_home / "sim-cluster.toml"
    cluster.write_text(sim_hosts.cluster_toml(profile="local", job=False)
                       + '[jobs.mnist]\nhosts = ["s0", "s1"]\nspares = ["s2"]\nmax_restarts = 1\n'
                       + "min_workers = 2\n")
    process = start_piforge("train:mnist", f"cluster={cluster}", f"python={python}", *JOB)
    run = wait_for_checkpoint(piforge_home, 1, process)
    sim_hosts.hosts[1].link_down()
    out = finish(process)
    assert process.returncode == 0, out
    assert accuracy_of(out) >= 0.80
    assert "(spare s2 in)" in out
    info = check_resumed_record(run, members=["s0", "s2"], failed="s1", cause="")
    first, second = info["attempts"]
    assert first["replaced_by"] == ["s2"]
    assert second["tf_configs"]["s2"]["cluster"]["worker"] == ["10.231.0.10:12345", "10.231.0.12:12345"]
    # The spare's copy of the checkpoint arrived in its own home (the hosts share no files).
    assert any(e["kind"] == "resumed" and e["host"] == "s2" for e in events_of(run))
