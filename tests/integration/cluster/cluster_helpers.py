"""Helpers of the cluster integration tests (run doit, make profiles, ask hosts)."""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Optional

from build.cluster.config import HostSpec
from build.cluster.hosts import open_host
from build.profiles import Profile
from tests.cli import run_piforge

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def doit(*args: str, home: Path, recipes: Path, extra_env: Dict[str, str] = {},
         check: bool = True, timeout: int = 2400) -> subprocess.CompletedProcess:
    return run_piforge(*args, home=home, recipes=recipes, env=extra_env, check=check, timeout=timeout)


def make_profile(name: str = "test", check_import: str = "wrapt, six", host_python: str = "/usr/bin/python3",
                 platform: str = "linux/x86_64", python: str = "3.11", glibc: str = "2.31",
                 pip: str = "24.3.1") -> Profile:
    # glibc 2.31: what the oldest test host (a bullseye arm64 rootfs) has; pip: the test wheelhouses'.
    return Profile(name=name, description="test profile", os="debian-12", platform=platform, python=python,
                   glibc=glibc, pip=pip,
                   tensorflow="none", wheelhouse="wheelhouse-test-x86", host_python=host_python,
                   check_import=check_import, job_env={"PIFORGE_TEST_ENV": "1"})


def imports_on(spec: HostSpec, profile: str, code: str) -> str:
    """Run ``code`` with the host's deployed venv python; its stdout."""
    with open_host(spec) as host:
        return host.run([host.venv_python(profile), "-c", code], timeout=300).stdout.strip()


def current_of(spec: HostSpec, profile: str) -> Optional[str]:
    """Where the host's ``current`` symlink points (None if there is none)."""
    with open_host(spec) as host:
        result = host.run(["readlink", f"{host.profile_dir(profile)}/current"], timeout=60, check=False)
        return result.stdout.strip() or None


def cluster_toml(sim, *, profile: str = "test", hosts=None, job: bool = True,  # type: ignore[no-untyped-def]
                 cluster_lines: str = "") -> str:
    """``sim.cluster_toml`` with ``cluster_lines`` (e.g. ``deploy_stream = "tcp"\\n``) in [cluster]."""
    return sim.cluster_toml(profile=profile, hosts=hosts, job=job).replace("[cluster]\n", "[cluster]\n" + cluster_lines, 1)


def cluster_of(sim, directory: Path, *, profile: str = "test", hosts=None, jobs: str = "",  # type: ignore[no-untyped-def]
               cluster_lines: str = ""):
    """Write a cluster.toml for ``sim``'s hosts (all, or ``hosts``), plus ``jobs`` (TOML
    tables) if given instead of the smoke job, and ``cluster_lines`` in [cluster]; load it."""
    from build.cluster.config import load_cluster
    path = directory / "cluster.toml"
    path.write_text(cluster_toml(sim, profile=profile, hosts=hosts, job=not jobs, cluster_lines=cluster_lines)
                    + "\n" + jobs)
    return load_cluster(path)


def slow_link(host, rate: str = "2mbit") -> None:  # type: ignore[no-untyped-def]
    """Shape the link into ``host`` (its bridge-side veth) to ``rate``."""
    from build.sim.hosts import sh
    sh("tc", "qdisc", "add", "dev", host.veth_bridge_side, "root", "tbf", "rate", rate, "burst", "32kb",
       "latency", "50ms")


class SshdKiller:
    """Crash ``host`` (kill its sshd and every session) as soon as ``now()`` says so,
    watched from a thread while a deploy runs; ``join()`` says whether it happened."""

    def __init__(self, host, now: Callable[[], bool], timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
        self.killed = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if now():
                    host.kill_sshd()
                    self.killed.set()
                    return
                time.sleep(0.02)

        self.thread = threading.Thread(target=watch, daemon=True)
        self.thread.start()

    def join(self) -> bool:
        self.thread.join()
        return self.killed.is_set()


def receiving_stream(host) -> Callable[[], bool]:  # type: ignore[no-untyped-def]
    """True once ``host`` is mid-way through a streamed file (more than 64 KB of a .part)."""
    wheels = host.home / "piforge" / "wheels"
    return lambda: any(p.stat().st_size > 64 * 1024 for p in wheels.glob("*/*.part"))


CRASHING_RELAY_PYTHON = """#!/bin/sh
# This host's Python refuses the stream relay (as if it died at start) and runs the rest.
case "$2" in *"One link of a streamed deploy"*) echo "relay refused" >&2; exit 1;; esac
exec python3 "$@"
"""


def with_crashing_relay(sim, host, directory: Path, cluster_lines: str = "") -> Path:  # type: ignore[no-untyped-def]
    """A cluster.toml for ``sim`` where ``host``'s stream relay dies at start (its python is
    a wrapper that refuses the relay); ``cluster_lines`` go into [cluster]."""
    wrapper = host.home / "crashing-python"
    wrapper.write_text(CRASHING_RELAY_PYTHON)
    wrapper.chmod(0o755)
    path = directory / "cluster.toml"
    path.write_text(cluster_toml(sim, cluster_lines=cluster_lines).replace(
        f'name = "{host.name}"', f'name = "{host.name}"\npython = "/root/crashing-python"'))
    return path
