"""The README's main command, for real: the user's MNIST CNN on two local workers with
real TensorFlow, on Fashion-MNIST (offline here), with a run record and plots."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# adam learns in a few dozen steps what the user's SGD at 0.001 needs thousands for.
FAST = ("dataset=fashion_mnist", "optimizer=adam", "epochs=3", "steps=40", "batch=64")


def test_two_workers_reach_80_percent_with_record_and_report(test_cluster, run_piforge, piforge_home: Path):
    cluster = test_cluster.write('''
        [jobs.mnist]
        hosts = ["h0", "h1"]
        [jobs.mnist.params]
        per_worker_batch = 2000
        steps_per_epoch = 100
    ''')
    # profile= is piforge's (it picks the wheelhouse), never passed to the job script
    result = run_piforge("train:mnist", f"cluster={cluster}", "profile=local", *FAST)
    assert result.returncode == 0, result.stdout
    accuracy = [line for line in result.stdout.splitlines() if line.startswith("test_accuracy=")]
    assert accuracy and float(accuracy[-1].split("=")[1]) >= 0.80
    lines = result.stdout.splitlines()
    assert any(ln.startswith("h0 | Epoch 3/3") for ln in lines) and any(ln.startswith("h1 | Epoch 3/3") for ln in lines)

    (run,) = list((piforge_home / "runs").iterdir())
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "succeeded" and info["workers"] == 2
    assert info["params"]["batch"] == "64" and "per_worker_batch" not in info["params"]
    assert info["busy_ports"] == []
    tf0 = json.loads((run / "tf_config" / "h0.json").read_text())
    assert tf0["task"] == {"type": "worker", "index": 0} and len(tf0["cluster"]["worker"]) == 2
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert sorted((e["host"], e["epoch"]) for e in epochs) == [(h, n) for h in ("h0", "h1") for n in (1, 2, 3)]
    assert all(e["samples_per_second"] > 0 and e["step_time"] > 0 for e in epochs)
    # tf-keras's internals took the variables fit() creates: its train step is traced once
    assert {e["host"] for e in events if e.get("name") == "first_step_prepared"} == {"h0", "h1"}
    assert (run / "model" / "saved_model.pb").is_file()
    assert (run / "logs" / "h1.log").read_text().count("Epoch ") == 3
    assert (run / "cluster.toml").read_text() == cluster.read_text()

    report = run_piforge("report", f"run={run.name}")
    assert report.returncode == 0, report.stdout
    for name in ("history.png", "step_time.png"):
        assert (run / "report" / name).read_bytes()[:4] == b"\x89PNG"
    assert "test accuracy" in (run / "report" / "report.md").read_text().lower()
