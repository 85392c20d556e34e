"""What does int8 buy at the edge? Side by side in one run, on this machine, batch 1:

- int8 over float32 TFLite latency (p50, p95), with 1 thread and with every core;
- TFLite float32 over the Keras model's own forward pass (``model(x, training=False)``);
- file size and test accuracy of each model (from the export record).

It runs jobs/bench_tflite.py (the script `infer:` ships) with the profile's Python on an
exported run's files, so the figures are the ones `infer:` would print for one host.

    .venv/bin/python bench/edge_latency.py --run <runs>/<id> --python <venv>/bin/python \
        [--repeats 500 --warmup 50]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "jobs" / "bench_tflite.py"


def model_names(exported: Dict[str, Any]) -> List[str]:
    """float32, int8, then any other exported model (dynamic with export: dynamic=1)."""
    first = [n for n in ("float32", "int8") if n in exported["models"]]
    return first + sorted(n for n in exported["models"] if n not in first)


def run_bench(run: Path, python: str, repeats: int, warmup: int, models: List[str]) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as scratch:
        for name in [f"{m}.tflite" for m in models] + ["samples.npy"]:
            shutil.copyfile(run / "export" / name, Path(scratch) / name)
        if (run / "model").is_dir():
            shutil.copytree(run / "model", Path(scratch) / "model")
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        out = subprocess.run([python, str(BENCH), f"dir={scratch}", f"repeats={repeats}", f"warmup={warmup}",
                              f"models={','.join(models)}"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("PIFORGE_BENCH "):
            return json.loads(line[len("PIFORGE_BENCH "):])
    raise SystemExit(f"edge_latency: bench failed ({out.returncode}): {out.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a run directory with export/ (export: made it)")
    parser.add_argument("--python", required=True, help="the profile's Python (its TFLite runtime and TF)")
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    exported = json.loads((args.run / "export" / "export.json").read_text())
    names = model_names(exported)
    result = run_bench(args.run, args.python, args.repeats, args.warmup, names)
    models = result["models"]
    print(f"{exported['job']} run {exported['run_id']}: {result['runtime']} {result['runtime_version']}, "
          f"{result['machine']}, {result['cores']} cores, batch 1, {args.repeats} runs after {args.warmup} warm-up")
    header = f"{'threads':>7}  {'float32 p50':>11}  {'p95':>8}"
    for name in names[1:]:
        header += f"  {name + ' p50':>11}  {'p95':>8}  {'/f32':>6}"
    print(header)
    for key in sorted((k for k in models["float32"] if k.startswith("threads_")), key=lambda k: int(k[8:])):
        f32 = models["float32"][key]
        threads = key.split("_", 1)[1] + ("" if f32.get("threads_honoured", True) else "*")
        line = f"{threads:>7}  {f32['p50_ms']:>8.3f} ms  {f32['p95_ms']:>5.3f} ms"
        for name in names[1:]:
            other = models[name][key]
            line += (f"  {other['p50_ms']:>8.3f} ms  {other['p95_ms']:>5.3f} ms  "
                     f"{other['p50_ms'] / f32['p50_ms']:>5.2f}x")
        print(line)
    keras = result.get("keras", {})
    if "p50_ms" in keras:
        best = min(models["float32"][k]["p50_ms"] for k in models["float32"] if k.startswith("threads_"))
        print(f"Keras forward pass (TF {keras['tensorflow']}, {keras['threads']} threads): p50 {keras['p50_ms']:.3f} ms"
              f" = {keras['p50_ms'] / best:.1f}x the best TFLite float32 p50 ({best:.3f} ms)")
    else:
        print(f"Keras: {keras.get('skipped', 'not measured')}")
    for name in names:
        entry = exported["models"][name]
        print(f"{name:>7}: {entry['bytes'] / 1e6:.2f} MB, test accuracy {entry['accuracy']:.4f} ({entry['io']} I/O)")
    print(f"   keras: test accuracy {exported['keras_accuracy']:.4f}; int8 size {exported['int8_size_ratio']:.1%} "
          "of float32")
    rows = [v for k, v in models["float32"].items() if k.startswith("threads_")]
    if any(not row.get("threads_honoured", True) for row in rows):
        print("* this runtime takes no thread count (TF 2.2's tf.lite): TFLite's default")
    return 0


if __name__ == "__main__":
    sys.exit(main())
