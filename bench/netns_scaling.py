"""Scaling of the MNIST CNN over real, rate-limited links: 2 workers in 2 network namespaces.

Two namespaces joined by one veth pair, each worker pinned to its own core (taskset), the
link shaped with ``tc tbf`` on both ends. Side by side in one run:

- a measured link check (bytes pushed through the shaped veth per second);
- 1 worker alone on one core (the baseline), then 2 workers unshaped, at 1 Gbit and at
  100 Mbit: scaling efficiency = throughput(2) / (2 x throughput(1)) at the same per-worker
  batch, goal >= 0.9 at 1 Gbit;
- all-reduce bytes per step: what worker 0 sent on its veth between its last two epoch
  ends, divided by the steps (gradients of 2.77 M float32 parameters: 11.1 MB; a 2-worker
  ring sends each worker's half twice);
- what helps: gradients all-reduced as float16 (``PIFORGE_ALLREDUCE_DTYPE=float16``, half
  the bytes) unshaped, at 1 Gbit and at 100 Mbit; at 100 Mbit a larger per-worker batch,
  and (TF >= 2.4) gradient packing via ``PIFORGE_BYTES_PER_PACK`` (jobs/piforge_jobkit.py).

Workers run jobs/mnist.py directly (``ip netns exec``), not through the launcher, so the
figures are the network's. Root only; namespaces ``pfj-a``/``pfj-b`` (10.232.0.0/24) are
removed at the end. Take the heavy lock:

    flock /run/piforge-heavy.lock .venv/bin/python bench/netns_scaling.py \\
        --python <tf venv>/bin/python [--batch 2000 --steps 10 --epochs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build.train.records import parse_event  # noqa: E402
from figures import add_json_option, write_figures  # noqa: E402

JOBS = Path(__file__).resolve().parent.parent / "jobs"
NS = ("pfj-a", "pfj-b")
DEV = ("pfj-va", "pfj-vb")
ADDR = ("10.232.0.1", "10.232.0.2")
PORT = 24300
BURST = {"1gbit": "1mb", "100mbit": "128kb"}   # tbf needs >= rate/HZ of burst to reach its rate


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=60)


def setup() -> None:
    teardown()
    for ns in NS:
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", DEV[0], "type", "veth", "peer", "name", DEV[1])
    for ns, dev, addr in zip(NS, DEV, ADDR):
        sh("ip", "link", "set", dev, "netns", ns)
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")


def teardown() -> None:
    for ns in NS:
        sh("ip", "netns", "del", ns, check=False)


def shape(rate: Optional[str]) -> None:
    for ns, dev in zip(NS, DEV):
        sh("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root", check=False)
        if rate:
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
               "burst", BURST[rate], "latency", "50ms")


def tx_bytes(index: int) -> int:
    out = sh("ip", "netns", "exec", NS[index], "cat", f"/sys/class/net/{DEV[index]}/statistics/tx_bytes")
    return int(out.stdout)


def link_check(python: str, megabytes: int = 40) -> float:
    """Mbit/s of one TCP stream from pfj-a to pfj-b, as the shaped link delivers it."""
    receiver = ("import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                f"s.bind(('{ADDR[1]}',{PORT + 9}));s.listen(1);c,_=s.accept();n=0\n"
                "while True:\n d=c.recv(1<<20)\n if not d: break\n n+=len(d)\nprint(n)")
    sender = (f"import socket,time;s=socket.create_connection(('{ADDR[1]}',{PORT + 9}));b=bytes(1<<20);"
              f"t=time.time()\nfor _ in range({megabytes}): s.sendall(b)\n"
              "s.shutdown(socket.SHUT_WR);s.recv(1);print(time.time()-t)")
    rx = subprocess.Popen(["ip", "netns", "exec", NS[1], sys.executable, "-c", receiver], stdout=subprocess.PIPE,
                          text=True)
    time.sleep(0.5)
    tx = sh("ip", "netns", "exec", NS[0], sys.executable, "-c", sender)
    rx.wait(timeout=120)
    return megabytes * 8 * (1 << 20) / 1e6 / float(tx.stdout)


class Worker:
    """One mnist.py process; its PIFORGE_EVENT lines are parsed as they arrive."""

    def __init__(self, argv: List[str], env: Dict[str, str], on_event: Any) -> None:
        self.events: List[Dict[str, Any]] = []
        self.tail: List[str] = []
        self.process = subprocess.Popen(argv, env=env, cwd=str(JOBS), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self._on_event = on_event
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            parsed = parse_event(line.strip())
            if parsed is not None:
                self.events.append(parsed)
                self._on_event(self, parsed)
            self.tail = (self.tail + [line.rstrip()])[-15:]

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self._thread.join(timeout=10)
        return code


def run(python: str, data: str, workers: int, batch: int, steps: int, epochs: int, scratch: Path,
        pack: int = 0, dtype: str = "float32") -> Dict[str, Any]:
    """One job; returns samples/s (steady epochs, summed over workers) and bytes/step."""
    marks: List[Tuple[int, int]] = []   # (epoch, worker 0's tx_bytes) at its epoch ends

    def on_event(worker: Worker, event: Dict[str, Any]) -> None:
        if worker is procs[0] and event["kind"] == "epoch" and workers > 1:
            marks.append((event["epoch"], tx_bytes(0)))

    cluster = {"worker": [f"{ADDR[i]}:{PORT + i}" for i in range(workers)]}
    procs: List[Worker] = []
    for index in range(workers):
        env = dict(os.environ, PIFORGE_DATA=data, PIFORGE_MODEL_DIR=str(scratch / f"model-{time.time_ns()}-{index}"),
                   PYTHONUNBUFFERED="1", PIFORGE_BYTES_PER_PACK=str(pack), PIFORGE_ALLREDUCE_DTYPE=dtype)
        env.pop("TF_CONFIG", None)
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        argv = ["ip", "netns", "exec", NS[index], "taskset", "-c", str(index), python, "-u", "mnist.py",
                f"batch={batch}", f"steps={steps}", f"epochs={epochs}", "optimizer=adam", "test_samples=100"]
        procs.append(Worker(argv, env, on_event))
    codes = [p.wait(timeout=900) for p in procs]
    if any(codes):
        tails = "\n".join(line for p in procs for line in p.tail)
        raise SystemExit(f"bench: a worker failed ({codes}):\n{tails}")
    total = 0.0
    for proc in procs:
        rates = [e["samples_per_second"] for e in proc.events if e["kind"] == "epoch" and e["epoch"] >= 2]
        total += statistics.median(rates)
    per_step = None
    if len(marks) >= 2:
        per_step = (marks[-1][1] - marks[-2][1]) / steps
    return {"throughput": total, "bytes_per_step": per_step}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="a python with TensorFlow (+ tf-keras)")
    parser.add_argument("--data", help="an .npz in the Keras MNIST layout (default: the fashion_mnist dataset)")
    parser.add_argument("--batch", type=int, default=2000, help="per-worker batch (the user's: 2000)")
    parser.add_argument("--big-batch", type=int, default=8000, help="the larger batch tried at 100 Mbit")
    parser.add_argument("--packs", default="1000000,4000000", help="bytes_per_pack values tried at 100 Mbit")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    add_json_option(parser)
    args = parser.parse_args()
    if os.geteuid() != 0 or (os.cpu_count() or 1) < 2:
        print("bench: needs root (network namespaces) and 2 cores", file=sys.stderr)
        return 2
    data = args.data
    if not data:
        from build.train.datasets import dataset_file
        data = str(dataset_file("fashion_mnist"))
    scratch = Path(tempfile.mkdtemp(prefix="pf-netns-"))
    results: Dict[str, Dict[str, Any]] = {}
    links: Dict[str, float] = {}
    load_before = os.getloadavg()[0]
    setup()
    try:
        def one(label: str, workers: int, rate: Optional[str], batch: int, pack: int = 0,
                dtype: str = "float32") -> None:
            shape(rate)
            print(f"bench: {label} ...", flush=True)
            results[label] = run(args.python, data, workers, batch, args.steps, args.epochs, scratch, pack, dtype)
            results[label].update(workers=workers, batch=batch, rate=rate or "unshaped", pack=pack)

        for rate in ("1gbit", "100mbit"):
            shape(rate)
            links[rate] = link_check(args.python)
        one("1 worker", 1, None, args.batch)
        one("2 workers unshaped", 2, None, args.batch)
        one("2 workers 1 Gbit", 2, "1gbit", args.batch)
        one("2 workers 100 Mbit", 2, "100mbit", args.batch)
        shaped: List[Tuple[Optional[str], str]] = [(None, "unshaped"), ("1gbit", "1 Gbit"), ("100mbit", "100 Mbit")]
        for link, label in shaped:
            one(f"2 workers {label}, float16 all-reduce", 2, link, args.batch, dtype="float16")
        one("1 worker, big batch", 1, None, args.big_batch)
        one(f"2 workers 100 Mbit, batch {args.big_batch}", 2, "100mbit", args.big_batch)
        for pack in [int(p) for p in args.packs.split(",") if p]:
            one(f"2 workers 100 Mbit, bytes_per_pack {pack:,}", 2, "100mbit", args.batch, pack)
    finally:
        teardown()
    version = sh(args.python, "-c", "import tensorflow as tf; print(tf.__version__)", check=False).stdout.strip()
    print(f"\n== 2 workers in 2 network namespaces, 1 core each, MNIST CNN, adam, {args.steps} steps x "
          f"{args.epochs} epochs, TF {version} (load average before {load_before:.1f}, after "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for rate, mbit in links.items():
        print(f"link check, tbf {rate}: one TCP stream {mbit:,.0f} Mbit/s")
    figures: Dict[str, Any] = {"tensorflow": version, "batch": args.batch, "link_mbit": links, "runs": {}}
    for label, result in results.items():
        single = results["1 worker" if result["batch"] == args.batch else "1 worker, big batch"]["throughput"]
        efficiency = result["throughput"] / (2 * single) if result["workers"] > 1 else None
        figures["runs"][label] = dict(result, efficiency=efficiency)
        line = f"{label:42s} {result['throughput']:9,.0f} samples/s"
        if efficiency is not None:
            line += f"   efficiency {efficiency:.2f}"
            if result["bytes_per_step"]:
                line += f"   worker 0 sent {result['bytes_per_step'] / 1e6:.2f} MB/step"
        print(line)
    print("(goal: efficiency >= 0.9 at 1 Gbit; efficiency at batch B is over 2 x 1 worker at batch B)")
    write_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
