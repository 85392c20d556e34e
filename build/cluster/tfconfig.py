"""TF_CONFIG for every host of a job, so nobody hand-edits it on 35 boards again.

TensorFlow reads ``{"cluster": {role: [address:port, ...]}, "task": {"type", "index"}}``.
Indices follow the order of the job's ``hosts`` list in cluster.toml. The evaluator is
not part of the cluster spec (TensorFlow's convention): it only gets its own task entry.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Dict, List

from .config import ClusterConfig

# Role order in the rendered "cluster" dict; evaluator deliberately absent.
_CLUSTER_ROLES = ("chief", "worker", "ps")


def render_tf_config(cluster: ClusterConfig, job: str) -> "OrderedDict[str, Dict[str, Any]]":
    """Host name -> TF_CONFIG dict for every host of ``job``, in the job's host order."""
    spec = cluster.job(job)
    members: Dict[str, List[str]] = {role: [] for role in _CLUSTER_ROLES}
    evaluators: List[str] = []
    task_of: Dict[str, Dict[str, Any]] = {}
    for host in cluster.job_hosts(job):
        role = spec.role_of(host.name)
        if role == "evaluator":
            task_of[host.name] = {"type": "evaluator", "index": len(evaluators)}
            evaluators.append(host.name)
            continue
        task_of[host.name] = {"type": role, "index": len(members[role])}
        members[role].append(host.tf_endpoint)
    cluster_spec = {role: addresses for role, addresses in members.items() if addresses}
    rendered: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()
    for name in spec.hosts:
        rendered[name] = {"cluster": cluster_spec, "task": task_of[name]}
    return rendered


def tf_config_json(tf_config: Dict[str, Any]) -> str:
    """The compact one-line JSON a worker gets in its TF_CONFIG environment variable."""
    return json.dumps(tf_config, separators=(",", ":"))


def tf_config_lines(cluster: ClusterConfig, job: str) -> List[str]:
    """``<host> <json>`` per host: what `doit tfconfig:<job>` prints, for pasting or scripting."""
    return [f"{name} {tf_config_json(config)}" for name, config in render_tf_config(cluster, job).items()]
