#!/usr/bin/env python3
"""Batch-1 latency of exported TFLite models on this host, and of the Keras model itself.

    python bench_tflite.py dir=DIR [repeats=200] [warmup=20] [models=float32,int8]

DIR holds <model>.tflite for each of ``models`` (e.g. also dynamic), samples.npy (a fixed float32 batch, inputs as the
model takes them) and optionally model/ (the SavedModel, for the Keras comparison). The
runtime is the first of ai_edge_litert, tflite_runtime, tensorflow.lite that imports and
loads a model (tried in a child process first: see PROBE).
Each model runs ``warmup`` untimed invokes, then ``repeats`` timed ones, with 1 thread and
with every core; the last stdout line is ``PIFORGE_BENCH {json}``. Runs on Python 3.8
(TF 2.2.0) and on current Python with ai-edge-litert.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
from typing import Any, Dict, List, Tuple

if importlib.util.find_spec("tf_keras") is not None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULTS = {"dir": ".", "repeats": "200", "warmup": "20", "models": "float32,int8"}


# Creating one Interpreter in a child first: a runtime that dies by a signal (ai-edge-litert
# 2.3.0's aarch64 wheel segfaults in Interpreter() under qemu-user; TF's own tf.lite does not)
# is skipped for the next one, and the result says why, instead of the whole benchmark dying.
PROBE = "import sys, importlib; m = importlib.import_module(sys.argv[1]); m.Interpreter(model_path=sys.argv[2])"
CANDIDATES = (("ai-edge-litert", "ai_edge_litert", "ai_edge_litert.interpreter"),
              ("tflite-runtime", "tflite_runtime", "tflite_runtime.interpreter"))


def _probe(module: str, model: str) -> str:
    """'' if ``module``'s Interpreter loads ``model`` in a child process, else why not."""
    import subprocess

    try:
        done = subprocess.run([sys.executable, "-c", PROBE, module, model], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        return "Interpreter() did not return within 600 s"
    if done.returncode == 0:
        return ""
    if done.returncode < 0:
        return f"Interpreter() died by signal {-done.returncode}"
    tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
    return f"Interpreter() failed: {tail[0] if tail else f'exit {done.returncode}'}"


def runtime(model: str) -> Tuple[str, str, Any, List[str]]:
    """(name, version, Interpreter class, runtimes skipped and why) of the first TFLite
    runtime that imports and loads ``model``."""
    import importlib

    skipped: List[str] = []
    for label, package, module in CANDIDATES:
        if importlib.util.find_spec(package) is None:
            continue
        version = getattr(importlib.import_module(package), "__version__", "?")
        why = _probe(module, model)
        if why:
            skipped.append(f"{label} {version}: {why}")
            continue
        return label, version, importlib.import_module(module).Interpreter, skipped
    import tensorflow as tf

    return "tf.lite", tf.__version__, tf.lite.Interpreter, skipped


def percentiles(samples: List[float]) -> Dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000.0

    return {"p50_ms": round(at(0.50), 4), "p95_ms": round(at(0.95), 4), "p99_ms": round(at(0.99), 4),
            "mean_ms": round(sum(ordered) / len(ordered) * 1000.0, 4), "runs": len(ordered)}


class Model:
    """One interpreter: float inputs in, scores (dequantized) out, at batch 1."""

    def __init__(self, interpreter_class: Any, path: str, threads: int) -> None:
        import numpy as np

        self.np = np
        try:
            self.interpreter = interpreter_class(model_path=path, num_threads=threads)
            self.threads_honoured = True
        except TypeError:  # TF 2.2's Interpreter takes no num_threads: TFLite's default (1)
            self.interpreter = interpreter_class(model_path=path)
            self.threads_honoured = False
        self.interpreter.allocate_tensors()
        self.given = self.interpreter.get_input_details()[0]
        self.taken = self.interpreter.get_output_details()[0]

    def quantize(self, x: Any) -> Any:
        np = self.np
        if self.given["dtype"] == np.float32:
            return x.astype(np.float32)
        scale, zero = self.given["quantization"]
        info = np.iinfo(self.given["dtype"])
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(self.given["dtype"])

    def scores(self, sample: Any) -> Any:
        self.interpreter.set_tensor(self.given["index"], sample)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.taken["index"])
        if self.taken["dtype"] != self.np.float32:
            scale, zero = self.taken["quantization"]
            out = (out.astype(self.np.float32) - zero) * scale
        return out


def labels_of(scores: Any) -> List[int]:
    import numpy as np

    scores = np.asarray(scores)
    if scores.ndim == 1 or scores.shape[-1] == 1:
        return [int(v) for v in (scores.reshape(-1) > 0.5)]
    return [int(v) for v in scores.argmax(axis=-1)]


def time_calls(call: Any, inputs: List[Any], warmup: int, repeats: int) -> List[float]:
    for index in range(warmup):
        call(inputs[index % len(inputs)])
    samples = []
    for index in range(repeats):
        started = time.perf_counter()
        call(inputs[index % len(inputs)])
        samples.append(time.perf_counter() - started)
    return samples


def bench_tflite(directory: str, x: Any, warmup: int, repeats: int, models: List[str]) -> Dict[str, Any]:
    name, version, interpreter_class, skipped = runtime(os.path.join(directory, f"{models[0]}.tflite"))
    cores = os.cpu_count() or 1
    result: Dict[str, Any] = {"runtime": name, "runtime_version": version, "models": {}}
    if skipped:
        result["runtime_skipped"] = skipped
    for model_name in models:
        entry: Dict[str, Any] = {}
        for threads in sorted({1, cores}):
            model = Model(interpreter_class, os.path.join(directory, f"{model_name}.tflite"), threads)
            inputs = [model.quantize(x[i:i + 1]) for i in range(len(x))]
            samples = time_calls(model.scores, inputs, warmup, repeats)
            entry[f"threads_{threads}"] = dict(percentiles(samples), threads_honoured=model.threads_honoured)
            if threads == 1:
                entry["predictions"] = [labels_of(model.scores(sample))[0] for sample in inputs]
                entry["input_dtype"] = str(model.given["dtype"].__name__)
        result["models"][model_name] = entry
    return result


def bench_keras(directory: str, x: Any, warmup: int, repeats: int) -> Dict[str, Any]:
    model_dir = os.path.join(directory, "model")
    if not os.path.isdir(model_dir):
        return {"skipped": "no Keras model shipped"}
    try:
        import tensorflow as tf
    except ImportError:
        return {"skipped": "no TensorFlow on this host (a runtime-only device)"}
    model = tf.keras.models.load_model(model_dir, compile=False)
    inputs = [tf.constant(x[i:i + 1]) for i in range(len(x))]
    samples = time_calls(lambda t: model(t, training=False), inputs, warmup, repeats)
    predictions = [labels_of(model(t, training=False).numpy())[0] for t in inputs]
    return dict(percentiles(samples), tensorflow=tf.__version__, threads=os.cpu_count() or 1,
                predictions=predictions)


def main() -> None:
    params = dict(DEFAULTS)
    for argument in sys.argv[1:]:
        key, sep, value = argument.partition("=")
        if not sep or key not in DEFAULTS:
            raise SystemExit(f"bench: bad argument {argument!r}: expected key=value, key one of {', '.join(DEFAULTS)}")
        params[key] = value
    import numpy as np

    x = np.load(os.path.join(params["dir"], "samples.npy")).astype(np.float32)
    warmup, repeats = int(params["warmup"]), int(params["repeats"])
    models = [m for m in params["models"].split(",") if m]
    result = bench_tflite(params["dir"], x, warmup, repeats, models)
    result["keras"] = bench_keras(params["dir"], x, warmup, repeats)
    result.update(cores=os.cpu_count() or 1, machine=platform.machine(), python=platform.python_version(),
                  batch=1, warmup=warmup, repeats=repeats)
    print("PIFORGE_BENCH " + json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
