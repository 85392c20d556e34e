"""The largest real MultiWorkerMirroredStrategy job this one machine holds (not CI: too heavy).

N local workers of the MNIST CNN (the built-in ``mnist`` job, real TensorFlow, real
collectives over loopback gRPC) through the real launcher, at a small per-worker batch for
a few steps. TF 2.2.0 on Python 3.8 (profile local-py38-tf2.2) is the lightest runtime.
For each N it prints: time to the last worker's first step (and minus TF import), TF
import times, peak RSS per worker, and how much of the machine's memory the job took
(MemAvailable before minus its lowest during the run). Sizes are tried in the order given;
a size is skipped when its estimate (1.2 x the memory a worker of the previous size took)
would leave less than --reserve-mb available.

Take the heavy lock for the whole run:

    flock /run/piforge-heavy.lock .venv/bin/python bench/mwms_largest.py \\
        --python <local-py38-tf2.2 venv>/bin/python [--workers 16,24,32 --batch 16 --steps 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build.cluster.config import load_cluster  # noqa: E402
from build.errors import PiforgeError  # noqa: E402
from build.train.launcher import train  # noqa: E402
from build.train.records import load_run  # noqa: E402
from figures import add_json_option, write_figures  # noqa: E402
from local_hosts import local_cluster_text, shim_host  # noqa: E402

BASE_PORT = 24100


def mem_available_mb() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no MemAvailable in /proc/meminfo")


class MemoryWatch:
    """The lowest MemAvailable while the job runs, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.before = mem_available_mb()
        self.lowest = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.lowest = min(self.lowest, mem_available_mb())

    def __enter__(self) -> "MemoryWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def write_cluster(root: Path, python: str, workers: int) -> Path:
    hosts = [shim_host(root / f"n{workers}" / f"w{index:02d}", python) for index in range(workers)]
    text = local_cluster_text("largest", hosts, BASE_PORT)
    text += "[jobs.mnist]\nhosts = [" + ", ".join(f'"{h.name}"' for h in hosts) + "]\n"
    path = root / f"cluster-{workers}.toml"
    path.write_text(text)
    return path


def summary(run: Dict[str, Any]) -> Dict[str, Any]:
    events = run["events"]
    firsts = [e["t"] for e in events if e["kind"] == "first_step"]
    imports = [e["seconds"] for e in events if e["kind"] == "tf_imported"]
    rss: Dict[str, float] = {}
    for event in events:
        if "peak_rss_mb" in event:
            rss[event["host"]] = max(rss.get(event["host"], 0.0), event["peak_rss_mb"])
    first = max(firsts) - run["started"] if len(firsts) == run["workers"] else None
    return {"first": first, "imports": imports, "rss": list(rss.values()), "status": run.get("status")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="a python with TensorFlow (TF 2.2.0 / py3.8: lightest)")
    parser.add_argument("--workers", default="16", help="sizes to try, in order, e.g. 16,24,32")
    parser.add_argument("--batch", type=int, default=16, help="per-worker batch")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--reserve-mb", type=float, default=6000.0,
                        help="leave at least this much MemAvailable (other processes share the box)")
    add_json_option(parser)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pf-largest-"))
    os.environ.setdefault("PIFORGE_HOME", str(root / "home"))
    say = lambda line: print(f"bench: {line}", flush=True)  # noqa: E731
    rows: List[str] = []
    sizes: List[Dict[str, Any]] = []   # the sizes that ran
    per_worker_mb: Optional[float] = None
    for workers in [int(n) for n in args.workers.split(",")]:
        available = mem_available_mb()
        if per_worker_mb is not None and available - workers * per_worker_mb < args.reserve_mb:
            rows.append(f"{workers:3d} workers: skipped: ~{workers * per_worker_mb:,.0f} MB needed, "
                        f"{available:,.0f} MB available, reserve {args.reserve_mb:,.0f} MB")
            continue
        cluster = load_cluster(write_cluster(root, args.python, workers))
        params = {"dataset": args.dataset, "batch": str(args.batch), "steps": str(args.steps), "epochs": "1",
                  "optimizer": "sgd", "test_samples": "100", "workers": str(workers)}
        started = time.time()
        with MemoryWatch() as memory:
            try:
                record = train(cluster, "mnist", params, say=say).record
                failure = ""
            except PiforgeError as error:
                record, failure = None, error.message
        wall = time.time() - started
        used = memory.before - memory.lowest
        if record is None:
            rows.append(f"{workers:3d} workers: FAILED after {wall:.0f} s ({failure}); memory taken {used:,.0f} MB")
            continue
        facts = summary(load_run(record))
        rss = facts["rss"]
        per_worker_mb = 1.2 * used / workers   # what a worker really took, with a margin
        first = facts["first"]
        imports = facts["imports"]
        if first is not None and rss:
            sizes.append({"workers": workers, "first_step_s": first, "first_minus_import_s": first - max(imports),
                          "rss_median_mb": statistics.median(rss), "rss_max_mb": max(rss), "memory_taken_mb": used})
        rows.append(
            f"{workers:3d} workers: time to every worker's first step "
            + ("n/a" if first is None else f"{first:.1f} s (minus slowest TF import: {first - max(imports):.1f} s)")
            + f"; TF import {min(imports):.1f}-{max(imports):.1f} s; peak RSS per worker "
            + (f"{min(rss):,.0f}-{max(rss):,.0f} MB (median {statistics.median(rss):,.0f}, sum {sum(rss):,.0f})"
               if rss else "n/a")
            + f"; machine memory taken {used:,.0f} MB of {memory.before:,.0f} available; wall {wall:.0f} s")
    print(f"\n== largest MultiWorkerMirroredStrategy job on one box (MNIST CNN, batch {args.batch}/worker, "
          f"{args.steps} steps; {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f})")
    for row in rows:
        print(row)
    write_figures(args.json, {"batch": args.batch, "steps": args.steps, "ran": sizes})
    return 0


if __name__ == "__main__":
    sys.exit(main())
