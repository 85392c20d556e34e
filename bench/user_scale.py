#!/usr/bin/env python3
"""The user's scale in one run: every figure issue 14 asks for, side by side, each next to
its goal. Runs the benches one after another (each needs the whole machine), shows their
output live, and ends with one table:

- bench/scale35.py:      deploy to 35 hosts vs 1 at 100 Mbit and at 1 Gbit (the stream's
                         hops over ssh and over tcp), the no-op redeploy, cluster:check of
                         35 hosts (the mesh included);
- bench/mwms_largest.py: the largest real MultiWorkerMirroredStrategy job that fits, with
                         its time to the first step and the RSS per worker (TF 2.2 / py3.8);
- bench/netns_scaling.py: 2 workers in 2 network namespaces, links shaped at 1 Gbit and
                         100 Mbit: scaling efficiency and all-reduce bytes per step;
- bench/rehash_tree.py:  the re-check of a 4,000-file tree after one touch vs hashing it whole;
- bench/train_scaling.py: launch overhead to every worker's first step, minus TF import.

    sudo .venv/bin/python bench/user_scale.py --python <TF venv>/bin/python \\
        --python38 <py3.8 + TF 2.2 venv>/bin/python [--quick]

``--quick`` runs every bench at a small size (8 hosts, 20 MB, 4 and 8 workers, short
training): a check that the whole run works, not figures to quote. Takes ~35 minutes in
full on 2 cores; the figures land in a directory of JSON files as well (printed at the end).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

BENCH = Path(__file__).resolve().parent
Row = Tuple[str, str, str, Optional[bool]]   # what, measured, goal, met (None: no pass/fail goal)


def benches(args: argparse.Namespace) -> List[Tuple[str, List[str]]]:
    quick = args.quick
    return [
        ("scale35", ["scale35.py", "--no-chunks"] + (["--hosts", "8", "--mb", "20"] if quick else [])),
        ("mwms_largest", ["mwms_largest.py", "--python", args.python38,
                          "--workers", "4,8" if quick else args.workers]),
        ("netns_scaling", ["netns_scaling.py", "--python", args.python, "--packs", ""]
         + (["--steps", "4", "--epochs", "2"] if quick else [])),
        ("rehash_tree", ["rehash_tree.py"] + (["--files", "500", "--mb", "50", "--rounds", "3"] if quick else [])),
        ("train_scaling", ["train_scaling.py", "--python", args.python]
         + (["--rounds", "1", "--steps", "4", "--epochs", "2"] if quick else [])),
    ]


def run_bench(name: str, argv: List[str], out: Path, index: int, count: int) -> Optional[Dict[str, Any]]:
    """One bench, its output shown live with its name; its figures, or None if it failed."""
    figures = out / f"{name}.json"
    started = time.monotonic()
    print(f"[{index}/{count}] {name} ...", flush=True)
    process = subprocess.Popen([sys.executable, "-u", str(BENCH / argv[0])] + argv[1:] + ["--json", str(figures)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    with open(out / f"{name}.log", "w") as log:
        for line in process.stdout:
            log.write(line)
            print(f"  {name} | {line.rstrip()}", flush=True)
    code = process.wait()
    print(f"[{index}/{count}] {name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
    if code != 0 or not figures.is_file():
        return None
    loaded: Dict[str, Any] = json.loads(figures.read_text())
    return loaded


def scale_rows(f: Dict[str, Any]) -> List[Row]:
    rows: List[Row] = []
    for rate, deploy in f["deploy"].items():
        for hops, key in (("ssh", ""), ("tcp", "_tcp")):
            many, one = deploy.get(f"stream{key}_copy_s"), deploy.get(f"one{key}_copy_s")
            if many is None or not one:
                continue
            rows.append((f"deploy {f['mb']} MB to {f['hosts']} hosts vs 1, {rate}, {hops} hops",
                         f"{many / one:.2f}x ({many:.1f} / {one:.1f} s)", "<= 1.5x", many / one <= 1.5))
    rows.append((f"no-op redeploy, {f['hosts']} hosts", f"{f['noop_s']:.2f} s", "<= 2 s", f["noop_s"] <= 2))
    rows.append((f"cluster:check, {f['hosts']} hosts, mesh included", f"{f['check_s']:.1f} s", "<= 10 s", f["check_s"] <= 10))
    return rows


def largest_rows(f: Dict[str, Any]) -> List[Row]:
    if not f["ran"]:
        return [("largest real MWMS job", "none ran", "16+ workers", False)]
    top = max(f["ran"], key=lambda size: size["workers"])
    return [(f"largest real MWMS job (MNIST CNN, batch {f['batch']}/worker, TF 2.2)",
             f"{top['workers']} workers; first step {top['first_step_s']:.1f} s "
             f"({top['first_minus_import_s']:.1f} s after TF import); RSS median {top['rss_median_mb']:,.0f} MB",
             "16+ workers", top["workers"] >= 16)]


def netns_rows(f: Dict[str, Any]) -> List[Row]:
    rows: List[Row] = []
    for label, rate, goal in (("1 Gbit", "1gbit", 0.9), ("100 Mbit", "100mbit", None)):
        for suffix, dtype in (("", "float32"), (", float16 all-reduce", "float16")):
            run = f["runs"].get(f"2 workers {label}{suffix}")
            if run is None:
                continue
            sent = f"; {run['bytes_per_step'] / 1e6:.1f} MB/step" if run.get("bytes_per_step") else ""
            rows.append((f"scaling efficiency, 2 netns workers, {label}, {dtype}", f"{run['efficiency']:.2f}{sent}",
                         ">= 0.9" if goal else "what helps", run["efficiency"] >= goal if goal else None))
    for label, run in f["runs"].items():
        if label.startswith("2 workers 100 Mbit, batch"):
            rows.append((f"scaling efficiency, 2 netns workers, 100 Mbit, {label.split(', ')[-1]}/worker",
                         f"{run['efficiency']:.2f}", "what helps", None))
    return rows


def rehash_rows(f: Dict[str, Any]) -> List[Row]:
    return [(f"re-check of {f['files']} files after one touch / hash whole",
             f"{f['recheck_pct']:.1f} % (walk alone {f['floor_pct']:.1f} %)", "<= 2 %", f["recheck_pct"] <= 2)]


def launch_rows(f: Dict[str, Any]) -> List[Row]:
    rows: List[Row] = []
    for workers in (1, 2):
        now, before = f["launch_overhead_s"].get(f"mnist {workers}"), f["launch_overhead_s"].get(f"before {workers}")
        if now is not None:
            rows.append((f"launch overhead, {workers} worker(s), minus TF import (median)",
                         f"{now:.2f} s" + (f" (before: {before:.2f} s)" if before is not None else ""),
                         "<= 2 s", now <= 2))
    if f.get("efficiency") is not None:
        rows.append(("scaling efficiency, 2 workers on one box", f"{f['efficiency']:.2f}", ">= 0.9", f["efficiency"] >= 0.9))
    return rows


ROWS: Dict[str, Callable[[Dict[str, Any]], List[Row]]] = {
    "scale35": scale_rows, "mwms_largest": largest_rows, "netns_scaling": netns_rows,
    "rehash_tree": rehash_rows, "train_scaling": launch_rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="a python with current TensorFlow (+ tf-keras)")
    parser.add_argument("--python38", required=True, help="a python 3.8 with tensorflow-cpu 2.2.0 (the lightest workers)")
    parser.add_argument("--workers", default="16,24,32,40", help="MWMS job sizes to try, in order")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the run works, figures not to quote")
    parser.add_argument("--only", help="comma-separated bench names to run (default: all)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/user_scale.py needs root (network namespaces, tc)")
    out = Path(tempfile.mkdtemp(prefix="pf-user-scale-"))
    chosen = benches(args)
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [(name, argv) for name, argv in chosen if name in wanted]
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    rows: List[Row] = []
    for index, (name, argv) in enumerate(chosen, 1):
        figures = run_bench(name, argv, out, index, len(chosen))
        rows += ROWS[name](figures) if figures is not None else [(name, "FAILED (see its log)", "", False)]
    print(f"\n== the user's scale, one run of {time.monotonic() - started:.0f} s on {os.cpu_count()} cores "
          f"(load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f})"
          + ("; --quick: small sizes, not figures to quote" if args.quick else ""))
    width = max(len(row[0]) for row in rows)
    measured = max(len(row[1]) for row in rows)
    for what, figure, goal, met in rows:
        verdict = "" if met is None else ("met" if met else "MISSED")
        print(f"{what:<{width}}  {figure:<{measured}}  goal {goal:<11} {verdict}")
    print(f"figures and logs: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
