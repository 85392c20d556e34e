"""doit tasks of the cluster area: tfconfig:<job>, cluster:check, deploy, rollback.

Every task reads the cluster file of this run's Project (``cluster=PATH``, else
$PIFORGE_CLUSTER, else the repo's cluster.toml); ``profile=NAME`` overrides the file's
profile, ``hosts=a,b`` limits deploy/rollback to some hosts, ``job=NAME`` picks the mesh
of cluster:check. A broken file leaves every task in place: each one reports all of the
file's problems when run (exit code 2).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Iterator

from doit.exceptions import TaskFailed

from ..project import wheelhouse_recipe
from .actions import friendly
from .context import project
from .spine import realise_task_dep

__all__ = ["task_tfconfig", "task_cluster", "task_deploy", "task_rollback"]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def job_subtasks(basename: str, doc: str, action: Callable[[str], Any],
                 job_doc: Callable[[str], str]) -> Iterator[Dict[str, Any]]:
    """``<basename>:<job>`` for every job of the cluster file (with a broken file: every
    job it names and every one asked for, each reporting the file's problems)."""
    yield {"basename": basename, "name": None, "doc": doc}
    for job in project().job_names():
        yield {"name": job, "actions": [(friendly(action), (job,))], "uptodate": [False], "verbosity": 2,
               "doc": job_doc(job)}


# -- tfconfig ------------------------------------------------------------------------------
def _print_tf_configs(job: str) -> None:
    from ..cluster.tfconfig import tf_config_lines
    for line in tf_config_lines(project().cluster, job):
        print(line, flush=True)


def task_tfconfig() -> Iterator[Dict[str, Any]]:
    """Print each host's TF_CONFIG for a job: `<host> <json>` per line."""
    return job_subtasks("tfconfig", "Print each host's TF_CONFIG for a job", _print_tf_configs,
                        lambda job: f"TF_CONFIG of every host of job {job}")


# -- cluster:check -------------------------------------------------------------------------
def _check() -> Any:
    from ..cluster.check import check_cluster, check_table

    here = project()
    cluster = here.cluster
    profile = here.cluster_profile()
    job = here.options.get("job")
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
def _deploy() -> None:
    from ..cluster.deploy import deploy, raise_for_failures, summary

    here = project()
    cluster = here.cluster
    profile = here.cluster_profile()
    hosts = here.selected_hosts()
    wheelhouse = here.wheelhouse(profile, build=False)   # realise:<wheelhouse> ran before
    targets = deploy(cluster, profile, wheelhouse, report=_say, hosts=hosts,
                     relay=here.options.flag("relay", True))
    print(summary(targets), flush=True)
    raise_for_failures(targets, "deploy")


def _rollback() -> None:
    from ..cluster.deploy import raise_for_failures, rollback, summary

    here = project()
    targets = rollback(here.cluster, here.cluster_profile(), report=_say, hosts=here.selected_hosts())
    print(summary(targets), flush=True)
    raise_for_failures(targets, "rollback")


def task_deploy() -> Dict[str, Any]:
    """Install the profile's wheelhouse in a new venv on every host; switch after the check import."""
    return {
        "actions": [(friendly(_deploy),)],
        "task_dep": realise_task_dep(wheelhouse_recipe(project())),
        "uptodate": [False],
        "verbosity": 2,
    }


def task_rollback() -> Dict[str, Any]:
    """Return every host to its previous venv (current <-> previous)."""
    return {"actions": [(friendly(_rollback),)], "uptodate": [False], "verbosity": 2}
