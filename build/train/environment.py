"""Make sure every host of a job has the cluster profile's Python before starting it.

On a fresh machine `./piforge train:mnist` must just work: hosts that have no deployed
venv yet get one first, through the same `deploy` as `./piforge deploy` (nothing is
reinstalled on hosts that have it).
"""
from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence

PARALLEL_HOSTS = 16


def hosts_without_python(cluster: Any, names: Sequence[str], overrides: Mapping[str, str],
                         opened: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Those of ``names`` lacking the Python a job would run with; asked in parallel (one
    ssh connection each: at 35 hosts one after the other took seconds before every run).
    Hosts in ``opened`` are asked over that connection (the launcher's, reused for the run)."""
    from ..cluster.hosts import open_host
    from ..concurrency import map_bounded

    def lacks(name: str) -> bool:
        if opened is not None and name in opened:
            return _lacks_python(opened[name], cluster, overrides)
        with open_host(cluster.host(name)) as host:
            return _lacks_python(host, cluster, overrides)

    return [name for name, missing in zip(names, map_bounded(lacks, names, PARALLEL_HOSTS)) if missing]


def _lacks_python(host: Any, cluster: Any, overrides: Mapping[str, str]) -> bool:
    python = overrides.get("python") or host.venv_python(cluster.profile)
    return not host.run(["test", "-x", python], check=False, timeout=60).ok


def _wheelhouse_from_store(profile: Any) -> Any:
    """The profile's wheelhouse for direct API callers: the same Project the tasks use
    (built, or substituted from the binary cache, if needed), with default options."""
    from ..options import Options
    from ..project import Project

    return Project(Options()).wheelhouse(profile)


def ensure_deployed(cluster: Any, names: Sequence[str], overrides: Mapping[str, str],
                    say: Callable[[str], None], *,
                    provide_wheelhouse: Optional[Callable[[Any], Any]] = None,
                    opened: Optional[Mapping[str, Any]] = None) -> None:
    """Deploy the cluster's profile to those of ``names`` that lack it (not with python=PATH).
    ``provide_wheelhouse(profile)`` gives the wheelhouse (the task layer's Project does,
    so recipes are not loaded a second time)."""
    if overrides.get("python"):
        return
    missing = hosts_without_python(cluster, names, overrides, opened)
    if not missing:
        return
    from ..cluster.deploy import deploy, raise_for_failures
    from ..profiles import load_profile

    profile = load_profile(cluster.profile)
    say(f"no {profile.name} environment on {', '.join(missing)} yet: deploying it first "
        "(once; `./piforge deploy` does the same)")
    wheelhouse = (provide_wheelhouse or _wheelhouse_from_store)(profile)
    raise_for_failures(deploy(cluster, profile, wheelhouse, report=say, hosts=missing), "deploy")
