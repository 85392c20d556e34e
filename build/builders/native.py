"""Run phases on this machine: the builder of a Pi building for itself, and of the
steps that make other build environments (debootstrap of a rootfs)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, ClassVar, List, Sequence

from ..errors import PrerequisiteError
from .rooted import HOST_CA_BUNDLE, ROOT_PATH, ca_environment
from .base import PID_NAMESPACE, Builder, BuildJob, phase_environment, phase_script, quote, run_logged

HOST_PATH = ROOT_PATH   # the same PATH everywhere: the contract of docs/spine.md


def isolation_prefix(network: bool, read_only: Sequence[Path] = ()) -> List[str]:
    """Command prefix giving a phase its own mount namespace and, offline, its own
    network namespace (only loopback, brought up).

    The mount namespace means whatever a phase mounts (debootstrap mounts proc and sys
    inside its target) disappears with it, even if it dies half-way, and lets the
    ``read_only`` paths (sources hard-linked from the cache, input store entries) be
    re-mounted read-only for the phase. The network namespace is how "builds are
    offline" is enforced, not just promised. Both need root; without it the phase runs
    unisolated and the log says so.
    """
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return []
    setup = [f"mount --bind {quote(str(p))} {quote(str(p))} && mount -o remount,bind,ro {quote(str(p))}"
             for p in read_only]
    if not network:
        setup.append("ip link set lo up 2>/dev/null")
    setup.append('exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", *PID_NAMESPACE, *([] if network else ["--net"]),
            "--", "/bin/sh", "-c", "set -e\n" + "\n".join(setup), "sh"]


class NativeBuilder(Builder):
    """Phases run directly on the host, with a clean environment and a fixed PATH."""

    kind: ClassVar[str] = "native"

    def check_prerequisites(self, job: Any = None) -> None:
        if shutil.which("bash") is None:
            raise PrerequisiteError("the native builder needs bash", hint="apt-get install -y bash")

    def run(self, job: BuildJob) -> None:
        self.check_prerequisites(job)
        home = job.build_dir / "home"
        tmp = job.build_dir / "tmp"
        home.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        env = phase_environment(
            job, src=str(job.src_dir), out=str(job.out_dir), sources=str(job.sources_dir),
            inputs={name: str(path) for name, path in job.inputs.items()},
            home=str(home), tmp=str(tmp), path=HOST_PATH)
        for variable, value in ca_environment(str(HOST_CA_BUNDLE)).items():
            env.setdefault(variable, value)
        for phase in job.derivation.recipe.phases:
            prefix = isolation_prefix(phase.network, [job.sources_dir, *job.inputs.values()])
            if not prefix:
                job.log(f"note: phase {phase.name} runs without namespaces (needs root and unshare)")
            script = phase_script(phase, str(job.src_dir))
            run_logged([*prefix, "/bin/bash", "-c", script], job, phase, env=env)
