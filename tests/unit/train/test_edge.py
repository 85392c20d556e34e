"""export:/infer: logic without TensorFlow: run choice, clear errors, result parsing, tables.
The real conversion and benchmark: tests/integration/train/test_edge_inference.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from build.cluster.hosts.base import CommandResult
from build.errors import ExportError
from build.train.export import _parse_result, check_inputs, load_export, pick_run
from build.train.infer import agreement, latency_rows, latency_table


def _run(root: Path, name: str, **info: object) -> Path:
    path = root / name
    (path / "model").mkdir(parents=True)
    (path / "run.json").write_text(json.dumps(info))
    return path


def test_latest_successful_run_of_the_job_is_picked(tmp_path: Path) -> None:
    good = _run(tmp_path, "20260101-000001-mnist-w2", job="mnist", status="succeeded")
    _run(tmp_path, "20260101-000002-catsdogs-w2", job="catsdogs", status="succeeded")
    _run(tmp_path, "20260101-000003-mnist-w2", job="mnist", status="failed")
    assert pick_run("mnist", None, tmp_path) == good
    with pytest.raises(ExportError, match="not 'mnist'"):
        pick_run("mnist", "20260101-000002", tmp_path)
    with pytest.raises(ExportError, match="no successful run of job other"):
        pick_run("other", None, tmp_path)


def test_missing_model_and_dataset_are_named(tmp_path: Path) -> None:
    run = _run(tmp_path, "r1", job="mnist", status="failed", dataset="fashion_mnist",
               dataset_file=str(tmp_path / "gone.npz"))
    with pytest.raises(ExportError, match=r"run.json: model: run r1 has no saved model"):
        check_inputs(run, json.loads((run / "run.json").read_text()))
    (run / "model" / "saved_model.pb").write_bytes(b"x")
    with pytest.raises(ExportError, match=r"dataset_file: .*gone.npz is no longer there") as caught:
        check_inputs(run, json.loads((run / "run.json").read_text()))
    assert "./piforge build:dataset-fashion-mnist" in str(caught.value)
    with pytest.raises(ExportError, match="export it first: ./piforge export:mnist run=r1"):
        load_export(run)


def test_converter_failure_is_reported_in_its_own_words() -> None:
    failed = CommandResult("h0", ("python",), 3, 'PIFORGE_EXPORT_ERROR {"stage": "convert int8", '
                           '"message": "ConverterError: op FlexFoo is neither a custom op nor a flex op"}\n', "")
    with pytest.raises(ExportError, match="h0: convert int8 failed: ConverterError: op FlexFoo"):
        _parse_result(failed, "h0")
    crashed = CommandResult("h0", ("python",), 1, "", "Traceback\nImportError: no numpy\n")
    with pytest.raises(ExportError, match="exited 1 without a result: Traceback | ImportError: no numpy"):
        _parse_result(crashed, "h0")
    assert _parse_result(CommandResult("h0", (), 0, 'noise\nPIFORGE_EXPORT {"a": 1}\n', ""), "h0") == {"a": 1}


def _bench(predictions_int8: list) -> dict:
    timing = {"p50_ms": 0.1, "p95_ms": 0.2, "p99_ms": 0.3, "threads_honoured": True}
    return {"runtime": "ai-edge-litert", "runtime_version": "2.3.0",
            "models": {"float32": {"threads_1": timing, "threads_2": timing, "predictions": [1, 2, 3, 4]},
                       "int8": {"threads_1": timing, "threads_2": timing, "predictions": predictions_int8}},
            "keras": dict(timing, tensorflow="2.21.0", threads=2, predictions=[1, 2, 3, 4])}


def test_agreement_and_table() -> None:
    results = {"h0": _bench([1, 2, 3, 0]), "h1": _bench([1, 2, 3, 4])}
    agreed = agreement(results)
    assert agreed["same_on_every_host"] == {"float32": True, "int8": False}
    assert agreed["agreement_rates"] == {"int8_vs_float32": 0.75, "keras_vs_float32": 1.0}
    rows = latency_rows(results)
    assert len(rows) == 2 * (4 + 1) and rows[0][:4] == ["h0", "ai-edge-litert 2.3.0", "float32", "1"]
    assert "p99 ms" in latency_table(results).splitlines()[0]


def _export_script():  # type: ignore[no-untyped-def]
    """jobs/export_tflite.py as a module (it sets PATH/TF env vars on import: restored)."""
    import importlib.util
    import os

    saved = dict(os.environ)
    try:
        spec = importlib.util.spec_from_file_location("export_tflite", Path(__file__).resolve().parents[3]
                                                      / "jobs" / "export_tflite.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module


# TF 2.21's own words for a model using tf.linalg.det (seen in the integration test)
DET_ERROR = ("ConverterError: Could not translate MLIR to FlatBuffer.<unknown>:0: error: loc(callsite(fused["
             '"MatrixDeterminant:", "model/det/MatrixDeterminant@__inference__wrapped_model_100"] at fused['
             '"StatefulPartitionedCall:", "StatefulPartitionedCall"])): \'tf.MatrixDeterminant\' op is neither a '
             "custom op nor a flex op\nerror: failed while converting: 'main':\nSome ops are not supported by the "
             "native TFLite runtime, you can enable TF kernels fallback using TF Select.\n")


def test_converter_words_name_the_op_without_mlir_locations() -> None:
    script = _export_script()
    assert script.failed_op(DET_ERROR) == "tf.MatrixDeterminant"
    words = script.converter_words(DET_ERROR)
    assert words.startswith("ConverterError: 'tf.MatrixDeterminant' op is neither a custom op nor a flex op")
    assert "loc(" not in words and "not supported by the native TFLite runtime" in words
    assert script.failed_op("ValueError: something else") == ""


def test_failed_op_is_said_with_a_hint() -> None:
    failed = CommandResult("h0", ("python",), 3, 'PIFORGE_EXPORT_ERROR {"stage": "convert float32", '
                           '"message": "ConverterError: boom", "op": "tf.MatrixDeterminant"}\n', "")
    with pytest.raises(ExportError, match="h0: convert float32 failed at op tf.MatrixDeterminant: "
                                          "ConverterError: boom") as caught:
        _parse_result(failed, "h0")
    assert "SELECT_TF_OPS" in str(caught.value)


def test_optional_dynamic_model_joins_the_tables() -> None:
    from build.train.infer import model_names

    results = {"h0": _bench([1, 2, 3, 4])}
    results["h0"]["models"]["dynamic"] = dict(results["h0"]["models"]["float32"], predictions=[1, 2, 0, 4])
    agreed = agreement(results)
    assert agreed["same_on_every_host"] == {"float32": True, "int8": True, "dynamic": True}
    assert agreed["agreement_rates"]["dynamic_vs_float32"] == 0.75
    assert [row[2] for row in latency_rows(results)] == ["float32"] * 2 + ["int8"] * 2 + ["dynamic"] * 2 + ["savedmodel"]
    assert model_names({"models": {"dynamic": {}, "int8": {}, "float32": {}}}) == ["float32", "int8", "dynamic"]
