"""Local workers isolated like separate machines, and stragglers named, for real:

- a script that keeps its output at one fixed /tmp path runs on 2 local workers 10 times
  without a collision (and, with the isolation switched off, collides: the test script
  really detects sharing);
- 3 local workers of a real Keras MWMS job that saves to /tmp/keras_save on every worker,
  one of them throttled (SIGSTOP/SIGCONT duty cycle): every save is intact, the report
  names the slow host, and warns about the tiny shards the job was given."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from build.train import isolation

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(isolation.namespace_problem() is not None,
                                 reason=f"no private mount namespace: {isolation.namespace_problem()}")]

JOBS = Path(__file__).resolve().parent / "jobs"


def _runs(piforge_home: Path) -> list:
    return sorted((piforge_home / "runs").iterdir())


def test_fixed_tmp_path_on_two_local_workers_ten_times(test_cluster, run_piforge, piforge_home: Path,
                                                       monkeypatch) -> None:
    cluster = test_cluster.write(f'''
        [jobs.fixed]
        hosts = ["h0", "h1"]
        [jobs.fixed.params]
        script = "{JOBS / 'fixed_tmp_job.py'}"
        dataset = ""
    ''')
    # First, without isolation: the script must see the collision, or it proves nothing.
    monkeypatch.setenv(isolation.SWITCH, "off")
    shared = run_piforge("train:fixed", f"cluster={cluster}", timeout=300)
    assert shared.returncode != 0 and "collision: worker" in shared.stdout
    monkeypatch.delenv(isolation.SWITCH)
    real = Path("/tmp/piforge_fixed_path/model.txt")
    real.unlink()  # what the shared run left in the real /tmp
    for attempt in range(10):
        result = run_piforge("train:fixed", f"cluster={cluster}", timeout=300)
        assert result.returncode == 0, f"run {attempt + 1} of 10:\n{result.stdout[-3000:]}"
        assert "worker0: /tmp/piforge_fixed_path/model.txt is its own (TMPDIR=/tmp)" in result.stdout
        assert "worker1: /tmp/piforge_fixed_path/model.txt is its own" in result.stdout
    runs = _runs(piforge_home)
    assert len(runs) == 11
    info = json.loads((runs[-1] / "run.json").read_text())
    assert info["isolation"] == isolation.NAMESPACE and info["busy_ports"] == []
    assert not real.exists()  # the isolated runs wrote only to their private /tmp
    # Nothing is left behind: no private dir, no mount.
    assert not list(Path(isolation.PRIVATE_ROOT).glob(f"{runs[-1].name}-*"))
    assert not isolation.mounts_under(isolation.PRIVATE_ROOT)


def test_keras_save_to_tmp_on_three_workers_and_a_throttled_host_is_named(test_cluster, run_piforge,
                                                                          piforge_home: Path) -> None:
    # The wrapper runs inside h2's private /tmp: what it names must be visible there, as on a
    # real host (a checkout or pytest's tmp under /tmp is not), so it lives in h2's home
    # and runs with the deployed venv's Python.
    h2_home = test_cluster.root / "hosts" / "h2"
    h2_home.mkdir(parents=True)
    shutil.copy(JOBS / "throttle.py", h2_home / "throttle.py")
    throttle = f"{test_cluster.venvs['local']}/bin/python {h2_home / 'throttle.py'} 0.75 --"
    cluster = test_cluster.write(f'''
        [jobs.save]
        hosts = ["h0", "h1", "h2"]
        [jobs.save.params]
        script = "{JOBS / 'tmp_save_job.py'}"
        dataset = "fashion_mnist"
    ''', hosts=3, wrappers=[None, None, throttle])  # type: ignore[list-item]
    # 150 samples / 3 workers = 50 per shard = 3 batches of 16: a tiny shard on every worker
    result = run_piforge("train:save", f"cluster={cluster}", "epochs=3", "steps=6", "batch=16", timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    for name in ("worker0", "worker1", "worker2"):
        assert f"{name}: saved to /tmp/keras_save and read back intact" in result.stdout
    (run,) = _runs(piforge_home)
    info = json.loads((run / "run.json").read_text())
    assert info["isolation"] == isolation.NAMESPACE
    assert sorted(info["step_times"]) == ["h0", "h1", "h2"]
    assert all(sorted(info["step_times"][h]["compute_probe"]) == ["1", "2", "3"] for h in info["step_times"])
    print("MEASURE step_times", json.dumps(info["step_times"]))

    report = run_piforge("report", f"run={run.name}")
    assert report.returncode == 0, report.stdout
    named = [line for line in report.stdout.splitlines() if ": straggler: " in line]
    assert len(named) == 1 and ": straggler: h2:" in named[0], report.stdout
    assert sum(": tiny shard: " in line for line in report.stdout.splitlines()) == 3
    text = (run / "report" / "report.md").read_text()
    assert "**straggler: h2:" in text and "50 samples = 3 batch(es) of 16" in text
