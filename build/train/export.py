"""`doit export:<job>`: a run's saved model as TensorFlow Lite, float32 and int8.

The conversion runs with the TensorFlow that trained the model (the run's profile, as
deployed on the job's first host), through jobs/export_tflite.py. The result sits beside
the run:

    <run>/export/float32.tflite, int8.tflite (and dynamic.tflite with ``dynamic=1``)
    <run>/export/export.json     files (sha256, bytes, I/O type), accuracies, TF version
"""
from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from ..cluster.hosts import open_host
from ..errors import ExportError, TrainingError
from ..hashing import sha256_file
from ..paths import runs_dir
from .datasets import DATASETS
from .jobs import JOBS_DIR
from .launcher import profile_job_env
from .records import list_runs, find_run

Say = Callable[[str], None]
EXPORT_SCRIPT = JOBS_DIR / "export_tflite.py"
MODELS = ("float32", "int8")
OPTIONAL_MODELS = ("dynamic",)   # dynamic-range quantization: int8 weights, float activations
RESULT = "PIFORGE_EXPORT "
FAILURE = "PIFORGE_EXPORT_ERROR "
SAMPLES = "samples.npy"   # a fixed batch of preprocessed test inputs, for infer:


def _say(line: str) -> None:
    print(f"piforge: {line}", flush=True)


def pick_run(job: str, run: Optional[str], root: Optional[Path] = None) -> Path:
    """``run=ID`` (any run of this job), else the job's latest successful run."""
    if run:
        try:
            path = find_run(run, root)
        except TrainingError as error:
            raise ExportError(error.message, hint=error.hint) from None
        info = _run_info(path)
        if info.get("job") != job:
            raise ExportError(f"{path / 'run.json'}: job: is {info.get('job')!r}, not {job!r}")
        return path
    for path in reversed(list_runs(root)):
        info = _run_info(path)
        if info.get("job") == job and info.get("status") == "succeeded":
            return path
    raise ExportError(f"no successful run of job {job} under {root or runs_dir()}",
                      hint=f"train it first: ./piforge train:{job}")


def _run_info(path: Path) -> Dict[str, Any]:
    try:
        return json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ExportError(f"{path / 'run.json'}: unreadable run record: {error}") from None


def check_inputs(run: Path, info: Dict[str, Any]) -> Path:
    """The run's model dir and dataset file exist (said before TensorFlow starts)."""
    model = run / "model"
    if not (model / "saved_model.pb").is_file():
        raise ExportError(f"{run / 'run.json'}: model: run {run.name} has no saved model "
                          f"({model / 'saved_model.pb'} missing; status {info.get('status')!r})",
                          hint="only a run that finished saves its model; train again")
    data = info.get("dataset_file")
    if not data:
        raise ExportError(f"{run / 'run.json'}: dataset_file: run {run.name} recorded no dataset file "
                          "(the job brought its own data), so there is nothing to calibrate and test on")
    if not Path(data).is_file():
        recipe = DATASETS[info["dataset"]].recipe if info.get("dataset") in DATASETS else None
        raise ExportError(f"{run / 'run.json'}: dataset_file: {data} is no longer there "
                          "(garbage-collected from the store?)",
                          hint=f"rebuild it: ./piforge build:{recipe}" if recipe
                          else "put the file back at that path")
    return Path(data)


def export(cluster: Any, job: str, run: Optional[str] = None, *, calibration: int = 300, dynamic: bool = False,
           say: Say = _say, runs_root: Optional[Path] = None) -> Dict[str, Any]:
    """Convert and evaluate; returns the export record (also written to export.json)."""
    names = MODELS + (OPTIONAL_MODELS if dynamic else ())
    path = pick_run(job, run, runs_root)
    info = _run_info(path)
    data = check_inputs(path, info)
    profile = info.get("profile") or cluster.profile
    hosts = info.get("hosts") or [h.name for h in cluster.job_hosts(job)]
    with open_host(cluster.host(hosts[0])) as host:
        python = host.venv_python(profile)
        if not host.run(["test", "-x", python], check=False, timeout=30).ok:
            raise ExportError(f"host {host.name}: no {profile} environment at {python}",
                              hint="run ./piforge deploy (the profile that trained the run converts it)")
        say(f"export: run {path.name} (profile {profile}) on {host.name}, {calibration} calibration samples")
        work = f"{host.workdir}/export/{path.name}"
        host.run(["rm", "-rf", work], timeout=60)
        host.run(["mkdir", "-p", work], timeout=30)
        archive = path / "export-model.tar"
        _tar_dir(path / "model", archive)
        try:
            host.put(EXPORT_SCRIPT, f"{work}/{EXPORT_SCRIPT.name}")
            host.put(archive, f"{work}/model.tar")
        finally:
            archive.unlink()
        host.run(["tar", "-C", work, "-xf", f"{work}/model.tar"], timeout=300)
        remote_data = data if host.spec.transport == "local" else f"{work}/{data.name}"
        if host.spec.transport != "local":
            host.put(data, str(remote_data))
        started = time.monotonic()
        result = host.run([python, "-u", EXPORT_SCRIPT.name, f"model={work}/model", f"data={remote_data}",
                           f"out={work}/out", f"samples={calibration}", f"dynamic={int(dynamic)}"],
                          cwd=work, env=profile_job_env(profile), timeout=3600, check=False)
        measured = _parse_result(result, host.name)
        out = path / "export"
        out.mkdir(exist_ok=True)
        for stale in out.glob("*.tflite"):   # a new export replaces the last one whole
            stale.unlink()
        for name in names:
            host.get(f"{work}/out/{name}.tflite", out / f"{name}.tflite")
        host.get(f"{work}/out/{SAMPLES}", out / SAMPLES)
        host.run(["rm", "-rf", work], check=False, timeout=60)
    record = _record(path, info, profile, data, measured, out, time.monotonic() - started, names)
    (out / "export.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for name in names:
        entry = record["models"][name]
        say(f"{name}.tflite: {entry['bytes']} bytes ({entry['io']} I/O), sha256 {entry['sha256'][:16]}")
    say(f"export record: {out / 'export.json'}")
    print(f"keras_accuracy={record['keras_accuracy']:.4f}", flush=True)
    for name in names:
        print(f"{name}_accuracy={record['models'][name]['accuracy']:.4f}", flush=True)
    return record


def _tar_dir(source: Path, target: Path) -> None:
    with tarfile.open(target, "w") as tar:
        tar.add(str(source), arcname="model")


def _parse_result(result: Any, host: str) -> Dict[str, Any]:
    lines = result.stdout.splitlines()
    for line in reversed(lines):
        if line.startswith(FAILURE):
            failure = json.loads(line[len(FAILURE):])
            at = f" at op {failure['op']}" if failure.get("op") else ""
            raise ExportError(f"{host}: {failure['stage']} failed{at}: {failure['message']}",
                              hint="TFLite has no kernel for that op: change the model, or convert with "
                                   "SELECT_TF_OPS yourself (the runtime then needs the Flex delegate)"
                              if at else None)
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
    raise ExportError(f"{host}: {EXPORT_SCRIPT.name} exited {result.returncode} without a result: {tail}")


def _record(run: Path, info: Dict[str, Any], profile: str, data: Path, measured: Dict[str, Any],
            out: Path, seconds: float, names: Tuple[str, ...] = MODELS) -> Dict[str, Any]:
    models: Dict[str, Any] = {}
    for name in names:
        file = out / f"{name}.tflite"
        models[name] = dict(measured["models"][name], bytes=file.stat().st_size, sha256=sha256_file(file))
    return {
        "run_id": run.name, "job": info.get("job"), "profile": profile, "tensorflow": measured["tensorflow"],
        "dataset": info.get("dataset"), "dataset_file": str(data),
        "test_samples": measured["test_samples"], "representative_samples": measured["representative_samples"],
        "input_shape": measured["input_shape"], "keras_accuracy": measured["keras_accuracy"],
        "train_test_accuracy": info.get("test_accuracy"), "models": models,
        "samples": {"file": SAMPLES, "sha256": sha256_file(out / SAMPLES)},
        "int8_size_ratio": models["int8"]["bytes"] / models["float32"]["bytes"],
        "seconds": round(seconds, 1), "created": time.time(),
    }


def load_export(run: Path) -> Dict[str, Any]:
    """The export record of ``run``; ExportError if the run was never exported."""
    target = run / "export" / "export.json"
    if not target.is_file():
        raise ExportError(f"run {run.name}: no export record ({target} missing)",
                          hint=f"export it first: ./piforge export:{_run_info(run).get('job', '<job>')} run={run.name}")
    return json.loads(target.read_text(encoding="utf-8"))
