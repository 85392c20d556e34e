"""Make sure every host of a job has the cluster profile's Python before starting it.

On a fresh machine `./piforge train:mnist` must just work: hosts that have no deployed
venv yet get one first, through the same `deploy` as `./piforge deploy` (nothing is
reinstalled on hosts that have it).
"""
from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence

PARALLEL_HOSTS = 16


def hosts_without_python(cluster: Any, names: Sequence[str], overrides: Mapping[str, str]) -> List[str]:
    """Those of ``names`` lacking the Python a job would run with; asked in parallel (one
    ssh connection each: at 35 hosts one after the other took seconds before every run)."""
    from ..cluster.hosts import open_host
    from ..concurrency import map_bounded

    def lacks(name: str) -> bool:
        with open_host(cluster.host(name)) as host:
            python = overrides.get("python") or host.venv_python(cluster.profile)
            return not host.run(["test", "-x", python], check=False, timeout=60).ok

    return [name for name, missing in zip(names, map_bounded(lacks, names, PARALLEL_HOSTS)) if missing]


def _wheelhouse_from_store(profile: Any) -> Any:
    """The profile's wheelhouse, built or substituted if needed (direct API callers)."""
    from ..cluster.wheelhouse import load_wheelhouse
    from ..derivation import derive
    from ..realise import realise
    from ..recipe import load_recipes
    from ..store import Store

    store = Store.default()
    return load_wheelhouse(realise(derive(load_recipes(), profile.wheelhouse), store), store)


def ensure_deployed(cluster: Any, names: Sequence[str], overrides: Mapping[str, str],
                    say: Callable[[str], None], *,
                    provide_wheelhouse: Optional[Callable[[Any], Any]] = None) -> None:
    """Deploy the cluster's profile to those of ``names`` that lack it (not with python=PATH).
    ``provide_wheelhouse(profile)`` gives the wheelhouse (the task layer's Project does,
    so recipes are not loaded a second time)."""
    if overrides.get("python"):
        return
    missing = hosts_without_python(cluster, names, overrides)
    if not missing:
        return
    from ..cluster.deploy import deploy, raise_for_failures
    from ..profiles import load_profile

    profile = load_profile(cluster.profile)
    say(f"no {profile.name} environment on {', '.join(missing)} yet: deploying it first "
        "(once; `./piforge deploy` does the same)")
    wheelhouse = (provide_wheelhouse or _wheelhouse_from_store)(profile)
    raise_for_failures(deploy(cluster, profile, wheelhouse, report=say, hosts=missing), "deploy")
