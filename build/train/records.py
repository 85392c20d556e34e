"""Run records: one directory per training run, everything a person needs afterwards.

    <runs_dir>/<run_id>/
        run.json            job, hosts, params, dataset, status, cause, test accuracy, figures
        cluster.toml        snapshot of the cluster file the run used
        tf_config/<host>.json
        logs/<host>.log     every line the worker printed, as it printed it
        events.jsonl        the workers' PIFORGE_EVENT lines, each with its host (and attempt)
        model/              the chief's saved model
"""
from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO

from ..errors import TrainingError
from ..paths import runs_dir

EVENT_PREFIX = "PIFORGE_EVENT "
_EVENT = re.compile(r"^PIFORGE_EVENT (\w+) (\{.*\})\s*$")


def parse_event(line: str) -> Optional[Dict[str, Any]]:
    """``PIFORGE_EVENT kind {json}`` -> {"kind": kind, **fields}; anything else -> None."""
    match = _EVENT.match(line)
    if not match:
        return None
    try:
        fields = json.loads(match.group(2))
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    fields["kind"] = match.group(1)
    return fields


def new_run_id(job: str, workers: int) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{job}-w{workers}"


class RunRecord:
    """The directory of one run, written while it runs (thread-safe appends)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._logs: Dict[str, TextIO] = {}
        self.info: Dict[str, Any] = {}
        self.attempt: Optional[int] = None   # set by the launcher; stamped on every event

    @classmethod
    def create(cls, run_id: str, root: Optional[Path] = None) -> "RunRecord":
        path = (root or runs_dir()) / run_id
        suffix = 1
        while path.exists():  # two runs in the same second
            suffix += 1
            path = (root or runs_dir()) / f"{run_id}.{suffix}"
        (path / "logs").mkdir(parents=True)
        (path / "tf_config").mkdir()
        return cls(path)

    def write_json(self, relative: str, value: Any) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        partial.replace(target)

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into run.json (rewritten whole: readable at any moment)."""
        with self._lock:
            self.info.update(fields)
            self.write_json("run.json", self.info)

    def snapshot(self, source: Path, name: str) -> None:
        shutil.copyfile(source, self.path / name)

    def log_line(self, host: str, line: str) -> None:
        with self._lock:
            handle = self._logs.get(host)
            if handle is None:
                handle = self._logs[host] = open(self.path / "logs" / f"{host}.log", "a", encoding="utf-8")
            handle.write(line + "\n")
            handle.flush()

    def event(self, host: str, fields: Dict[str, Any]) -> None:
        # ``received``: the controller's clock (hosts' clocks may disagree), for recovery times.
        stamped = dict(fields, host=host, received=round(time.time(), 3))
        if self.attempt is not None:
            stamped["attempt"] = self.attempt
        with self._lock:
            with open(self.path / "events.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(stamped, sort_keys=True) + "\n")

    def close(self) -> None:
        with self._lock:
            for handle in self._logs.values():
                handle.close()
            self._logs.clear()


def load_run(path: Path) -> Dict[str, Any]:
    """run.json plus its events, for reports; TrainingError if ``path`` is not a run."""
    info_file = path / "run.json"
    if not info_file.is_file():
        raise TrainingError(f"{path}: not a run record (no run.json)")
    info = json.loads(info_file.read_text(encoding="utf-8"))
    events: List[Dict[str, Any]] = []
    events_file = path / "events.jsonl"
    if events_file.is_file():
        for line in events_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
    info["events"] = events
    info["path"] = str(path)
    return info


def list_runs(root: Optional[Path] = None) -> List[Path]:
    """Every run record, oldest first."""
    base = root or runs_dir()
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / "run.json").is_file())


def find_run(name: str, root: Optional[Path] = None) -> Path:
    """A run by id, id prefix, path, or ``latest``."""
    runs = list_runs(root)
    if name == "latest":
        if not runs:
            raise TrainingError(f"no training runs under {root or runs_dir()}",
                                hint="run one first, e.g. ./piforge train:mnist dataset=fashion_mnist")
        return runs[-1]
    given = Path(name).expanduser()
    if (given / "run.json").is_file():
        return given
    matches = [p for p in runs if p.name.startswith(name)]
    if len(matches) != 1:
        problem = "no run" if not matches else f"{len(matches)} runs"
        known = ", ".join(p.name for p in runs[-5:]) or "none"
        raise TrainingError(f"{problem} matching {name!r} under {root or runs_dir()} (latest: {known})")
    return matches[0]
