"""Both built-in jobs on the user's own TensorFlow: Python 3.8 + tensorflow-cpu 2.2.0
(the local-py38-tf2.2 profile), two workers each."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
PROFILE = "local-py38-tf2.2"


def test_mnist_on_tf22(test_cluster, run_piforge, piforge_home: Path):
    cluster = test_cluster.write('[jobs.mnist]\nhosts = ["h0", "h1"]\n', profile=PROFILE)
    result = run_piforge("train:mnist", f"cluster={cluster}", "dataset=fashion_mnist", "optimizer=adam",
                         "epochs=3", "steps=40", "batch=64")
    assert result.returncode == 0, result.stdout
    assert float(result.stdout.split("test_accuracy=")[-1].split()[0]) >= 0.80
    (run,) = (piforge_home / "runs").iterdir()
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert {e["version"] for e in events if e["kind"] == "tf_imported"} == {"2.2.0"}
    # TF 2.2's Keras internals took the variables fit() creates: its train step is traced once
    assert {e["host"] for e in events if e.get("name") == "first_step_prepared"} == {"h0", "h1"}
    assert (run / "model" / "saved_model.pb").is_file()


def test_catsdogs_on_tf22(test_cluster, cats_dataset: Path, run_piforge):
    cluster = test_cluster.write('[jobs.catsdogs]\nhosts = ["h0", "h1"]\n', profile=PROFILE)
    result = run_piforge("train:catsdogs", f"cluster={cluster}", f"dataset={cats_dataset}",
                         "epochs=2", "steps=8", "batch=16")
    assert result.returncode == 0, result.stdout
    assert "test_accuracy=" in result.stdout
