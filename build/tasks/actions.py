"""Glue between piforge functions and doit actions: user mistakes print, never trace back."""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable

from doit.exceptions import TaskFailed

from ..errors import PiforgeError


def friendly(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a python-action so a PiforgeError becomes a clean failure message.

    doit prints a traceback for raised exceptions; returning TaskFailed prints only
    the message, which is what a user who mistyped a field should see.
    """

    @functools.wraps(function)
    def action(*args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except PiforgeError as error:
            if not getattr(error, "reported", False):  # e.g. a broken recipe, said at load time
                print(f"piforge: error: {error}", file=sys.stderr, flush=True)
            return TaskFailed(f"{type(error).__name__}: {error.message}")
        except KeyboardInterrupt:
            print("piforge: interrupted", file=sys.stderr, flush=True)
            return TaskFailed("interrupted")
        return True if result is None else result

    return action
