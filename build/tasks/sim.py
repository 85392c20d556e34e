"""doit tasks of a simulated cluster: sim:up, sim:down (see build/sim/cluster.py).

Variables (registered in the options table): ``count=N`` hosts (``hosts`` is the comma list of host names
of deploy/rollback), ``arch=arm64|x86_64``, ``rate=100mbit`` (optional tc tbf shaping of
every link), ``out=PATH`` the cluster.toml to write (its state file is PATH.sim.json).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from ..errors import SimError
from ..options import OptionSpec, register
from .actions import friendly
from .context import project
from .spine import realise_task_dep

__all__ = ["task_sim"]

DEFAULT_OUT = "sim-cluster.toml"


def _arch_name(text: str) -> str:
    arch = {"aarch64": "arm64", "amd64": "x86_64"}.get(text, text)
    if arch not in ("arm64", "x86_64"):
        raise ValueError("expected arm64 or x86_64")
    return arch


def _count_value(text: str) -> int:
    if not text.isdigit():
        raise ValueError("expected a whole number of hosts")
    return int(text)


register(
    OptionSpec("count", _count_value, "N", "how many simulated hosts (hosts=N is accepted too)", "sim:up"),
    OptionSpec("arch", _arch_name, "arm64|x86_64", "the simulated hosts' architecture (default arm64)", "sim:up"),
    OptionSpec("rate", str, "100mbit", "shape every simulated link with tc tbf", "sim:up"),
    OptionSpec("out", str, "file", f"the simulated cluster's cluster.toml (default {DEFAULT_OUT})",
               "sim:up, sim:down"),
)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _out() -> Path:
    return Path(str(project().options.get("out") or DEFAULT_OUT))


def _count() -> int:
    from ..sim.cluster import parse_count
    options = project().options
    raw = options.get("count")
    if raw is None and options.get("hosts"):
        names = options.get("hosts")   # hosts=N as the issue spells it, when it is a number
        if len(names) != 1 or not names[0].isdigit():
            raise SimError("count: give the number of hosts as count=N (hosts= is a list of names elsewhere)")
        raw = names[0]
    return parse_count(2 if raw is None else raw)


def _arch() -> str:
    return str(project().options.get("arch") or "arm64")


def _rootfs() -> Path:
    from ..sim.cluster import ARM64_ROOTFS_RECIPE
    here = project()
    return here.store.require(here.derivation(ARM64_ROOTFS_RECIPE))


def _up() -> None:
    from ..sim.cluster import require_sim_prerequisites, up
    require_sim_prerequisites()   # before the slow rootfs lookup
    count, arch = _count(), _arch()
    rootfs: Optional[Path] = _rootfs() if arch == "arm64" else None
    up(count, arch, _out(), rootfs=rootfs, rate=project().options.get("rate"), report=_say)


def _down() -> None:
    from ..sim.cluster import down
    down(_out(), report=_say)


def _arm64_requested() -> bool:
    return _arch() == "arm64"


def task_sim() -> Iterator[Dict[str, Any]]:
    """Simulated cluster: sim:up count=N arch=arm64|x86_64 [rate=100mbit] out=PATH, sim:down out=PATH."""
    from ..sim.cluster import ARM64_ROOTFS_RECIPE
    yield {"basename": "sim", "name": None, "doc": "Simulated cluster on this machine (sim:up, sim:down)"}
    yield {"name": "up", "actions": [(friendly(_up),)], "uptodate": [False], "verbosity": 2,
           "task_dep": realise_task_dep(ARM64_ROOTFS_RECIPE) if _arm64_requested() else [],
           "doc": "Start count=N simulated hosts (arch=arm64|x86_64, rate=) and write out=PATH (cluster.toml)"}
    yield {"name": "down", "actions": [(friendly(_down),)], "uptodate": [False], "verbosity": 2,
           "doc": "Stop the simulated cluster of out=PATH: processes, namespaces, links, mounts"}
