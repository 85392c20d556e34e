"""doit tasks of edge inference: export:<job> (TFLite float32 + int8), infer:<job> (latency
on every host of the job).

Command-line variables: ``run=ID`` (default: the job's latest successful run),
``calibration=N`` (representative samples of the int8 conversion), ``dynamic=1`` (also a
dynamic-range model: int8 weights, float activations), ``repeats=N`` (timed
invokes per model and thread count), ``cluster=PATH`` as for train:.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator

from ..options import OptionSpec, _flag, _whole, register
from .cluster import job_subtasks
from .context import project

__all__ = ["task_export", "task_infer"]

register(
    OptionSpec("calibration", _whole, "N", "training samples that calibrate the int8 model (default 300)",
               "export:"),
    OptionSpec("dynamic", _flag, "1/0", "also export dynamic.tflite (dynamic-range: int8 weights, float "
               "activations)", "export:"),
    OptionSpec("repeats", _whole, "N", "timed batch-1 invokes per model and thread count (default 200)",
               "infer:"),
)


def _export(job: str) -> None:
    from ..train.export import export

    here = project()
    here.cluster.job(job)
    export(here.cluster, job, here.options.get("run"), calibration=here.options.get("calibration", 300) or 300,
           dynamic=bool(here.options.get("dynamic", False)))


def _infer(job: str) -> None:
    from ..train.infer import infer

    here = project()
    here.cluster.job(job)
    infer(here.cluster, job, here.options.get("run"), repeats=here.options.get("repeats", 200) or 200)


def task_export() -> Iterator[Dict[str, Any]]:
    """A run's saved model as float32 and int8 TFLite, with test-set accuracies (export:mnist)."""
    yield from job_subtasks("export", "Export a job's trained model to TFLite (float32, int8)", _export,
                            lambda job: f"export job {job}'s latest model to TFLite (run=ID calibration=N dynamic=1)")


def task_infer() -> Iterator[Dict[str, Any]]:
    """Batch-1 latency of the exported models on every host of the job (infer:mnist)."""
    yield from job_subtasks("infer", "Benchmark a job's exported TFLite models on its hosts", _infer,
                            lambda job: f"TFLite and Keras batch-1 latency of job {job} on each host "
                                        "(run=ID repeats=N)")
