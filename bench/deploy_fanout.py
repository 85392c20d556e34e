#!/usr/bin/env python3
"""Deploy fan-out benchmark, measured side by side in one run on simulated hosts.

A ~200 MB wheelhouse (pip, six, wrapt + generated data wheels) is deployed over real
sshd in network namespaces, every veth (the controller's uplink included) shaped with
``tc tbf rate 100mbit``:

1. to 1 host;
2. to 8 hosts streamed through the chain (goal: <= 1.5x the 1-host time);
3. again to the same 8 hosts: nothing to do (goal: <= 2 s);
4. to 8 hosts by the chunk fan-out alone (stream=False), for reference;
5. to 8 hosts as a plain star from the controller (relay=no), for reference (~8x).

Run as root: ``.venv/bin/python bench/deploy_fanout.py [--mb 200] [--hosts 8] [--no-star]``.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration" / "cluster"))

from build.cluster.config import load_cluster  # noqa: E402
from build.cluster.deploy import deploy, summary  # noqa: E402
from build.cluster.fanout import CHUNK_BYTES, ChunkCache  # noqa: E402
from build.cluster.wheelhouse import Wheelhouse  # noqa: E402
from build.derivation import derive  # noqa: E402
from build.profiles import Profile  # noqa: E402
from build.realise import realise  # noqa: E402
from build.recipe import load_recipes  # noqa: E402
from simhosts import SimCluster  # noqa: E402
from wheelhouses import data_wheel, wheelhouse_entry  # noqa: E402


def bench_wheelhouse(work: Path, megabytes: int) -> Wheelhouse:
    """The small test wheelhouse (real pip/six/wrapt, realised from its recipe) plus data wheels."""
    os.environ.setdefault("PIFORGE_HOME", str(work / "home"))
    recipes_dir = work / "recipes"
    recipes_dir.mkdir()
    shutil.copy(REPO / "tests" / "integration" / "cluster" / "recipes" / "wheelhouse-test-x86.toml", recipes_dir)
    recipes = load_recipes(recipes_dir)
    base = realise(derive(recipes, "wheelhouse-test-x86"))
    entry = work / "store" / "0000000000000000bench-wheelhouse-1"
    entry.mkdir(parents=True)
    for wheel in base.glob("*.whl"):
        shutil.copy(wheel, entry)
    remaining = megabytes * 1_000_000 - sum(w.stat().st_size for w in entry.glob("*.whl"))
    sizes = [int(remaining * 0.7)] + [int(remaining * 0.3 / 5)] * 5   # one big wheel (like TF) + smaller ones
    for index, size in enumerate(sizes):
        data_wheel(entry, f"pfbench_data{index}", size)
    return wheelhouse_entry(entry)


def timed_deploy(cluster_path: Path, profile: Profile, wheelhouse: Wheelhouse, cache: ChunkCache,
                 relay: bool = True, stream: bool = True, transport: str = "ssh") -> Tuple[float, float, List[str]]:
    """(total seconds, copy seconds, report lines) of one deploy; fails loudly on any failed host."""
    lines: List[str] = []
    started = time.monotonic()
    targets = deploy(load_cluster(cluster_path), profile, wheelhouse, report=lines.append, relay=relay,
                     chunk_cache=cache, stream=stream, stream_transport=transport)
    total = time.monotonic() - started
    table = summary(targets)
    if any(t.failed for t in targets):
        raise SystemExit(f"deploy failed:\n{table}\n" + "\n".join(lines))
    copy = 0.0
    for line in lines:
        found = re.search(r"\((\d+(?:\.\d+)?) s; streamed to", line)
        if found:
            copy = float(found.group(1))
    return total, copy, lines


def wipe(sim: SimCluster) -> None:
    for host in sim.hosts:
        shutil.rmtree(host.home / "piforge", ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--rate", default="100mbit")
    parser.add_argument("--chunk-mb", type=int, default=CHUNK_BYTES >> 20, help="fan-out chunk size")
    parser.add_argument("--no-star", action="store_true", help="skip the plain-star reference run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/deploy_fanout.py needs root (network namespaces, tc)")
    work = Path(tempfile.mkdtemp(prefix="pfc-bench-"))
    try:
        print(f"building a {args.mb} MB wheelhouse ...", flush=True)
        wheelhouse = bench_wheelhouse(work, args.mb)
        print(f"  {len(wheelhouse.wheels)} wheels, {wheelhouse.total_bytes / 1e6:.1f} MB", flush=True)
        profile = Profile(name="bench", description="", os="", platform="linux/x86_64", python="3.11", glibc="2.31", pip="24.3.1",
                          tensorflow="none", wheelhouse="", host_python="/usr/bin/python3",
                          check_import="six, wrapt, pfbench_data0")
        cache = ChunkCache(work / "chunks", chunk_bytes=args.chunk_mb << 20)
        with SimCluster(work / "sim") as sim:
            for index in range(args.hosts):
                sim.add_host(f"h{index}")
            sim.shape_all(args.rate)
            one, many = work / "one.toml", work / "many.toml"
            one.write_text(sim.cluster_toml(profile="bench", hosts=sim.hosts[:1]))
            many.write_text(sim.cluster_toml(profile="bench"))

            print(f"deploy to 1 host over {args.rate} ...", flush=True)
            t1, c1, _ = timed_deploy(one, profile, wheelhouse, cache)
            wipe(sim)
            print(f"deploy to {args.hosts} hosts (stream) ...", flush=True)
            tn, cn, lines = timed_deploy(many, profile, wheelhouse, cache)
            print("  " + [line for line in lines if "streamed to" in line][-1], flush=True)
            print(f"no-op redeploy to {args.hosts} hosts ...", flush=True)
            t0, _, _ = timed_deploy(many, profile, wheelhouse, cache)
            wipe(sim)
            print(f"deploy to {args.hosts} hosts (chunks, stream=False) ...", flush=True)
            tc, cc, lines = timed_deploy(many, profile, wheelhouse, cache, stream=False)
            print("  " + [line for line in lines if "streamed to" in line][-1], flush=True)
            ts = cs = None
            if not args.no_star:
                wipe(sim)
                print(f"deploy to {args.hosts} hosts (plain star, relay=no) ...", flush=True)
                ts, cs, _ = timed_deploy(many, profile, wheelhouse, cache, relay=False)

        mb = wheelhouse.total_bytes / 1e6
        print()
        print(f"wheelhouse {mb:.0f} MB in {args.chunk_mb} MB chunks, every veth shaped with tc tbf rate {args.rate}")
        print(f"{'run':<34} {'total':>8} {'copy':>8}")
        print(f"{'1 host':<34} {t1:>7.1f}s {c1:>7.1f}s")
        print(f"{f'{args.hosts} hosts, stream':<34} {tn:>7.1f}s {cn:>7.1f}s")
        print(f"{f'{args.hosts} hosts, chunks':<34} {tc:>7.1f}s {cc:>7.1f}s")
        if ts is not None and cs is not None:
            print(f"{f'{args.hosts} hosts, plain star':<34} {ts:>7.1f}s {cs:>7.1f}s")
        print(f"{f'no-op redeploy, {args.hosts} hosts':<34} {t0:>7.1f}s")
        print()
        print(f"ratio {args.hosts} hosts / 1 host (stream): total {tn / t1:.2f}x, copy {cn / c1:.2f}x  (goal <= 1.5x)")
        print(f"ratio {args.hosts} hosts / 1 host (chunks): total {tc / t1:.2f}x, copy {cc / c1:.2f}x")
        if ts is not None and cs is not None:
            print(f"ratio {args.hosts} hosts / 1 host (plain star):  total {ts / t1:.2f}x, copy {cs / c1:.2f}x")
        print(f"no-op redeploy to {args.hosts} hosts: {t0:.2f} s  (goal <= 2 s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
