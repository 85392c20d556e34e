"""Glue between piforge functions and doit actions: user mistakes print, never trace back."""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable

from doit.exceptions import TaskFailed

from .. import outcome
from ..errors import EXIT_INTERRUPTED, PiforgeError


def friendly(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a python-action so a PiforgeError becomes a clean failure message.

    doit prints a traceback for raised exceptions; returning TaskFailed prints only
    the message, which is what a user who mistyped a field should see. The error's kind
    is noted so that build.main exits with its documented code.
    """

    @functools.wraps(function)
    def action(*args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except PiforgeError as error:
            if not getattr(error, "reported", False):  # a broken recipe is said when tasks load
                print(f"piforge: error: {error}", file=sys.stderr, flush=True)
            outcome.note_failure(error.exit_code)
            return TaskFailed(f"{type(error).__name__}: {error.message.splitlines()[0]}")
        except KeyboardInterrupt:
            print("piforge: interrupted", file=sys.stderr, flush=True)
            outcome.note_failure(EXIT_INTERRUPTED)
            return TaskFailed("interrupted")
        if result is False or isinstance(result, TaskFailed):
            outcome.note_failure(1)
        return True if result is None else result

    return action
