"""sim:up / sim:down: a simulated cluster on this machine, described by a cluster.toml.

``up`` starts N hosts (build/sim/hosts.py: netns + real sshd + private home; arm64 hosts
run their sessions inside the bookworm arm64 rootfs under qemu) and writes a cluster.toml
with the built-in jobs on all of them plus a state file next to it (``PATH.sim.json``)
that ``down`` uses to stop every process and remove the namespaces, links and mounts.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..errors import PrerequisiteError, SimError
from .hosts import SimCluster, clear_stale

ARCH_PROFILES = {"arm64": "rpios-bookworm-py311", "x86_64": "local"}
ARM64_ROOTFS_RECIPE = "rootfs-bookworm-arm64"
TOOLS = ("sshd", "ssh", "scp", "ssh-keygen", "ip", "tc", "unshare")
MAX_HOSTS = 64   # the user's 35 Pis and room beyond; addresses stay inside one /24

# Tiny built-in jobs: QEMU makes every step seconds long, the point is the ssh path.
# Tiny on purpose: under qemu a step takes seconds, and scoring Fashion-MNIST's whole
# test set took 390 s of a 458 s run, so the simulated Pis score 1,000 test images.
JOBS: Dict[str, Dict[str, Any]] = {
    "mnist": {"dataset": "fashion_mnist", "optimizer": "adam", "per_worker_batch": 32,
              "epochs": 2, "steps_per_epoch": 3, "test_samples": 1000},
    "catsdogs": {"per_worker_batch": 8, "epochs": 1, "steps_per_epoch": 3, "image_size": 64,
                 "test_samples": 200},
}


def state_path(out: Path) -> Path:
    return out.with_name(out.name + ".sim.json")


def require_sim_prerequisites() -> None:
    """Root and the host tools, checked before anything starts."""
    if os.geteuid() != 0:
        raise PrerequisiteError("sim:up needs root (network namespaces, veths, bind mounts); run it as root")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    if missing:
        raise PrerequisiteError(f"sim:up needs {', '.join(missing)} (apt-get install -y openssh-server "
                                "openssh-client iproute2 util-linux)")


def parse_count(raw: Any) -> int:
    try:
        count = int(str(raw))
    except ValueError:
        raise SimError(f"count: expected a whole number of hosts, got {raw!r}") from None
    if not 1 <= count <= MAX_HOSTS:
        raise SimError(f"count: {count} hosts; expected 1..{MAX_HOSTS}")
    return count


def parse_arch(raw: Any) -> str:
    arch = {"aarch64": "arm64", "amd64": "x86_64"}.get(str(raw), str(raw))
    if arch not in ARCH_PROFILES:
        raise SimError(f"arch: {raw!r}; expected arm64 or x86_64")
    return arch


def cluster_text(sim: SimCluster, profile: str, python: str) -> str:
    """The cluster.toml for the hosts: ssh as root with the sim's key, built-in jobs on all."""
    text = sim.cluster_toml(profile=profile, python=python, job=False)
    names = ", ".join(f'"{h.name}"' for h in sim.hosts)
    lines = [text]
    for job, params in JOBS.items():
        lines += [f"[jobs.{job}]", f'description = "built-in {job} job on the simulated hosts"',
                  f"hosts = [{names}]", "", f"[jobs.{job}.params]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in params.items()] + [""]
    return "\n".join(lines)


def up(count: int, arch: str, out: Path, *, rootfs: Optional[Path] = None, rate: Optional[str] = None,
       report: Callable[[str], None] = print) -> SimCluster:
    """Start ``count`` hosts and write ``out`` (cluster.toml) and its state file."""
    require_sim_prerequisites()
    out = out.resolve()
    if state_path(out).exists():
        raise SimError(f"{state_path(out)}: a simulated cluster is already up for {out} (run sim:down out={out})")
    if arch == "arm64" and rootfs is None:
        raise SimError("arch=arm64 needs the bookworm arm64 rootfs")
    out.parent.mkdir(parents=True, exist_ok=True)
    sim = SimCluster(out.parent / (out.stem + ".sim"))
    sim.start()
    try:
        for host in sim.add_hosts([f"sim{index}" for index in range(count)],
                                  rootfs=rootfs if arch == "arm64" else None):
            report(f"sim:up: {host.name} at {host.address} ({arch})")
        if rate:
            sim.shape_all(rate)
        write_state(sim, out)
    except BaseException:
        sim.close()
        raise
    python = "/usr/bin/python3" if arch == "arm64" else "python3"
    out.write_text(cluster_text(sim, ARCH_PROFILES[arch], python))
    report(f"sim:up: wrote {out} (profile {ARCH_PROFILES[arch]}); stop with: doit sim:down out={out}")
    return sim


def write_state(sim: SimCluster, out: Path) -> None:
    hosts: List[Dict[str, Any]] = [
        {"name": h.name, "netns": h.netns, "address": h.address, "dir": str(h.dir),
         "sshd_pid": h.sshd.pid if h.sshd else None} for h in sim.hosts]
    sysctls = {str(path): value for path, value in sim.saved_sysctls.items()}   # down() puts them back
    state_path(out).write_text(json.dumps({"workdir": str(sim.workdir), "hosts": hosts, "sysctls": sysctls},
                                          indent=1) + "\n")


def down(out: Path, report: Callable[[str], None] = print) -> None:
    """Stop what ``up`` started for ``out``; then clear every pfc- namespace, veth and bridge."""
    if os.geteuid() != 0:
        raise PrerequisiteError("sim:down needs root")
    out = out.resolve()
    path = state_path(out)
    if not path.exists():
        raise SimError(f"{path}: no simulated cluster is up for {out}")
    state = json.loads(path.read_text())
    for host in state.get("hosts", []):
        pid = host.get("sshd_pid")
        if pid:
            try:
                os.killpg(int(pid), signal.SIGKILL)  # sshd ran in its own session
            except (ProcessLookupError, PermissionError):
                pass
        report(f"sim:down: stopped {host['name']} ({host['address']})")
    clear_stale()   # every process left in the namespaces, the veths, the bridge, /run mountpoints
    for sysctl, value in state.get("sysctls", {}).items():   # the ARP table limits up() raised
        Path(sysctl).write_text(str(value))
    path.unlink()
    report(f"sim:down: {out} is down")
