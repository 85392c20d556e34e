"""Make sure every host of a job has the cluster profile's Python before starting it.

On a fresh machine `./piforge train:mnist` must just work: hosts that have no deployed
venv yet get one first, through the same `deploy` as `./piforge deploy` (nothing is
reinstalled on hosts that have it).
"""
from __future__ import annotations

from typing import Any, Callable, List, Mapping, Sequence


def hosts_without_python(cluster: Any, names: Sequence[str], overrides: Mapping[str, str]) -> List[str]:
    from ..cluster.hosts import open_host

    missing = []
    for name in names:
        with open_host(cluster.host(name)) as host:
            python = overrides.get("python") or host.venv_python(cluster.profile)
            if not host.run(["test", "-x", python], check=False, timeout=60).ok:
                missing.append(name)
    return missing


def ensure_deployed(cluster: Any, names: Sequence[str], overrides: Mapping[str, str],
                    say: Callable[[str], None]) -> None:
    """Deploy the cluster's profile to those of ``names`` that lack it (not with python=PATH)."""
    if overrides.get("python"):
        return
    missing = hosts_without_python(cluster, names, overrides)
    if not missing:
        return
    from ..cluster.deploy import deploy, raise_for_failures
    from ..cluster.wheelhouse import load_wheelhouse
    from ..derivation import derive
    from ..profiles import load_profile
    from ..realise import realise
    from ..recipe import load_recipes
    from ..store import Store

    profile = load_profile(cluster.profile)
    say(f"no {profile.name} environment on {', '.join(missing)} yet: deploying it first "
        "(once; `./piforge deploy` does the same)")
    store = Store.default()
    wheelhouse = load_wheelhouse(realise(derive(load_recipes(), profile.wheelhouse), store), store)
    raise_for_failures(deploy(cluster, profile, wheelhouse, report=say, hosts=missing), "deploy")
