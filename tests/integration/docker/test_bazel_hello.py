"""A small real Bazel project (examples/bazel-hello), offline: built natively, and for
arm64 by the docker builder in the image made from Dockerfile.aarch64; the arm64
build is killed midway (Ctrl-C) and resumes from its warm output base."""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from build.bazel.caches import cache_key
from build.bazel.progress import parse_progress
from build.store import Store
from prerequisites import require_tool
from dockerd_fixture import dockerd, piforge_containers  # noqa: F401  (session fixture)
from docker_helpers import EM_AARCH64, EM_X86_64, REPO, doit_argv, doit_env, elf_machine, run_doit, store_path

pytestmark = pytest.mark.slow

EXPECTED = "hello from bazel (matched, 7 buckets, abeefhlllmoorz)"
COMPILES_AND_LINK = 6          # 5 .cc files + the link: the project's non-internal actions


def test_bazel_hello_builds_natively(piforge_home: Path) -> None:
    require_tool("bazel")
    path = store_path(run_doit("build:bazel-hello-native", home=piforge_home))
    binary = path / "bin" / "hello"
    assert elf_machine(binary) == EM_X86_64
    assert subprocess.run([str(binary)], stdout=subprocess.PIPE, text=True, check=True).stdout.strip() == EXPECTED


def _processes_run(log: str) -> int:
    """Bazel's closing 'INFO: N processes: 2 remote cache hit, 4 processwrapper-sandbox.'
    -> the processes actually executed (not internal, not served by a cache)."""
    match = re.search(r"INFO: \d+ processes?: ([^\n]*)\.", log)
    assert match, "no process summary in the Bazel log"
    executed = 0
    for count, kind in re.findall(r"(\d+) ([a-z -]+?)(?:,|$)", match.group(1)):
        if kind.strip() != "internal" and "cache hit" not in kind:
            executed += int(count)
    return executed


def test_bazel_hello_for_arm64_resumes_after_a_kill(dockerd: str, shared_home: Path) -> None:  # noqa: F811
    image = store_path(run_doit("build:image-bazel-aarch64", home=shared_home, timeout=3600))
    info = json.loads((image / "image.json").read_text())
    assert (info["architecture"], info["os"]) == ("arm64", "linux")
    assert "bazel-bootstrap" in (image / "packages.txt").read_text()

    # A cold start: no store entry, no Bazel state for this recipe+target.
    listed = run_doit("path:bazel-hello", home=shared_home, check=False)
    if listed.returncode == 0:
        Store(shared_home / "store").remove(store_path(listed))
    shutil.rmtree(shared_home / "cache" / "bazel" / cache_key("bazel-hello", "linux/aarch64"), ignore_errors=True)
    for stale in (shared_home / "build").glob("*-bazel-hello-1"):   # left by a SIGKILLed run
        shutil.rmtree(stale, ignore_errors=True)

    # Start the build; once Bazel has finished some actions, Ctrl-C it.
    process = subprocess.Popen(doit_argv("build:bazel-hello"), cwd=str(REPO), env=doit_env(shared_home),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    logs = shared_home / "build"
    deadline = time.monotonic() + 1800
    seen = None
    while seen is None or seen[0] < 5:
        assert process.poll() is None, "the build ended before it could be interrupted"
        assert time.monotonic() < deadline, "no Bazel progress within 30 minutes"
        for log in logs.glob("*-bazel-hello-1/build.log"):
            for line in log.read_text(errors="replace").splitlines():
                progress = parse_progress(line)
                if progress and (seen is None or progress[0] > seen[0]):
                    seen = progress
        time.sleep(1)
    assert seen[0] < seen[1], f"the build finished before the kill ({seen})"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    assert piforge_containers(dockerd) == [], "the interrupted build left a container"
    assert run_doit("path:bazel-hello", home=shared_home, check=False).returncode != 0

    # Resume: the output base kept what was done; only the rest runs.
    path = store_path(run_doit("build:bazel-hello", home=shared_home))
    log = (path / ".piforge" / "build.log").read_text(errors="replace")
    assert _processes_run(log) < COMPILES_AND_LINK, log[-3000:]
    binary = path / "bin" / "hello"
    assert elf_machine(binary) == EM_AARCH64
    rootfs = store_path(run_doit("path:rootfs-bullseye-arm64", home=shared_home))
    ran = subprocess.run(["qemu-aarch64-static", "-L", str(rootfs), str(binary)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert ran.stdout.strip() == EXPECTED, ran.stdout
    assert piforge_containers(dockerd) == []
