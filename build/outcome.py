"""The exit code of this run, as the failing task's error decides it.

doit's own runner returns 1 for any failed task; piforge's tasks note here which kind of
error failed first, and build.main turns that into the documented exit code.
"""
from __future__ import annotations

from typing import Optional

_first_failure: Optional[int] = None


def note_failure(code: int) -> None:
    """Remember ``code`` unless an earlier failure already decided the run's code."""
    global _first_failure
    if _first_failure is None:
        _first_failure = code


def failure_code() -> Optional[int]:
    return _first_failure


def reset() -> None:
    global _first_failure
    _first_failure = None
