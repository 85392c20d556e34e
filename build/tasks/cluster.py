"""doit tasks of the cluster area: tfconfig:<job>, cluster:check, deploy, rollback.

Every task reads the cluster file given with ``cluster=PATH`` (doit get_var), default
the repo's cluster.toml; ``profile=NAME`` overrides the file's profile, ``hosts=a,b``
limits deploy/rollback to some hosts, ``job=NAME`` picks the mesh of cluster:check.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Iterator, List, Optional

from doit import get_var

from ..cluster.config import ClusterConfig, cluster_file, load_cluster
from ..errors import PiforgeError
from .actions import friendly

__all__ = ["task_tfconfig", "task_cluster", "task_deploy", "task_rollback"]


def selected_cluster() -> ClusterConfig:
    """The cluster of this doit run (``cluster=PATH``, else $PIFORGE_CLUSTER, else cluster.toml)."""
    return load_cluster(cluster_file(get_var("cluster", None)))


def selected_profile(cluster: ClusterConfig) -> Any:
    from ..profiles import load_profile
    return load_profile(get_var("profile", None) or cluster.profile)


def _selected_hosts(cluster: ClusterConfig) -> Optional[List[str]]:
    chosen = get_var("hosts", None)
    if not chosen:
        return None
    names = [n.strip() for n in str(chosen).split(",") if n.strip()]
    for name in names:
        cluster.host(name)   # ClusterConfigError for an unknown name
    return names


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- tfconfig ------------------------------------------------------------------------------
def _print_tf_configs(job: str) -> None:
    from ..cluster.tfconfig import tf_config_lines
    for line in tf_config_lines(selected_cluster(), job):
        print(line, flush=True)


def _job_names() -> Optional[list]:
    try:
        return sorted(selected_cluster().jobs)
    except PiforgeError:
        return None  # reported when a task actually runs


def job_subtasks(basename: str, doc: str, action: Callable[[str], Any],
                 job_doc: Callable[[str], str]) -> Iterator[Dict[str, Any]]:
    """``<basename>:<job>`` for every job of the selected cluster file; a broken file gives
    one subtask that reports its error (file:LINE: field: problem) when run."""
    yield {"basename": basename, "name": None, "doc": doc}
    names = _job_names()
    if names is None:
        yield {"name": "<invalid-cluster-file>", "actions": [(friendly(selected_cluster),)],
               "uptodate": [False], "verbosity": 2, "doc": "report the cluster file's error"}
        return
    for job in names:
        yield {"name": job, "actions": [(friendly(action), (job,))], "uptodate": [False], "verbosity": 2,
               "doc": job_doc(job)}


def task_tfconfig() -> Iterator[Dict[str, Any]]:
    """Print each host's TF_CONFIG for a job: `<host> <json>` per line."""
    return job_subtasks("tfconfig", "Print each host's TF_CONFIG for a job", _print_tf_configs,
                        lambda job: f"TF_CONFIG of every host of job {job}")


# -- cluster:check -------------------------------------------------------------------------
def _check() -> Any:
    from doit.exceptions import TaskFailed

    from ..cluster.check import check_cluster, check_table
    cluster = selected_cluster()
    profile = selected_profile(cluster)
    job = get_var("job", None)
    if job:
        cluster.job(job)
    _say(f"cluster:check: {len(cluster.job_hosts(job) if job else cluster.hosts)} hosts of {cluster.path} "
         f"against profile {profile.name}" + (f", mesh of job {job}" if job else ""))
    checks = check_cluster(cluster, profile, job, report=_say)
    print(check_table(checks), flush=True)
    unfit = [c.spec.name for c in checks if not c.fit]
    if unfit:
        return TaskFailed(f"unfit for {profile.name}: {', '.join(unfit)} (reasons above)")
    return True


def task_cluster() -> Iterator[Dict[str, Any]]:
    """Cluster tasks: cluster:check."""
    yield {"basename": "cluster", "name": None, "doc": "Cluster tasks (cluster:check)"}
    yield {
        "name": "check",
        "actions": [(friendly(_check),)],
        "uptodate": [False],
        "verbosity": 2,
        "doc": "Per-host table: reachable, arch, OS, Python, RAM, disk, TF, port, clock, mesh; fails if unfit",
    }


# -- deploy / rollback ---------------------------------------------------------------------
def _wheelhouse_recipe() -> Optional[str]:
    """The recipe `deploy` depends on; None when unknown (the action then reports why)."""
    from ..paths import recipes_dir
    try:
        name = str(selected_profile(selected_cluster()).wheelhouse)
    except PiforgeError:
        return None
    return name if (recipes_dir() / f"{name}.toml").is_file() else None


def _deploy() -> None:
    from ..cluster.deploy import deploy, raise_for_failures, summary
    from ..cluster.wheelhouse import load_wheelhouse
    from ..derivation import derive
    from ..recipe import load_recipes
    from ..store import Store

    cluster = selected_cluster()
    profile = selected_profile(cluster)
    hosts = _selected_hosts(cluster)
    store = Store.default()
    drv = derive(load_recipes(), profile.wheelhouse)
    wheelhouse = load_wheelhouse(store.require(drv), store)
    targets = deploy(cluster, profile, wheelhouse, report=_say, hosts=hosts,
                     relay=get_var("relay", "yes") not in ("no", "0", "false"))
    print(summary(targets), flush=True)
    raise_for_failures(targets, "deploy")


def _rollback() -> None:
    from ..cluster.deploy import raise_for_failures, rollback, summary

    cluster = selected_cluster()
    targets = rollback(cluster, selected_profile(cluster), report=_say, hosts=_selected_hosts(cluster))
    print(summary(targets), flush=True)
    raise_for_failures(targets, "rollback")


def task_deploy() -> Dict[str, Any]:
    """Install the profile's wheelhouse in a new venv on every host; switch after the check import."""
    recipe = _wheelhouse_recipe()
    return {
        "actions": [(friendly(_deploy),)],
        "task_dep": [f"realise:{recipe}"] if recipe else [],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_rollback() -> Dict[str, Any]:
    """Return every host to its previous venv (current <-> previous)."""
    return {"actions": [(friendly(_rollback),)], "uptodate": [False], "verbosity": 2}
