"""Before a long build: does this machine have the RAM + swap, disk and cores it needs?

The user's TensorFlow build needed 6 GB of swap on a 4 GB Pi; running out of memory
15 hours in is the failure this prevents. A shortfall stops the build with the exact
commands that fix it (``doit swap`` runs them after asking). The same figures decide
Bazel's ``--local_cpu_resources`` and ``--local_ram_resources``.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from .errors import ResourceError

GIB = 1024 ** 3
# A "4 GB" Pi 4 reports ~3.7 GiB MemTotal (firmware and GPU keep the rest): needs are
# nominal sizes, so accept this much less before calling a machine short.
RAM_SLACK = 0.9
DEFAULT_SWAPFILE = "/swapfile"


@dataclass(frozen=True)
class MachineFigures:
    """What this machine has; tests build one by hand to simulate a small Pi."""

    ram_bytes: int
    swap_bytes: int
    disk_free_bytes: int
    cpus: int

    @property
    def ram_gb(self) -> float:
        return self.ram_bytes / GIB

    @property
    def swap_gb(self) -> float:
        return self.swap_bytes / GIB

    @property
    def disk_free_gb(self) -> float:
        return self.disk_free_bytes / GIB


def read_meminfo(text: str) -> Tuple[int, int]:
    """(MemTotal, SwapTotal) in bytes from /proc/meminfo's text."""
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name.strip()] = int(parts[0]) * 1024  # kB
    return values.get("MemTotal", 0), values.get("SwapTotal", 0)


def measure(work_dir: Path) -> MachineFigures:
    """This machine's figures; disk is measured where the build writes."""
    ram, swap = read_meminfo(Path("/proc/meminfo").read_text())
    probe = Path(work_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return MachineFigures(ram_bytes=ram, swap_bytes=swap,
                          disk_free_bytes=shutil.disk_usage(str(probe)).free,
                          cpus=os.cpu_count() or 1)


def swap_commands(size_gb: int, path: str = DEFAULT_SWAPFILE) -> List[str]:
    """The user's own recipe for more swap (their notes), for a file of ``size_gb``."""
    return [
        f"sudo fallocate -l {size_gb}G {path}",
        f"sudo chmod 0600 {path}",
        f"sudo mkswap {path}",
        f"sudo swapon {path}",
    ]


def free_swapfile_path(exists=os.path.exists) -> str:  # type: ignore[no-untyped-def]
    """/swapfile, or /swapfile2... when one is already in use."""
    if not exists(DEFAULT_SWAPFILE):
        return DEFAULT_SWAPFILE
    index = 2
    while exists(f"{DEFAULT_SWAPFILE}{index}"):
        index += 1
    return f"{DEFAULT_SWAPFILE}{index}"


def missing_swap_gb(figures: MachineFigures, ram_gb: Optional[float], swap_gb: Optional[float]) -> int:
    """Whole GB of swap to add so RAM + swap covers the recipe's RAM + swap (0: enough)."""
    need = (ram_gb or 0.0) + (swap_gb or 0.0)
    have = figures.ram_gb + figures.swap_gb
    if need <= 0 or have >= need * RAM_SLACK:
        return 0
    return max(1, int(math.ceil(need * RAM_SLACK - have)))


def check(resources, figures: MachineFigures, what: str, swapfile: Optional[str] = None) -> None:  # type: ignore[no-untyped-def]
    """Raise ResourceError naming every shortfall of ``figures`` against ``resources``
    (a recipe's [resources]); the hint holds the exact commands that fix RAM + swap."""
    problems: List[str] = []
    hint: Optional[str] = None
    add = missing_swap_gb(figures, resources.ram_gb, resources.swap_gb)
    if add:
        need = (resources.ram_gb or 0) + (resources.swap_gb or 0)
        problems.append(
            f"RAM + swap is {figures.ram_gb + figures.swap_gb:.1f} GB "
            f"({figures.ram_gb:.1f} GB RAM + {figures.swap_gb:.1f} GB swap), "
            f"the build needs {need:g} GB (ram_gb {resources.ram_gb or 0:g} + swap_gb {resources.swap_gb or 0:g})")
        path = swapfile or free_swapfile_path()
        hint = (f"add {add} GB of swap (or run `./piforge swap size={add}`, which asks first):\n    "
                + "\n    ".join(swap_commands(add, path))
                + "\n  a swap file on a USB3 SATA disk spares the SD card")
    if resources.disk_gb and figures.disk_free_gb < resources.disk_gb:
        problems.append(f"{figures.disk_free_gb:.1f} GB free disk where the build writes, "
                        f"the build needs {resources.disk_gb:g} GB")
    if problems:
        raise ResourceError(f"{what}: this machine is too small for the build:\n  - "
                            + "\n  - ".join(problems), hint=hint)


def bazel_limits(figures: MachineFigures, cpus_wanted: Optional[int] = None) -> Tuple[int, int]:
    """(--local_cpu_resources, --local_ram_resources in MB) for this machine.

    One core is left to the system and the Bazel server when there are more than two
    (the user ran 3 of 4 on the Pi); a recipe's ``cpus`` caps it. RAM: Bazel's
    estimate of what actions may use at once, 3/4 of physical RAM (swap is the buffer,
    not the budget: swapping compilers crawl).
    """
    cpus = figures.cpus - 1 if figures.cpus > 2 else figures.cpus
    if cpus_wanted:
        cpus = min(cpus, cpus_wanted)
    ram_mb = int(figures.ram_bytes * 3 / 4 / (1024 * 1024))
    return max(1, cpus), max(512, ram_mb)
