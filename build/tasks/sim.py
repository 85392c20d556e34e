"""doit tasks of a simulated cluster: sim:up, sim:down (see build/sim/cluster.py).

Variables (doit get_var): ``count=N`` hosts (``hosts`` is the comma list of host names
of deploy/rollback), ``arch=arm64|x86_64``, ``rate=100mbit`` (optional tc tbf shaping of
every link), ``out=PATH`` the cluster.toml to write (its state file is PATH.sim.json).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from doit import get_var

from ..errors import SimError
from .actions import friendly
from .spine import realise_task_dep

__all__ = ["task_sim"]

DEFAULT_OUT = "sim-cluster.toml"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _out() -> Path:
    return Path(str(get_var("out", DEFAULT_OUT)))


def _count() -> int:
    from ..sim.cluster import parse_count
    raw = get_var("count", None)
    if raw is None:
        raw = get_var("hosts", None)   # hosts=N as the issue spells it, when it is a number
        if raw is not None and not str(raw).isdigit():
            raise SimError("count: give the number of hosts as count=N (hosts= is a list of names elsewhere)")
    return parse_count(2 if raw is None else raw)


def _arch() -> str:
    from ..sim.cluster import parse_arch
    return parse_arch(get_var("arch", "arm64"))


def _rootfs() -> Path:
    from ..derivation import derive
    from ..recipe import load_recipes
    from ..sim.cluster import ARM64_ROOTFS_RECIPE
    from ..store import Store
    store = Store.default()
    return store.require(derive(load_recipes(), ARM64_ROOTFS_RECIPE))


def _up() -> None:
    from ..sim.cluster import require_sim_prerequisites, up
    require_sim_prerequisites()   # before the slow rootfs lookup
    count, arch = _count(), _arch()
    rootfs: Optional[Path] = _rootfs() if arch == "arm64" else None
    up(count, arch, _out(), rootfs=rootfs, rate=get_var("rate", None), report=_say)


def _down() -> None:
    from ..sim.cluster import down
    down(_out(), report=_say)


def _arm64_requested() -> bool:
    return str(get_var("arch", "arm64")) in ("arm64", "aarch64")


def task_sim() -> Iterator[Dict[str, Any]]:
    """Simulated cluster: sim:up count=N arch=arm64|x86_64 [rate=100mbit] out=PATH, sim:down out=PATH."""
    from ..sim.cluster import ARM64_ROOTFS_RECIPE
    yield {"basename": "sim", "name": None, "doc": "Simulated cluster on this machine (sim:up, sim:down)"}
    yield {"name": "up", "actions": [(friendly(_up),)], "uptodate": [False], "verbosity": 2,
           "task_dep": realise_task_dep(ARM64_ROOTFS_RECIPE) if _arm64_requested() else [],
           "doc": "Start count=N simulated hosts (arch=arm64|x86_64, rate=) and write out=PATH (cluster.toml)"}
    yield {"name": "down", "actions": [(friendly(_down),)], "uptodate": [False], "verbosity": 2,
           "doc": "Stop the simulated cluster of out=PATH: processes, namespaces, links, mounts"}
