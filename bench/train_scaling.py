"""Does a second worker buy throughput? Side by side in one run, on this machine:

- scaling efficiency = throughput(2 workers, each pinned to its own core) /
  (2 x throughput(1 worker pinned to one core)), at the same per-worker batch
  (goal >= 0.9; the user's two Pis got ~0.5);
- launch overhead: from the launcher's start until every worker has run its first
  training step, minus TensorFlow's import time (goal <= 2 s), now and "before" (TF's own
  gRPC reconnect backoff, the per-element input map, the train step traced twice) side by side, with where each
  worker's seconds went (strategy = its barrier, fit_start = model build, first_step =
  tracing + graph optimisation + the first step itself);
- peak RSS per worker.

Both runs go through the real launcher (staging, TF_CONFIG, supervision, records) on
two local hosts whose Python is wrapped in ``taskset -c N``.

    .venv/bin/python bench/train_scaling.py --python /path/to/tf-venv/bin/python \
        [--batch 2000 --steps 20 --epochs 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build.cluster.config import load_cluster  # noqa: E402
from build.train.launcher import train  # noqa: E402
from build.train.records import load_run  # noqa: E402
from build.train.report import throughput, write_report  # noqa: E402
from figures import add_json_option, write_figures  # noqa: E402

PROFILE = "bench"
JOB_SCRIPT = Path(__file__).resolve().parent.parent / "jobs" / "mnist.py"


# What TensorFlow itself does (gRPC's initial backoff 1 s, TF's cap 1 s): the "before" hosts.
TF_DEFAULT_GRPC = "grpc.initial_reconnect_backoff_ms=1000,grpc.max_reconnect_backoff_ms=1000"


def pinned_host(root: Path, name: str, core: int, python: str, env: str = "") -> Path:
    """A host home whose deployed python runs pinned to one core."""
    home = root / name
    script = home / "venvs" / PROFILE / "current" / "bin" / "python"
    script.parent.mkdir(parents=True)
    script.write_text(f'#!/bin/sh\n{env}exec taskset -c {core} {python} "$@"\n')
    script.chmod(0o755)
    return home


def write_cluster(root: Path, python: str) -> Path:
    text = f'[cluster]\nname = "bench"\ntransport = "local"\nprofile = "{PROFILE}"\n\n'
    for prefix, env, port in (("core", "", 23460), ("old", f"export TF_GRPC_DEFAULT_OPTIONS={TF_DEFAULT_GRPC} PIFORGE_PREPARE_FIRST_STEP=0\n", 23470)):
        for core in (0, 1):
            home = pinned_host(root, f"{prefix}{core}", core, python, env)
            text += (f'[[hosts]]\nname = "{prefix}{core}"\naddress = "127.0.0.1"\ntf_port = {port + core}\n'
                     f'home = "{home}"\n\n')
    text += '[jobs.mnist]\nhosts = ["core0", "core1"]\n\n'
    # "Before": TF's own gRPC backoff, the per-element input map, the train step traced twice.
    text += '[jobs.before]\nhosts = ["old0", "old1"]\n[jobs.before.params]\n'
    text += f'script = "{JOB_SCRIPT}"\nvectorized = "0"\n\n'
    # The control: the same script alone on core 1, to run beside a lone core-0 job.
    text += f'[jobs.alone1]\nhosts = ["core1"]\n[jobs.alone1.params]\nscript = "{JOB_SCRIPT}"\n'
    path = root / "cluster.toml"
    path.write_text(text)
    return path


def phases(run: Dict[str, Any]) -> str:
    """Where a worker's start-up goes: TF import, setup (data, strategy, model), first step."""
    parts = []
    for host in run["hosts"]:
        mine = {e["kind"]: e for e in run["events"] if e["host"] == host}
        if {"tf_imported", "fit_start", "first_step"} <= set(mine):
            imported = mine["tf_imported"]["seconds"]
            fit = mine["fit_start"]["since_start"]
            marks = [(e["name"], e["since_start"]) for e in run["events"]
                     if e["host"] == host and e["kind"] == "phase"]
            marks = [("tf_imported", imported)] + marks + [("fit_start", fit),
                                                           ("first_step", mine["first_step"]["since_start"])]
            marks.sort(key=lambda item: item[1])
            steps = ", ".join(f"{name} +{at - before:.2f}" for (_, before), (name, at) in zip(marks, marks[1:]))
            parts.append(f"{host}: import {imported:.2f} s, then {steps} s")
    return "\n    ".join(parts)


def launch_overhead(run: Dict[str, Any]) -> Optional[float]:
    """Seconds from the launcher's start to the last worker's first step, minus TF import."""
    events = run["events"]
    firsts = [e["t"] for e in events if e["kind"] == "first_step"]
    imports = [e["seconds"] for e in events if e["kind"] == "tf_imported"]
    if len(firsts) < run["workers"] or not imports:
        return None
    return max(firsts) - run["started"] - max(imports)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="a python with TensorFlow (+ tf-keras)")
    parser.add_argument("--batch", type=int, default=2000, help="per-worker batch (the user's: 2000)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--rounds", type=int, default=3,
                        help="launch-overhead rounds (before and after, 1 and 2 workers, alternating)")
    add_json_option(parser)
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("bench: needs 2 cores", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    os.environ.setdefault("PIFORGE_HOME", str(root / "home"))
    cluster = load_cluster(write_cluster(root, args.python))
    params = {"dataset": args.dataset, "batch": str(args.batch), "steps": str(args.steps),
              "epochs": str(args.epochs), "optimizer": "adam"}
    load_before = f"{os.getloadavg()[0]:.1f}"
    say = lambda line: print(f"bench: {line}", flush=True)  # noqa: E731
    # Launch overhead, before/after side by side: short runs, alternating, so drifting load
    # from other processes hits both alike.
    short = dict(params, steps="2", epochs="1")
    overheads: Dict[Tuple[str, int], List[float]] = {}
    last: Dict[Tuple[str, int], Dict[str, Any]] = {}
    for _ in range(args.rounds):
        for job in ("before", "mnist"):
            for workers in (1, 2):
                run = load_run(train(cluster, job, dict(short, workers=str(workers)), say=say).record)
                value = launch_overhead(run)
                if value is not None:
                    overheads.setdefault((job, workers), []).append(value)
                last[(job, workers)] = run
    runs = {}
    for workers in (1, 2):
        result = train(cluster, "mnist", dict(params, workers=str(workers)), say=say)
        runs[workers] = load_run(result.record)
    # Control: two independent single-worker jobs at once, one per core. What they lose
    # against one alone is the machine's (shared caches, memory, neighbours' load), not
    # the cluster's: the ceiling any 2-worker job can reach here.
    with ThreadPoolExecutor(max_workers=2) as pool:
        pair = [pool.submit(train, cluster, job, dict(params, workers="1"), say=say) for job in ("mnist", "alone1")]
        control = sum(throughput(load_run(f.result().record)) or 0.0 for f in pair)
    single, double = throughput(runs[1]), throughput(runs[2])
    print(f"\n(load average before: {load_before}; after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: "
          "other processes on the same cores skew every figure)")
    print("== train scaling (MNIST CNN, per-worker batch %d, %d steps x %d epochs, adam)"
          % (args.batch, args.steps, args.epochs))
    print(f"1 worker  (core 0):        {single:10,.0f} samples/s")
    print(f"2 workers (cores 0 and 1): {double:10,.0f} samples/s")
    if single and double:
        print(f"scaling efficiency:        {double / (2 * single):10.2f}   (goal >= 0.9; user's Pis ~0.5)")
        print(f"control: 2 independent 1-worker jobs at once: {control:,.0f} samples/s = "
              f"{control / (2 * single):.2f} of 2 x alone (this machine's ceiling for any 2-worker job)")
    print(f"== launch overhead until every worker's first step, minus TF import (goal <= 2 s); "
          f"{args.rounds} rounds, median [min-max]")
    for workers in (1, 2):
        row = []
        for job, label in (("before", "before (TF's gRPC backoff, per-element map, 2 traces)"), ("mnist", "now")):
            values = sorted(overheads.get((job, workers), []))
            row.append(f"{label}: " + (f"{statistics.median(values):.2f} s [{values[0]:.2f}-{values[-1]:.2f}]"
                                       if values else "n/a"))
        print(f"{workers} worker(s): " + "; ".join(row))
        for job in ("before", "mnist"):
            if (job, workers) in last:
                print(f"    {job}: {phases(last[(job, workers)])}")
    print("== the scaling runs' own start-up")
    for workers, run in runs.items():
        overhead = launch_overhead(run)
        imports = max(e["seconds"] for e in run["events"] if e["kind"] == "tf_imported")
        print(f"launch overhead, {workers} worker(s): "
              + ("n/a" if overhead is None else f"{overhead:5.2f} s") + f"  (TF import {imports:.2f} s excluded; goal <= 2 s)")
        print(f"    launcher: staging {run['spawned'] - run['started']:.2f} s; " + ", ".join(
            f"{e['host']} process up +{e['t'] - e['seconds'] - run['spawned']:.2f} s"
            for e in run["events"] if e["kind"] == "tf_imported"))
        print(f"    {phases(run)}")
    for workers, run in runs.items():
        rss: Dict[str, float] = {}
        for event in run["events"]:
            if "peak_rss_mb" in event:
                rss[event["host"]] = max(rss.get(event["host"], 0), event["peak_rss_mb"])
        print(f"peak RSS, {workers} worker(s): " + ", ".join(f"{h} {v:,.0f} MB" for h, v in sorted(rss.items())))
    write_figures(args.json, {
        "efficiency": double / (2 * single) if single and double else None,
        "control": control / (2 * single) if single else None,
        "launch_overhead_s": {f"{job} {workers}": statistics.median(values) for (job, workers), values in overheads.items()},
        "peak_rss_mb": max((e["peak_rss_mb"] for run in runs.values() for e in run["events"] if "peak_rss_mb" in e),
                           default=None)})
    report = write_report(",".join(str(run["path"]) for run in runs.values()))
    print(f"report: {report}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
