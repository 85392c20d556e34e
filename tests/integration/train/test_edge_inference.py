"""Edge inference for real: train:mnist on two local workers, export:mnist (TFLite float32
and int8 by the profile's own TensorFlow), infer:mnist (batch-1 latency on both hosts);
the TF 2.2.0 / Python 3.8 profile's export (float I/O, int8 internals); and the clear
errors: no saved model, dataset gone from the store, a converter failure naming its op."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict

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

    exported = run_piforge("export:mnist", f"cluster={cluster}", "dynamic=1")
    assert exported.returncode == 0, exported.stdout
    figures = _figures(exported.stdout)
    assert set(figures) >= {"keras_accuracy", "float32_accuracy", "int8_accuracy", "dynamic_accuracy"}
    assert figures["dynamic_accuracy"] >= figures["float32_accuracy"] - 0.015
    assert abs(figures["float32_accuracy"] - figures["keras_accuracy"]) <= 0.002
    assert figures["int8_accuracy"] >= figures["float32_accuracy"] - 0.015
    (run,) = (piforge_home / "runs").iterdir()
    record = json.loads((run / "export" / "export.json").read_text())
    float32, int8 = record["models"]["float32"], record["models"]["int8"]
    assert int8["bytes"] <= 0.30 * float32["bytes"] and int8["io"] == "int8"
    assert record["models"]["dynamic"]["io"] == "float32" and record["models"]["dynamic"]["bytes"] < float32["bytes"]
    assert record["tensorflow"].startswith("2.21") and record["test_samples"] == 10000
    assert (run / "export" / "int8.tflite").stat().st_size == int8["bytes"]

    inferred = run_piforge("infer:mnist", f"cluster={cluster}", "repeats=50")
    assert inferred.returncode == 0, inferred.stdout
    rows = [line.split() for line in inferred.stdout.splitlines() if line.startswith(("h0 ", "h1 "))]
    for host in ("h0", "h1"):
        cells = {cell for row in rows if row[0] == host for cell in row}
        assert {"float32", "int8", "dynamic", "savedmodel"} <= cells, rows
    summary = json.loads((run / "infer" / "infer.json").read_text())
    assert summary["agreement"]["same_on_every_host"] == {"float32": True, "int8": True, "dynamic": True}
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
    assert figures["int8_accuracy"] >= figures["float32_accuracy"] - 0.015
    (run,) = (piforge_home / "runs").iterdir()
    record = json.loads((run / "export" / "export.json").read_text())
    assert record["input_shape"] == [64, 64, 3]
    assert record["models"]["int8"]["bytes"] <= 0.30 * record["models"]["float32"]["bytes"]
    inferred = run_piforge("infer:catsdogs", f"cluster={cluster}", "repeats=20")
    assert inferred.returncode == 0, inferred.stdout
    rows = [line.split() for line in inferred.stdout.splitlines() if line.startswith(("h0 ", "h1 "))]
    for host in ("h0", "h1"):
        assert {"float32", "int8", "savedmodel"} <= {cell for row in rows if row[0] == host for cell in row}, rows


# A saved model as train: leaves one, with an op TFLite has no kernel for (tf.linalg.det),
# and a small data file in the jobs' .npz layout.
DET_MODEL = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf
run, data = sys.argv[1], sys.argv[2]
class Det(tf.keras.layers.Layer):
    def call(self, x):
        det = tf.linalg.det(tf.reshape(x[:, :16], (-1, 4, 4)))
        return tf.concat([tf.expand_dims(det, -1), x[:, 1:10]], axis=-1)
inputs = tf.keras.Input((28, 28, 1))
outputs = tf.keras.layers.Dense(10, activation="softmax")(Det()(tf.keras.layers.Flatten()(inputs)))
tf.keras.Model(inputs, outputs).save(os.path.join(run, "model"))
rng = np.random.RandomState(0)
np.savez(data, x_train=rng.randint(0, 255, (40, 28, 28), dtype=np.uint8), y_train=rng.randint(0, 10, 40),
         x_test=rng.randint(0, 255, (20, 28, 28), dtype=np.uint8), y_test=rng.randint(0, 10, 20))
"""


def test_dataset_gone_and_converter_failure_are_clear_errors(test_cluster, run_piforge, piforge_home: Path,
                                                             tf_venvs: Dict[str, Path], tmp_path: Path):
    cluster = test_cluster.write(JOB)
    run = piforge_home / "runs" / "20260101-000000-mnist-w2"
    run.mkdir(parents=True)
    data = tmp_path / "det.npz"
    subprocess.run([str(tf_venvs["local"] / "bin" / "python"), "-c", DET_MODEL, str(run), str(data)],
                   check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    info = {"job": "mnist", "status": "succeeded", "profile": "local", "hosts": ["h0", "h1"],
            "dataset": "fashion_mnist", "dataset_file": str(tmp_path / "gone.npz")}
    (run / "run.json").write_text(json.dumps(info))

    gone = run_piforge("export:mnist", f"cluster={cluster}")   # said before TensorFlow starts
    assert gone.returncode == 12, gone.stdout
    assert "dataset_file: " in gone.stdout and "gone.npz is no longer there" in gone.stdout
    assert "hint: rebuild it: ./piforge build:dataset-fashion-mnist" in gone.stdout

    (run / "run.json").write_text(json.dumps(dict(info, dataset_file=str(data))))
    failed = run_piforge("export:mnist", f"cluster={cluster}")
    assert failed.returncode == 12, failed.stdout
    assert "h0: convert float32 failed at op tf.MatrixDeterminant: ConverterError: " in failed.stdout
    assert "'tf.MatrixDeterminant' op is neither a custom op nor a flex op" in failed.stdout
    assert "SELECT_TF_OPS" in failed.stdout and "Traceback" not in failed.stdout
