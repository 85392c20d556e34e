"""A private Docker engine for the docker builder's integration tests.

Session-scoped: started once with its own data root (beside the shared test home, so
loaded images survive between runs on a developer machine), exec root and socket, and
`--iptables=false --ip-forward=false --bridge=none` so the host's network is left
untouched (containers get `none` or the host's network). Stopped at the end, after
removing any container piforge left (there should be none: the tests check).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from build.mounts import unmount_below
from build.processes import stop_process
from prerequisites import unavailable, require_root, require_tool

SOCKET = "/run/piforge-test-dockerd.sock"
EXEC_ROOT = "/run/piforge-test-dockerd"
PIDFILE = "/run/piforge-test-dockerd.pid"
LABEL = "piforge.derivation"


def _stop_leftover() -> None:
    """A dockerd from a killed test run still holds our pidfile: stop it first."""
    try:
        pid = int(Path(PIDFILE).read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _client(url: str):  # type: ignore[no-untyped-def]
    import docker

    return docker.DockerClient(base_url=url, timeout=600)


@pytest.fixture(scope="session")
def dockerd(shared_home: Path) -> Iterator[str]:
    """The engine's URL; DOCKER_HOST points at it for the session (doit subprocesses too)."""
    require_root()
    require_tool("dockerd")
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        unavailable("qemu-aarch64 binfmt not registered (run scripts/setup-host.sh)")
    _stop_leftover()
    url = f"unix://{SOCKET}"
    # Beside the shared home, not in it: the engine keeps mounts under its data root
    # while it runs, and other tests check that nothing is left mounted in the home.
    data_root = shared_home.with_name(shared_home.name + "-dockerd")
    data_root.mkdir(parents=True, exist_ok=True)
    log = open(shared_home / "dockerd.log", "ab")
    process = subprocess.Popen(
        ["dockerd", "--data-root", str(data_root), "--exec-root", EXEC_ROOT, "-H", url,
         "--pidfile", PIDFILE, "--iptables=false", "--ip-forward=false", "--bridge=none",
         "--ip-masq=false", "--userland-proxy=false"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    previous = os.environ.get("DOCKER_HOST")
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _client(url).ping()
                break
            except Exception:  # not up yet
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"dockerd did not start; see {shared_home / 'dockerd.log'}")
                time.sleep(0.5)
        os.environ["DOCKER_HOST"] = url
        yield url
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        try:
            client = _client(url)
            for container in client.containers.list(all=True, filters={"label": LABEL}):
                container.remove(force=True)
        except Exception:
            pass
        stop_process(process, grace_s=60)
        log.close()
        # dockerd leaves its default netns bind-mounted under the exec root
        unmount_below(Path(EXEC_ROOT))
        shutil.rmtree(EXEC_ROOT, ignore_errors=True)


def piforge_containers(url: str) -> list:
    """Containers piforge created that still exist (should always be none)."""
    return _client(url).containers.list(all=True, filters={"label": LABEL})
