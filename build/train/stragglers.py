"""Stragglers and tiny shards, from a run record's per-host epoch events.

Straggler rule: for every host, the median over its steady epochs (after the first, which
pays for graph tracing; all epochs if there is only one) of its per-step time; a host
whose figure is >= 1.3x the median of the *other* hosts' figures is a straggler (with 2
hosts: >= 1.3x the other one). The figure is the jobkit's ``compute_probe`` (a forward
pass timed on the host alone) when every host reported one, else the wall-clock
``step_time``: under MultiWorkerMirroredStrategy each step ends in an all-reduce, so the
wall-clock step time of every host is the slowest host's and names nobody.

Tiny-shard rule: a worker whose shard holds fewer than 4 batches (shard samples //
per-worker batch < 4) repeats the same few batches every epoch, and many small hosts
each see a sliver of the data: the accuracy of such runs is not worth trusting.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

STRAGGLER_FACTOR = 1.3
MIN_SHARD_BATCHES = 4


@dataclass(frozen=True)
class Straggler:
    host: str
    seconds: float       # its per-step figure
    others: float        # the median of the other hosts' figures
    measure: str         # "compute_probe" or "step_time"

    @property
    def ratio(self) -> float:
        return self.seconds / self.others


@dataclass(frozen=True)
class TinyShard:
    host: str
    samples: int
    batch: int

    @property
    def batches(self) -> int:
        return self.samples // max(1, self.batch)


def per_epoch(run: Dict[str, Any], key: str) -> Dict[str, Dict[int, float]]:
    """host -> epoch -> ``key`` of its epoch events (the last report of an epoch wins,
    e.g. after a restart)."""
    table: Dict[str, Dict[int, float]] = {}
    for event in run.get("events", []):
        if event.get("kind") == "epoch" and event.get(key) is not None:
            table.setdefault(str(event["host"]), {})[int(event["epoch"])] = float(event[key])
    return table


def _steady_median(epochs: Dict[int, float]) -> float:
    later = [value for epoch, value in epochs.items() if epoch > 1]
    return statistics.median(later or list(epochs.values()))


def host_figures(run: Dict[str, Any]) -> Tuple[str, Dict[str, float]]:
    """(measure, host -> its steady per-step seconds) as the straggler rule uses them."""
    hosts = [str(h) for h in run.get("hosts") or []]
    for measure in ("compute_probe", "step_time"):
        table = per_epoch(run, measure)
        names = hosts or sorted(table)
        if names and all(table.get(h) for h in names):
            return measure, {h: _steady_median(table[h]) for h in names}
    return "step_time", {}


def find_stragglers(figures: Dict[str, float], measure: str = "step_time",
                    factor: float = STRAGGLER_FACTOR) -> List[Straggler]:
    """Hosts at >= ``factor`` x the median of the others (slowest first); none below 2 hosts."""
    found = []
    for host, seconds in figures.items():
        others = [v for h, v in figures.items() if h != host]
        if not others:
            continue
        baseline = statistics.median(others)
        if baseline > 0 and seconds >= factor * baseline:
            found.append(Straggler(host, seconds, baseline, measure))
    return sorted(found, key=lambda s: -s.ratio)


def tiny_shards(run: Dict[str, Any], minimum: int = MIN_SHARD_BATCHES) -> List[TinyShard]:
    """Workers whose ``shard`` event says fewer than ``minimum`` batches."""
    shards: Dict[str, TinyShard] = {}
    for event in run.get("events", []):
        if event.get("kind") == "shard":
            shards[str(event["host"])] = TinyShard(str(event["host"]), int(event["samples"]), int(event["batch"]))
    return [s for s in shards.values() if s.batches < minimum]


def step_time_table(run: Dict[str, Any]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """For run.json: host -> {"step_time": {epoch: s}, "compute_probe": {epoch: s}}
    (epochs as strings: JSON keys)."""
    table: Dict[str, Dict[str, Dict[str, float]]] = {}
    for key in ("step_time", "compute_probe"):
        for host, epochs in per_epoch(run, key).items():
            table.setdefault(host, {})[key] = {str(e): v for e, v in sorted(epochs.items())}
    return table


def findings(run: Dict[str, Any]) -> List[str]:
    """One sentence per straggler and per tiny shard (empty: nothing to say)."""
    lines = []
    measure, figures = host_figures(run)
    what = "own compute time per probe pass" if measure == "compute_probe" else "step time"
    for slow in find_stragglers(figures, measure):
        lines.append(f"straggler: {slow.host}: {what} {slow.seconds * 1000:.1f} ms is {slow.ratio:.1f}x "
                     f"the median of the other hosts ({slow.others * 1000:.1f} ms; rule: >= "
                     f"{STRAGGLER_FACTOR}x); synchronous training runs at its pace")
    for shard in tiny_shards(run):
        lines.append(f"tiny shard: {shard.host}: its shard holds {shard.samples} samples = {shard.batches} "
                     f"batch(es) of {shard.batch} per epoch (< {MIN_SHARD_BATCHES}): it repeats the same few "
                     "batches; use more data per worker, a smaller batch, or fewer workers")
    return lines

