"""Binary cache throughput, side by side against curl on the same nginx, in one run.

  .venv/bin/python bench/cache_pull.py [--mb 200] [--rounds 3] [--lan-mb-s 117]

Wall time depends on what else the machine runs; the cpu columns (user+sys of curl,
of the pulling process) say what each side costs whatever the load.

1. pull: a 200 MB store path (incompressible, like a wheel) substituted from a real
   nginx WebDAV server (download, zstd, tar, sha256 of every file, atomic install) vs
   `curl -o` of the same artifact bytes, alternating, medians. Twice: over bare loopback
   (no network cost at all: pure CPU) and with nginx sending at a Gigabit LAN's rate
   (`limit_rate`, 117 MB/s), which is what a Pi cluster's cache server sees. Goal <= 1.15x.
2. push of an artifact that is already in the cache: goal one HEAD, no upload.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build.cache.davserver import DavServer  # noqa: E402
from build.cache.metadata import metadata_key  # noqa: E402
from build.cache.push import push_one  # noqa: E402
from build.cache.http import HttpRemote  # noqa: E402
from build.cache.signing import SecretKey, TrustedKeys  # noqa: E402
from build.cache.substitute import Substituter  # noqa: E402
from build.derivation import Derivation, derive  # noqa: E402
from build.recipe import load_recipes  # noqa: E402
from build.store import Store  # noqa: E402

RECIPE = 'name = "bench-blob"\nversion = "1"\n[builder]\nkind = "native"\n[[phases]]\nrun = "true"\n'


def quiet(_: str) -> None:
    pass


def make_entry(root: Path, megabytes: int) -> "tuple[Store, Derivation]":
    (root / "recipes").mkdir()
    (root / "recipes" / "bench-blob.toml").write_text(RECIPE)
    drv = derive(load_recipes(root / "recipes"), "bench-blob")
    built = Store(root / "built")
    staging = built.new_staging(drv)
    with open(staging / "blob.whl", "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))
    (staging / "README").write_text("bench\n" * 1000)
    built.install(drv, staging, log="bench\n")
    return built, drv


def artifact_file(root: Path, drv: Derivation) -> str:
    """The artifact's name on the server, as its signed metadata gives it."""
    return json.loads((root / "data" / "cache" / metadata_key(drv.hash)).read_text())["artifact"]["file"]


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def race(root: Path, drv: Derivation, key: SecretKey, rounds: int, rate: Optional[float]) -> Dict[str, List[float]]:
    """curl vs pull from one nginx (optionally rate-limited), alternating."""
    times: Dict[str, List[float]] = {"curl": [], "pull": [], "install": [], "curl_cpu": [], "pull_cpu": []}
    install = Store.install

    def timed_install(self, *args, **kwargs):  # store.install re-hashes every file: show its share
        began = time.monotonic()
        try:
            return install(self, *args, **kwargs)
        finally:
            times["install"].append(time.monotonic() - began)

    label = f"{rate:g}MBs" if rate else "loopback"
    with DavServer(root / f"nginx-{label}", root=root / "data", rate_mb_s=rate) as server:
        url = f"{server.url}/cache/{artifact_file(root, drv)}"
        Store.install = timed_install  # type: ignore[assignment]
        try:
            for number in range(rounds):
                target = root / "curl.out"
                began, cpu = time.monotonic(), cpu_seconds(resource.RUSAGE_CHILDREN)
                subprocess.run(["curl", "-sSf", "-o", str(target), url], check=True)
                times["curl"].append(time.monotonic() - began)
                times["curl_cpu"].append(cpu_seconds(resource.RUSAGE_CHILDREN) - cpu)
                target.unlink()
                store = Store(root / f"pulled-{label}-{number}")
                substituter = Substituter([HttpRemote(server.url + "/cache")], TrustedKeys([key.public()]), log=quiet)
                began, cpu = time.monotonic(), cpu_seconds(resource.RUSAGE_SELF)
                assert substituter.pull(drv, store), substituter.rejections
                times["pull"].append(time.monotonic() - began)
                times["pull_cpu"].append(cpu_seconds(resource.RUSAGE_SELF) - cpu)
                store.remove(store.path_of(drv))
        finally:
            Store.install = install  # type: ignore[assignment]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lan-mb-s", type=float, default=117.0, help="nginx send rate of the LAN run (MB/s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="piforge-bench-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        os.environ["PIFORGE_HOME"] = str(root / "home")
        print(f"making a {args.mb} MB store path ...", flush=True)
        built, drv = make_entry(root, args.mb)
        key = SecretKey.generate("bench-1")
        with DavServer(root / "nginx-push", root=root / "data") as server:
            remote = HttpRemote(server.url + "/cache")
            began = time.monotonic()
            push_one(built, drv, remote, key, log=quiet)
            first_push = time.monotonic() - began
            remote.calls.clear()
            began = time.monotonic()
            uploaded = push_one(built, drv, remote, key, log=quiet)
            second_push = time.monotonic() - began
            calls = list(remote.calls)
        size = (root / "data" / "cache" / artifact_file(root, drv)).stat().st_size
        print(f"artifact: {size / 1e6:.1f} MB compressed, {args.mb} MB of files; {args.rounds} rounds each, medians")
        for rate in (None, args.lan_mb_s):
            times = race(root, drv, key, args.rounds, rate)
            curl_t, pull_t = statistics.median(times["curl"]), statistics.median(times["pull"])
            install_t = statistics.median(times["install"])
            curl_cpu, pull_cpu = statistics.median(times["curl_cpu"]), statistics.median(times["pull_cpu"])
            print(f"{'bare loopback' if rate is None else f'nginx limit_rate {rate:g} MB/s (Gigabit LAN)'}:")
            print(f"  curl -o (bytes only)            {curl_t:6.2f} s  {size / 1e6 / curl_t:7.0f} MB/s  cpu {curl_cpu:5.2f} s")
            print(f"  piforge pull (verified+install) {pull_t:6.2f} s  {size / 1e6 / pull_t:7.0f} MB/s  cpu {pull_cpu:5.2f} s")
            print(f"    of which store.install        {install_t:6.2f} s  (its own sha256 pass over every file)")
            print(f"  ratio pull/curl                 {pull_t / curl_t:6.2f}x   (goal <= 1.15x)")
        print(f"push: first {first_push:.2f} s; of a present artifact {second_push * 1000:.1f} ms, "
              f"uploaded={uploaded}, requests={[verb for verb, _ in calls]}  (goal: one HEAD)")
        print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
