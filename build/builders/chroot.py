"""Run phases inside a root filesystem (an arm64 Debian, itself a derivation) under
qemu-user via binfmt_misc: arm64 builds on an x86 box with no container engine.

Every phase runs in its own private mount namespace (``unshare --mount``): the overlay
root, proc, sys, dev and the bind mounts of src/out/sources/inputs exist only there,
so the kernel drops them all when the phase's processes end - on success, failure,
Ctrl-C or SIGKILL alike; nothing can be left mounted on the host. The rootfs in the
store is the overlay's read-only lower layer and is never modified. Offline phases also
get a fresh network namespace (``unshare --net``) with only loopback up.
"""
from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import ClassVar, List, Optional

from ..platform import Platform
from ..errors import BuildError, PrerequisiteError
from .base import PID_NAMESPACE, Builder, BuildJob, phase_script, quote, run_logged
from .rooted import CA_INSIDE, HOST_CA_BUNDLE, HOST_CA_DIR, ROOT_PATH, Bind, binds, rooted_environment, scratch_dirs

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
SETUP_HINT = "sudo bash scripts/setup-host.sh   # installs qemu-user-static, binfmt-support; registers qemu-aarch64"



def target_machine(platform_name: str) -> str:
    """``linux/aarch64`` -> ``aarch64`` (``linux/arm64`` is spelt the Debian way)."""
    return Platform.parse(platform_name).uname_machine


def binfmt_problem(machine: str) -> Optional[str]:
    """Why ELF files for ``machine`` cannot run here, or None if they can."""
    if machine == platform.machine():
        return None
    if not (BINFMT_DIR / "status").exists():
        return ("binfmt_misc is not mounted; run: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc")
    entry = BINFMT_DIR / f"qemu-{machine}"
    if not entry.exists():
        return (f"no qemu-{machine} binfmt handler is registered; run: apt-get install -y qemu-user-static "
                f"binfmt-support && update-binfmts --enable qemu-{machine}")
    lines = entry.read_text().splitlines()
    if not lines or lines[0].strip() != "enabled":
        return f"the qemu-{machine} binfmt handler is disabled; run: update-binfmts --enable qemu-{machine}"
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        # Without F the kernel looks the interpreter up inside the chroot, where it is not.
        return (f"the qemu-{machine} binfmt handler lacks the F (fix-binary) flag; run: apt-get install -y "
                f"qemu-user-static && update-binfmts --disable qemu-{machine} && update-binfmts --enable qemu-{machine}")
    return None


class ChrootBuilder(Builder):
    """Phases run chrooted into ``builder.base``'s output, emulated by qemu-user if foreign."""

    kind: ClassVar[str] = "chroot"

    def check_prerequisites(self, job: Optional[BuildJob] = None) -> None:
        if os.geteuid() != 0:
            raise PrerequisiteError("the chroot builder needs root (mounts, chroot, namespaces)",
                                    hint="run as root, e.g. sudo ./piforge build:<recipe>")
        for tool, package in (("unshare", "util-linux"), ("chroot", "coreutils"),
                              ("mount", "mount"), ("ip", "iproute2")):
            if shutil.which(tool) is None:
                raise PrerequisiteError(f"the chroot builder needs '{tool}'", hint=f"apt-get install -y {package}")
        if job is not None:
            problem = binfmt_problem(target_machine(job.derivation.recipe.platform))
            if problem:
                raise PrerequisiteError(f"cannot run {job.derivation.recipe.platform} programs: {problem}",
                                        hint=SETUP_HINT)

    def run(self, job: BuildJob) -> None:
        self.check_prerequisites(job)
        if job.base is None or not job.base.is_dir():
            raise BuildError(f"{job.derivation.name}: builder.base is not built ({job.base})")
        layers = job.build_dir / "chroot"
        upper, work, root = layers / "upper", layers / "work", layers / "root"
        for directory in (upper, work, root):
            directory.mkdir(parents=True, exist_ok=True)
        scratch_dirs(job)
        env = rooted_environment(job)
        mounts = binds(job)
        for phase in job.derivation.recipe.phases:
            setup = self._setup_script(job.base, upper, work, root, mounts, network=phase.network)
            argv = ["unshare", "--mount", "--propagation", "private", *PID_NAMESPACE]
            argv += [] if phase.network else ["--net"]
            argv += ["--", "/bin/sh", "-c", setup, "piforge-chroot", str(root), "/usr/bin/env", "-i"]
            argv += [f"{key}={value}" for key, value in sorted(env.items())]
            argv += ["/bin/bash", "-c", phase_script(phase, env["PIFORGE_SRC"])]
            run_logged(argv, job, phase, env={"PATH": ROOT_PATH, "LC_ALL": "C.UTF-8"})

    @staticmethod
    def _setup_script(base: Path, upper: Path, work: Path, root: Path,
                      binds: List[Bind], *, network: bool) -> str:
        """Shell run (as root, on the host side, in the new namespaces) before chroot."""
        r = quote(str(root))
        lines = [
            "set -eu",
            f"mount -t overlay overlay -o lowerdir={quote(str(base))},upperdir={quote(str(upper))},"
            f"workdir={quote(str(work))} {r}",
            f"mkdir -p {r}/proc {r}/sys {r}/dev {r}/tmp {r}/etc/ssl/certs {r}/usr/local/share/ca-certificates",
            f"mount -t proc proc {r}/proc",
            # A fresh sysfs, not the host's: it shows this phase's network namespace.
            f"mount -t sysfs -o ro sysfs {r}/sys",
            f"mount --rbind /dev {r}/dev",
            f"chmod 1777 {r}/tmp",
        ]
        for host, inner, read_only in binds:
            lines.append(f"mkdir -p {r}{quote(inner)}")
            lines.append(f"mount --bind {quote(str(host))} {r}{quote(inner)}")
            if read_only:
                lines.append(f"mount -o remount,bind,ro {r}{quote(inner)}")
        # The host's CAs: pip/curl behind an intercepting proxy (corporate networks, here).
        if HOST_CA_BUNDLE.exists():
            lines.append(f"cp {quote(str(HOST_CA_BUNDLE))} {r}{CA_INSIDE}")
        if HOST_CA_DIR.is_dir():
            lines.append(f"for crt in {quote(str(HOST_CA_DIR))}/*.crt; do [ -e \"$crt\" ] && "
                         f"cp \"$crt\" {r}/usr/local/share/ca-certificates/; done; true")
        if network:
            lines.append(f"rm -f {r}/etc/resolv.conf; cp /etc/resolv.conf {r}/etc/resolv.conf")
        else:
            lines.append(f"rm -f {r}/etc/resolv.conf; : > {r}/etc/resolv.conf")
            lines.append("ip link set lo up")
        lines.append('root="$1"; shift')
        lines.append('exec chroot "$root" "$@"')
        return "\n".join(lines)
