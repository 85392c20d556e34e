"""`doit infer:<job>`: the exported models' batch-1 latency on every host of the job.

Each host gets the two .tflite files, the Keras SavedModel, a fixed batch of test
inputs and jobs/bench_tflite.py, each checked against its sha256 on the host before
anything runs. Hosts run one after another (a benchmark next to another one measures
neither). Results, beside the run:

    <run>/infer/<host>.json    the host's PIFORGE_BENCH result
    <run>/infer/infer.json     every host, the export's sizes and accuracies
    <run>/infer/latency.png    latency per host per model; accuracy against size
"""
from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..cluster.hosts import open_host
from ..cluster.table import render_table
from ..errors import HostError, InferenceError
from ..hashing import sha256_file
from .export import MODELS, SAMPLES, load_export, pick_run
from .jobs import JOBS_DIR
from .launcher import profile_job_env

Say = Callable[[str], None]
BENCH_SCRIPT = JOBS_DIR / "bench_tflite.py"
RESULT = "PIFORGE_BENCH "


def _say(line: str) -> None:
    print(f"piforge: {line}", flush=True)


def infer(cluster: Any, job: str, run: Optional[str] = None, *, repeats: int = 200, warmup: int = 20,
          say: Say = _say, runs_root: Optional[Path] = None) -> Dict[str, Any]:
    path = _exported_run(job, run, runs_root)
    exported = load_export(path)
    # The hosts run the runtime of the profile deployed on them (a .tflite file is portable:
    # a model exported on x86 runs on the Pis), not necessarily the profile that exported it.
    profile = str(getattr(cluster, "profile", "") or exported["profile"])
    names = [h.name for h in cluster.job_hosts(job)]
    files = _payload(path, exported)
    out = path / "infer"
    out.mkdir(exist_ok=True)
    results: Dict[str, Any] = {}
    try:
        for name in names:
            say(f"infer: {name}: {repeats} timed batch-1 runs per model and thread count")
            results[name] = _bench_host(cluster, name, profile, path.name, files, repeats, warmup)
            for why in results[name].get("runtime_skipped", []):
                say(f"infer: {name}: runtime {why}; ran {results[name]['runtime']} "
                    f"{results[name]['runtime_version']} instead")
            (out / f"{name}.json").write_text(json.dumps(results[name], indent=2, sort_keys=True) + "\n",
                                              encoding="utf-8")
    finally:
        staged = out / "model.tar"   # a copy of model/, only for shipping
        if staged.exists():
            staged.unlink()
    summary = {"run_id": path.name, "job": job, "profile": profile, "export_profile": exported["profile"],
               "hosts": results, "export": exported,
               "agreement": agreement(results), "created": time.time()}
    (out / "infer.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(latency_table(results), flush=True)
    for line in agreement_lines(summary["agreement"]):
        say(line)
    try:
        plot(summary, out / "latency.png")
        say(f"plot: {out / 'latency.png'}")
    except ImportError:
        say("note: no matplotlib in this environment: no plot")
    say(f"infer record: {out / 'infer.json'}")
    return summary


def _exported_run(job: str, run: Optional[str], root: Optional[Path]) -> Path:
    """``run=ID``, else the latest successful run of the job that has an export."""
    if run:
        return pick_run(job, run, root)
    from .records import list_runs

    for candidate in reversed(list_runs(root)):
        if (candidate / "export" / "export.json").is_file():
            info = json.loads((candidate / "run.json").read_text(encoding="utf-8"))
            if info.get("job") == job:
                return candidate
    return pick_run(job, None, root)   # its record then says "no export record"


def _payload(run: Path, exported: Dict[str, Any]) -> Dict[str, Path]:
    """Local file -> name on the host, each verified against the export record first."""
    files: Dict[str, Path] = {BENCH_SCRIPT.name: BENCH_SCRIPT}
    for name in model_names(exported):
        entry = exported["models"][name]
        files[entry["file"]] = _verified(run / "export" / entry["file"], entry["sha256"])
    files[SAMPLES] = _verified(run / "export" / SAMPLES, exported["samples"]["sha256"])
    model_tar = run / "infer" / "model.tar"
    model_tar.parent.mkdir(exist_ok=True)
    if (run / "model").is_dir():
        with tarfile.open(model_tar, "w") as tar:
            tar.add(str(run / "model"), arcname="model")
        files["model.tar"] = model_tar
    return files


def model_names(exported: Dict[str, Any]) -> List[str]:
    """The exported models, float32 and int8 first (then e.g. dynamic)."""
    rest = sorted(n for n in exported["models"] if n not in MODELS)
    return [n for n in MODELS if n in exported["models"]] + rest


def _models_of(result: Dict[str, Any]) -> List[str]:
    return [n for n in MODELS if n in result["models"]] + sorted(n for n in result["models"] if n not in MODELS)


def _verified(path: Path, sha256: str) -> Path:
    if not path.is_file():
        raise InferenceError(f"{path}: missing (the export record lists it)", hint="export again")
    if sha256_file(path) != sha256:
        raise InferenceError(f"{path}: sha256 differs from export.json's", hint="export again")
    return path


def _bench_host(cluster: Any, name: str, profile: str, run_id: str, files: Dict[str, Path],
                repeats: int, warmup: int) -> Dict[str, Any]:
    with open_host(cluster.host(name)) as host:
        python = host.venv_python(profile)
        if not host.run(["test", "-x", python], check=False, timeout=30).ok:
            raise InferenceError(f"host {name}: no {profile} environment at {python}",
                                 hint="run ./piforge deploy first")
        work = f"{host.workdir}/edge/{run_id}"
        try:
            host.run(["rm", "-rf", work], timeout=60)
            host.run(["mkdir", "-p", work], timeout=30)
            for remote, local in files.items():
                host.put(local, f"{work}/{remote}")
            _check_hashes(host, work, files)
            if "model.tar" in files:
                host.run(["tar", "-C", work, "-xf", f"{work}/model.tar"], timeout=300)
            models = ",".join(n[:-len(".tflite")] for n in files if n.endswith(".tflite"))
            result = host.run([python, "-u", BENCH_SCRIPT.name, f"dir={work}", f"repeats={repeats}",
                               f"warmup={warmup}", f"models={models}"], cwd=work, env=profile_job_env(profile),
                              timeout=3600, check=False)
        except HostError as error:
            raise InferenceError(f"host {name}: {error.message}") from None
        finally:
            host.run(["rm", "-rf", work], check=False, timeout=60)
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
    raise InferenceError(f"host {name}: {BENCH_SCRIPT.name} exited {result.returncode}: {tail}")


def _check_hashes(host: Any, work: str, files: Dict[str, Path]) -> None:
    """What arrived is what was sent: sha256sum on the host against the local files."""
    listing = host.run(["sha256sum", *[f"{work}/{n}" for n in files]], timeout=300).stdout
    got = {line.split(None, 1)[1].strip().rsplit("/", 1)[-1]: line.split(None, 1)[0]
           for line in listing.splitlines() if line.strip()}
    for remote, local in files.items():
        if got.get(remote) != sha256_file(local):
            raise InferenceError(f"host {host.name}: {work}/{remote} arrived with sha256 "
                                 f"{got.get(remote)}, sent {sha256_file(local)}")


def agreement(results: Dict[str, Any]) -> Dict[str, Any]:
    """Do all hosts predict the same on the fixed batch (per model), and how often do int8
    and Keras agree with float32?"""
    same: Dict[str, bool] = {}
    first = next(iter(results.values()), None)
    for model in (_models_of(first) if first else []):
        predictions = [r["models"][model]["predictions"] for r in results.values()]
        same[model] = all(p == predictions[0] for p in predictions)
    rates: Dict[str, float] = {}
    if first is not None:
        reference = first["models"]["float32"]["predictions"]
        for model in _models_of(first):
            if model != "float32":
                rates[f"{model}_vs_float32"] = _rate(first["models"][model]["predictions"], reference)
        if "predictions" in first.get("keras", {}):
            rates["keras_vs_float32"] = _rate(first["keras"]["predictions"], reference)
    return {"same_on_every_host": same, "agreement_rates": rates}


def _rate(a: List[int], b: List[int]) -> float:
    return sum(1 for x, y in zip(a, b) if x == y) / max(1, len(b))


def agreement_lines(agreed: Dict[str, Any]) -> List[str]:
    lines = [f"{model}: {'same' if same else 'DIFFERENT'} predictions on every host (fixed batch)"
             for model, same in agreed["same_on_every_host"].items()]
    lines += [f"{name.replace('_', ' ')}: {rate:.1%} of the fixed batch" for name, rate in
              agreed["agreement_rates"].items()]
    return lines


def latency_rows(results: Dict[str, Any]) -> List[List[object]]:
    rows: List[List[object]] = []
    for host, result in results.items():
        for model in _models_of(result):
            for key, timing in sorted(result["models"][model].items()):
                if not key.startswith("threads_"):
                    continue
                threads = key.split("_", 1)[1] + ("" if timing.get("threads_honoured", True) else " (default)")
                rows.append([host, f"{result['runtime']} {result['runtime_version']}", model, threads,
                             f"{timing['p50_ms']:.3f}", f"{timing['p95_ms']:.3f}", f"{timing['p99_ms']:.3f}"])
        keras = result.get("keras", {})
        if "p50_ms" in keras:
            rows.append([host, f"keras (tf {keras['tensorflow']})", "savedmodel", str(keras["threads"]),
                         f"{keras['p50_ms']:.3f}", f"{keras['p95_ms']:.3f}", f"{keras['p99_ms']:.3f}"])
    return rows


def latency_table(results: Dict[str, Any]) -> str:
    return render_table(["host", "runtime", "model", "threads", "p50 ms", "p95 ms", "p99 ms"],
                        latency_rows(results))


def plot(summary: Dict[str, Any], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = summary["hosts"]
    bars: List[tuple] = []   # (label, p50)
    for host, result in results.items():
        for model in _models_of(result):
            for key, timing in sorted(result["models"][model].items()):
                if key.startswith("threads_"):
                    bars.append((f"{host}\n{model} t{key.split('_', 1)[1]}", timing["p50_ms"]))
        if "p50_ms" in result.get("keras", {}):
            bars.append((f"{host}\nkeras", result["keras"]["p50_ms"]))
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.bar(range(len(bars)), [b[1] for b in bars], color="tab:blue")
    left.set_xticks(range(len(bars)))
    left.set_xticklabels([b[0] for b in bars], fontsize=7)
    left.set_yscale("log")   # Keras is ~100x TFLite: a linear axis hides the TFLite bars
    left.set_ylabel("p50 latency, batch 1 (ms, log)")
    left.set_title(f"{summary['job']}: latency per host and model")
    exported = summary["export"]
    for name in model_names(exported):
        entry = exported["models"][name]
        right.scatter(entry["bytes"] / 1e6, entry["accuracy"] * 100, s=60, label=name)
        right.annotate(name, (entry["bytes"] / 1e6, entry["accuracy"] * 100))
    right.set_xlabel("model file (MB)")
    right.set_ylabel("test accuracy (%)")
    right.set_title("accuracy against size")
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)
