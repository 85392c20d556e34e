"""doit tasks of the train area: train:<job> for every job of the cluster file, report.

Command-line variables: ``cluster=PATH``, ``workers=N``, ``dataset=NAME|PATH``,
``python=PATH``, ``startup_timeout=S``; every other ``key=value`` is a hyperparameter
for the job script (``epochs=3 steps=50 batch=64 optimizer=adam lr=0.001``).
"""
from __future__ import annotations

from typing import Any, Dict, Iterator

from doit import get_var

from .actions import friendly
from .cluster import job_subtasks, selected_cluster

__all__ = ["task_train", "task_report"]


def command_line_vars() -> Dict[str, str]:
    """Every ``key=value`` given on the doit command line."""
    from doit import doit_cmd

    get_var("cluster", None)  # makes sure doit parsed them
    return dict(getattr(doit_cmd, "_CMDLINE_VARS", None) or {})


def _train(job: str) -> None:
    from ..train.launcher import train

    train(selected_cluster(), job, command_line_vars())


def _report() -> None:
    from ..train.report import write_report

    write_report(get_var("runs", None) or get_var("run", None) or "latest")


def task_train() -> Iterator[Dict[str, Any]]:
    """Train a job of cluster.toml on its hosts (e.g. train:mnist dataset=fashion_mnist)."""
    yield from job_subtasks("train", "Train a job of cluster.toml on its hosts", _train,
                            lambda job: f"train job {job} (workers=N dataset=NAME epochs=.. steps=.. batch=..)")


def task_report() -> Dict[str, Any]:
    """Plots and a summary of training runs (run=ID, or runs=ID1,ID2; default: the latest)."""
    return {"actions": [(friendly(_report),)], "uptodate": [False], "verbosity": 2}
