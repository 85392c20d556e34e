"""The Project of this doit run, made once when doit loads the tasks.

Every task module asks ``project()`` instead of reading ``get_var`` and files itself. The
first call parses the command-line variables; a mistake there (an unknown variable, a
value of the wrong type) is said once and ends the run before any task starts.
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Tuple

from .. import outcome
from ..errors import PiforgeError
from ..options import from_doit
from ..project import Project

_current: Optional[Tuple[Tuple[Tuple[str, str], ...], Tuple[str, ...], Project]] = None


def project() -> Project:
    """The Project of this run (made again only if doit's variables changed, as in tests
    that run several doit commands in one process)."""
    global _current
    try:
        options = from_doit()
        # PIFORGE_* variables pick the home, recipes and cluster: a change means a new project
        environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("PIFORGE_")))
        key = (tuple(sorted(options.raw.items())) + environment, options.tasks)
        if _current is None or _current[:2] != key:
            here = Project(options)
            here.check_variables()
            _current = (key[0], key[1], here)
    except PiforgeError as error:
        _stop_on_mistake(error)
    assert _current is not None
    return _current[2]


def _stop_on_mistake(error: PiforgeError) -> None:
    print(f"piforge: error: {error}", file=sys.stderr, flush=True)
    outcome.note_failure(error.exit_code)
    raise SystemExit(error.exit_code)
