"""Edge inference for real: train:mnist on two local workers, export:mnist (TFLite float32
and int8 by the profile's own TensorFlow), infer:mnist (batch-1 latency on both hosts);
and the TF 2.2.0 / Python 3.8 profile's export (float I/O, int8 internals)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FAST = ("dataset=fashion_mnist", "optimizer=adam", "epochs=2", "steps=30", "batch=64")
JOB = '[jobs.mnist]\nhosts = ["h0", "h1"]\n'


def _figures(output: str) -> dict:
    return {line.split("=")[0]: float(line.split("=")[1]) for line in output.splitlines()
            if line.endswith(tuple("0123456789")) and line.split("=")[0].endswith("_accuracy")}


def test_train_export_infer_on_the_local_cluster(test_cluster, run_piforge, piforge_home: Path):
    cluster = test_cluster.write(JOB)
    trained = run_piforge("train:mnist", f"cluster={cluster}", *FAST)
    assert trained.returncode == 0, trained.stdout

    exported = run_piforge("export:mnist", f"cluster={cluster}")
    assert exported.returncode == 0, exported.stdout
    figures = _figures(exported.stdout)
    assert set(figures) >= {"keras_accuracy", "float32_accuracy", "int8_accuracy"}
    assert abs(figures["float32_accuracy"] - figures["keras_accuracy"]) <= 0.002
    assert figures["int8_accuracy"] >= figures["float32_accuracy"] - 0.015
    (run,) = (piforge_home / "runs").iterdir()
    record = json.loads((run / "export" / "export.json").read_text())
    float32, int8 = record["models"]["float32"], record["models"]["int8"]
    assert int8["bytes"] <= 0.30 * float32["bytes"] and int8["io"] == "int8"
    assert record["tensorflow"].startswith("2.21") and record["test_samples"] == 10000
    assert (run / "export" / "int8.tflite").stat().st_size == int8["bytes"]

    inferred = run_piforge("infer:mnist", f"cluster={cluster}", "repeats=50")
    assert inferred.returncode == 0, inferred.stdout
    rows = [line.split() for line in inferred.stdout.splitlines() if line.startswith(("h0 ", "h1 "))]
    for host in ("h0", "h1"):
        cells = {cell for row in rows if row[0] == host for cell in row}
        assert {"float32", "int8", "savedmodel"} <= cells, rows
    summary = json.loads((run / "infer" / "infer.json").read_text())
    assert summary["agreement"]["same_on_every_host"] == {"float32": True, "int8": True}
    assert summary["agreement"]["agreement_rates"]["keras_vs_float32"] >= 0.98
    assert (run / "infer" / "latency.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (run / "infer").glob("h*.json")) == ["h0.json", "h1.json"]

    # a clear error (exit code 12, ExportError, no traceback) for a run without its saved model
    shutil.rmtree(run / "model")
    failed = run_piforge("export:mnist", f"cluster={cluster}", f"run={run.name}")
    assert failed.returncode == 12 and "has no saved model" in failed.stdout, failed.stdout


def test_tf22_export_keeps_float_io_and_runs_in_its_interpreter(test_cluster, run_piforge, piforge_home: Path):
    cluster = test_cluster.write(JOB, profile="local-py38-tf2.2")
    trained = run_piforge("train:mnist", f"cluster={cluster}", *FAST)
    assert trained.returncode == 0, trained.stdout
    exported = run_piforge("export:mnist", f"cluster={cluster}", "calibration=200")
    assert exported.returncode == 0, exported.stdout
    figures = _figures(exported.stdout)
    assert figures["int8_accuracy"] >= figures["float32_accuracy"] - 0.015
    (run,) = (piforge_home / "runs").iterdir()
    record = json.loads((run / "export" / "export.json").read_text())
    assert record["tensorflow"] == "2.2.0" and record["models"]["int8"]["io"] == "float32"
    assert record["models"]["int8"]["bytes"] <= 0.30 * record["models"]["float32"]["bytes"]
    inferred = run_piforge("infer:mnist", f"cluster={cluster}", "repeats=30")
    assert inferred.returncode == 0, inferred.stdout
    assert "tf.lite 2.2.0" in inferred.stdout


def test_catsdogs_exports_and_runs_a_sigmoid_model(test_cluster, cats_dataset: Path, run_piforge,
                                                   piforge_home: Path):
    cluster = test_cluster.write('[jobs.catsdogs]\nhosts = ["h0", "h1"]\n')
    trained = run_piforge("train:catsdogs", f"cluster={cluster}", f"dataset={cats_dataset}",
                          "epochs=2", "steps=8", "batch=16")
    assert trained.returncode == 0, trained.stdout
    exported = run_piforge("export:catsdogs", f"cluster={cluster}", "calibration=50")
    assert exported.returncode == 0, exported.stdout
    figures = _figures(exported.stdout)
    assert abs(figures["float32_accuracy"] - figures["keras_accuracy"]) <= 0.02
    (run,) = (piforge_home / "runs").iterdir()
    record = json.loads((run / "export" / "export.json").read_text())
    assert record["input_shape"] == [64, 64, 3]
    assert record["models"]["int8"]["bytes"] <= 0.30 * record["models"]["float32"]["bytes"]
    inferred = run_piforge("infer:catsdogs", f"cluster={cluster}", "repeats=20")
    assert inferred.returncode == 0, inferred.stdout
