"""doit tasks of the cluster area: tfconfig:<job>, cluster:check, deploy, rollback.

Every task reads the cluster file given with ``cluster=PATH`` (doit get_var), default
the repo's cluster.toml.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional

from doit import get_var

from ..cluster.config import ClusterConfig, cluster_file, load_cluster
from ..errors import PiforgeError
from .actions import friendly

__all__ = ["task_tfconfig"]


def selected_cluster() -> ClusterConfig:
    """The cluster of this doit run (``cluster=PATH``, else $PIFORGE_CLUSTER, else cluster.toml)."""
    return load_cluster(cluster_file(get_var("cluster", None)))


def _print_tf_configs(job: str) -> None:
    from ..cluster.tfconfig import tf_config_lines
    for line in tf_config_lines(selected_cluster(), job):
        print(line)


def _job_names() -> Optional[list]:
    try:
        return sorted(selected_cluster().jobs)
    except PiforgeError:
        return None  # reported when a task actually runs


def task_tfconfig() -> Iterator[Dict[str, Any]]:
    """Print each host's TF_CONFIG for a job: `<host> <json>` per line."""
    yield {"basename": "tfconfig", "name": None, "doc": "Print each host's TF_CONFIG for a job"}
    names = _job_names()
    if names is None:
        yield {"name": "<invalid-cluster-file>", "actions": [(friendly(selected_cluster),)],
               "uptodate": [False], "verbosity": 2, "doc": "report the cluster file's error"}
        return
    for job in names:
        yield {
            "name": job,
            "actions": [(friendly(_print_tf_configs), (job,))],
            "uptodate": [False],
            "verbosity": 2,
            "doc": f"TF_CONFIG of every host of job {job}",
        }
