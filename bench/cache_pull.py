"""Binary cache throughput, side by side against curl on the same nginx, in one run.

  .venv/bin/python bench/cache_pull.py [--mb 200] [--rounds 3]

1. pull: a 200 MB store path (incompressible, like a wheel) substituted from a real
   nginx WebDAV server (download, sha256 of the artifact, zstd, tar, sha256 of every
   file, atomic install) vs `curl -o` of the same artifact bytes. Goal: <= 1.15x.
2. push of an artifact that is already in the cache: goal one HEAD, no upload.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build.cache.davserver import DavServer  # noqa: E402
from build.cache.metadata import artifact_key  # noqa: E402
from build.cache.push import push_one  # noqa: E402
from build.cache.remote import HttpRemote  # noqa: E402
from build.cache.signing import SecretKey, TrustedKeys  # noqa: E402
from build.cache.substitute import Substituter  # noqa: E402
from build.derivation import derive  # noqa: E402
from build.recipe import load_recipes  # noqa: E402
from build.store import Store  # noqa: E402

RECIPE = 'name = "bench-blob"\nversion = "1"\n[builder]\nkind = "native"\n[[phases]]\nrun = "true"\n'


def quiet(_: str) -> None:
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="piforge-bench-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        os.environ["PIFORGE_HOME"] = str(root / "home")
        (root / "recipes").mkdir()
        (root / "recipes" / "bench-blob.toml").write_text(RECIPE)
        drv = derive(load_recipes(root / "recipes"), "bench-blob")
        built = Store(root / "built")
        staging = built.new_staging(drv)
        print(f"making a {args.mb} MB store path ...", flush=True)
        with open(staging / "blob.whl", "wb") as out:
            for _ in range(args.mb):
                out.write(os.urandom(1 << 20))
        (staging / "README").write_text("bench\n" * 1000)
        built.install(drv, staging, log="bench\n")
        key = SecretKey.generate("bench-1")
        with DavServer(root / "nginx") as server:
            remote = HttpRemote(server.url + "/cache")
            started = time.monotonic()
            push_one(built, drv, remote, key, log=quiet)
            first_push = time.monotonic() - started
            remote.calls.clear()
            started = time.monotonic()
            uploaded = push_one(built, drv, remote, key, log=quiet)
            second_push = time.monotonic() - started
            calls = list(remote.calls)
            url = f"{server.url}/cache/{artifact_key(drv.hash)}"
            size = (root / "nginx" / "data" / "cache" / artifact_key(drv.hash)).stat().st_size
            curl_times, pull_times = [], []
            for round_number in range(args.rounds):
                target = root / f"curl-{round_number}"
                started = time.monotonic()
                subprocess.run(["curl", "-sSf", "-o", str(target), url], check=True)
                curl_times.append(time.monotonic() - started)
                target.unlink()
                store = Store(root / f"pulled-{round_number}")
                substituter = Substituter([HttpRemote(server.url + "/cache")], TrustedKeys([key.public()]), log=quiet)
                started = time.monotonic()
                assert substituter.pull(drv, store), substituter.rejections
                pull_times.append(time.monotonic() - started)
                store.remove(store.path_of(drv))
        curl_t, pull_t = statistics.median(curl_times), statistics.median(pull_times)
        print(f"artifact: {size / 1e6:.1f} MB compressed, {args.mb} MB of files; {args.rounds} rounds, medians")
        print(f"  curl -o (bytes only)            {curl_t:6.2f} s  {size / 1e6 / curl_t:7.0f} MB/s")
        print(f"  piforge pull (verified+install) {pull_t:6.2f} s  {size / 1e6 / pull_t:7.0f} MB/s")
        print(f"  ratio pull/curl                 {pull_t / curl_t:6.2f}x   (goal <= 1.15x)")
        print(f"  first push: {first_push:.2f} s; push of a present artifact: {second_push * 1000:.1f} ms, "
              f"uploaded={uploaded}, requests={calls}  (goal: one HEAD)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
