"""doit tasks of the train area: train:<job> for every job of the cluster file, report.

Command-line variables: ``cluster=PATH``, ``profile=NAME``, ``workers=N``,
``dataset=NAME|PATH``, ``python=PATH``, ``startup_timeout=S``; any other ``key=value`` must
be a hyperparameter the job declares (``epochs=3 steps=50 batch=64 optimizer=adam
lr=0.001`` for the built-in jobs): anything else is refused before a byte is deployed.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator

from .actions import friendly
from .cluster import job_subtasks
from .context import project

__all__ = ["task_train", "task_report"]

# Options of the table that the launcher reads (as the strings the user typed).
LAUNCH_OPTIONS = ("workers", "dataset", "python", "startup_timeout", "script", "files",
                  "max_restarts", "min_workers", "spares", "keep")


def train_overrides() -> Dict[str, str]:
    """What the launcher gets: its own options and the job's hyperparameters."""
    options = project().options
    launch = {name: options.raw[name] for name in LAUNCH_OPTIONS if name in options.raw}
    return dict(launch, **project().hyperparameters())


def _train(job: str) -> None:
    from ..train.launcher import train

    here = project()
    cluster = here.cluster
    here.cluster_profile()   # a bad profile= is said before anything is deployed
    train(cluster, job, train_overrides(), provide_wheelhouse=here.wheelhouse)


def _report() -> None:
    from ..train.report import write_report

    options = project().options
    runs = options.get("runs")
    write_report(",".join(runs) if runs else options.get("run") or "latest")


def task_train() -> Iterator[Dict[str, Any]]:
    """Train a job of cluster.toml on its hosts (e.g. train:mnist epochs=3)."""
    yield from job_subtasks("train", "Train a job of cluster.toml on its hosts", _train,
                            lambda job: f"train job {job} (workers=N dataset=NAME epochs=.. steps=.. batch=..)")


def task_report() -> Dict[str, Any]:
    """Plots and a summary of training runs (run=ID, or runs=ID1,ID2; default: the latest)."""
    return {"actions": [(friendly(_report),)], "uptodate": [False], "verbosity": 2}
