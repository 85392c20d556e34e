#!/usr/bin/env python3
"""The user's scale, measured side by side in one run on 35 simulated hosts (network
namespaces, real sshd; every veth, the controller's uplink included, shaped with tc tbf):

1. bring-up of the hosts: seconds, and the memory of their processes;
2. deploy of a wheelhouse to 1 host and to 35 at 100 Mbit and at 1 Gbit, streamed through
   the chain (over ssh hops and over tcp hops: ``deploy_stream``) and, for reference, by the
   chunk fan-out alone (goal: copy time at 35 <= 1.5x of one host, at both rates);
3. a no-op redeploy to 35 hosts (goal <= 2 s);
4. cluster:check of 35 hosts, the TCP mesh of every pair included (goal <= 10 s).

Run as root: ``.venv/bin/python bench/scale35.py [--mb 100] [--hosts 35] [--rates 100mbit,1gbit]
[--transports ssh,tcp]``.
The wheelhouse and the deploy runs are bench/deploy_fanout.py's.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration" / "cluster"))
sys.path.insert(0, str(REPO / "bench"))

from build.cluster.check import check_cluster, check_table  # noqa: E402
from build.cluster.config import load_cluster  # noqa: E402
from build.cluster.fanout import CHUNK_BYTES, ChunkCache  # noqa: E402
from build.profiles import Profile  # noqa: E402
from deploy_fanout import bench_wheelhouse, timed_deploy, wipe  # noqa: E402
from figures import add_json_option, write_figures  # noqa: E402
from simhosts import SimCluster  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="wheelhouse size (35 venvs of it are installed per run)")
    parser.add_argument("--hosts", type=int, default=35)
    parser.add_argument("--rates", default="100mbit,1gbit")
    parser.add_argument("--chunk-mb", type=int, default=CHUNK_BYTES >> 20, help="fan-out chunk size")
    parser.add_argument("--no-chunks", dest="chunks", action="store_false",
                        help="skip the chunk fan-out reference run (stream=False) at each rate")
    parser.add_argument("--transports", default="ssh,tcp", help="the stream's hops between hosts (deploy_stream)")
    add_json_option(parser)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/scale35.py needs root (network namespaces, tc)")
    work = Path(tempfile.mkdtemp(prefix="pfc-bench35-"))
    rows: List[Tuple[str, str, str]] = []
    figures: Dict[str, Any] = {"hosts": args.hosts, "mb": args.mb, "deploy": {}}
    try:
        print(f"building a {args.mb} MB wheelhouse ...", flush=True)
        wheelhouse = bench_wheelhouse(work, args.mb)
        profile = Profile(name="bench", description="", os="", platform="linux/x86_64", python="3.11",
                          glibc="2.31", pip="24.3.1", tensorflow="none", wheelhouse="",
                          host_python="/usr/bin/python3", check_import="six, wrapt, pfbench_data0")
        cache = ChunkCache(work / "chunks", chunk_bytes=args.chunk_mb << 20)
        with SimCluster(work / "sim") as sim:
            started = time.monotonic()
            sim.add_hosts([f"h{index}" for index in range(args.hosts)])
            up = time.monotonic() - started
            rss, pss = sim.memory()
            rows.append((f"bring-up of {args.hosts} hosts", f"{up:.1f} s",
                         f"RSS {rss / 1e6:.0f} MB, PSS {pss / 1e6:.0f} MB ({pss / args.hosts / 1e6:.1f} MB/host)"))
            one, many = work / "one.toml", work / "many.toml"
            one.write_text(sim.cluster_toml(profile="bench", hosts=sim.hosts[:1]))
            many.write_text(sim.cluster_toml(profile="bench"))

            for rate in [r for r in args.rates.split(",") if r]:
                sim.shape_all(rate)
                figures["deploy"][rate] = {}
                # Each transport against one host by the same transport (over ssh one host
                # gets chunks, there is no chain; over tcp even one host is streamed).
                for transport in [t for t in args.transports.split(",") if t]:
                    key = "" if transport == "ssh" else f"_{transport}"
                    wipe(sim)
                    print(f"deploy to 1 host over {rate} ({transport}) ...", flush=True)
                    t1, c1, _ = timed_deploy(one, profile, wheelhouse, cache, transport=transport)
                    rows.append((f"deploy {rate}: 1 host, {transport}", f"copy {c1:.1f} s", f"total {t1:.1f} s"))
                    wipe(sim)
                    print(f"deploy to {args.hosts} hosts over {rate} (stream, {transport} hops) ...", flush=True)
                    tn, cn, lines = timed_deploy(many, profile, wheelhouse, cache, transport=transport)
                    print("  " + [line for line in lines if "streamed to" in line][-1], flush=True)
                    rows.append((f"deploy {rate}: {args.hosts} hosts, stream, {transport} hops", f"copy {cn:.1f} s",
                                 f"total {tn:.1f} s; copy {cn / c1:.2f}x of 1 host by {transport} (goal <= 1.5x)"))
                    figures["deploy"][rate].update({f"one{key}_copy_s": c1, f"stream{key}_copy_s": cn})
                one_ssh = figures["deploy"][rate].get("one_copy_s")   # the chunks' reference: 1 host by ssh
                if args.chunks and one_ssh:
                    wipe(sim)
                    print(f"deploy to {args.hosts} hosts over {rate} (chunks) ...", flush=True)
                    tn, cn, _ = timed_deploy(many, profile, wheelhouse, cache, stream=False)
                    rows.append((f"deploy {rate}: {args.hosts} hosts, chunks", f"copy {cn:.1f} s",
                                 f"total {tn:.1f} s; copy {cn / one_ssh:.2f}x of 1 host by ssh"))
                    figures["deploy"][rate]["chunks_copy_s"] = cn

            print(f"no-op redeploy to {args.hosts} hosts ...", flush=True)
            t0, _, _ = timed_deploy(many, profile, wheelhouse, cache)
            rows.append((f"no-op redeploy, {args.hosts} hosts", f"{t0:.2f} s", "goal <= 2 s"))
            figures["noop_s"] = t0

            print(f"cluster:check of {args.hosts} hosts ...", flush=True)
            cluster = load_cluster(many)
            started = time.monotonic()
            checks = check_cluster(cluster, profile, report=lambda line: None)
            seconds = time.monotonic() - started
            if not all(c.fit for c in checks):
                raise SystemExit("cluster:check found unfit hosts:\n" + check_table(checks))
            pairs = len(checks) * (len(checks) - 1)
            rows.append((f"cluster:check, {args.hosts} hosts", f"{seconds:.1f} s",
                         f"{pairs} mesh probes; goal <= 10 s"))
            figures.update(check_s=seconds, bringup_s=up, pss_mb_per_host=pss / args.hosts / 1e6)

        print()
        print(f"wheelhouse {wheelhouse.total_bytes / 1e6:.0f} MB in {args.chunk_mb} MB chunks; "
              "every veth shaped with tc tbf at the rate shown (the check and no-op at the last one)")
        width = max(len(r[0]) for r in rows)
        for what, figure, note in rows:
            print(f"{what:<{width}}  {figure:>12}  {note}")
        write_figures(args.json, figures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
