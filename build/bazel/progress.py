"""Turn Bazel's ``[N / M] ...`` lines into a progress bar with an ETA.

Bazel's total grows while it discovers actions, so the ETA uses the rate of finished
actions since the first line seen (not since the build started: a resumed build's
first lines fly by on cache hits and would promise far too early an end).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

_PROGRESS = re.compile(r"^\s*\[(\d[\d,]*) / (\d[\d,]*)\]")
BAR_WIDTH = 30


def parse_progress(line: str) -> Optional[Tuple[int, int]]:
    """``[1,234 / 5,678] Compiling ...`` -> (1234, 5678); anything else -> None."""
    match = _PROGRESS.match(line)
    if not match:
        return None
    done, total = (int(group.replace(",", "")) for group in match.groups())
    return (done, total) if total > 0 else None


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass
class ProgressMeter:
    """Feed it log lines with their time; it answers with a bar when progress moved."""

    label: str = "bazel"
    _first: Optional[Tuple[float, int]] = None
    last: Optional[Tuple[int, int]] = None

    def feed(self, line: str, now: float) -> Optional[str]:
        progress = parse_progress(line)
        if progress is None:
            return None
        done, total = progress
        if self._first is None:
            self._first = (now, done)
        self.last = progress
        return self.render(done, total, self.eta(done, total, now))

    def eta(self, done: int, total: int, now: float) -> Optional[float]:
        assert self._first is not None
        started, done_then = self._first
        elapsed, finished = now - started, done - done_then
        if elapsed <= 0 or finished <= 0:
            return None
        return (total - done) * elapsed / finished

    def render(self, done: int, total: int, eta: Optional[float]) -> str:
        fraction = min(1.0, done / total)
        filled = int(round(fraction * BAR_WIDTH))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        remaining = "ETA --" if eta is None else f"ETA {format_duration(eta)}"
        return f"{self.label} [{bar}] {done}/{total} {fraction * 100:5.1f}% {remaining}"
