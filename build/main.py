"""piforge's command line: doit's, with exit codes that say what failed.

``./piforge X`` runs ``python -m build.main X``. doit exits 1 for any failed task and 3 for
anything wrong before tasks start; scripts and CI want to tell a broken cluster.toml (2)
from a failed build (5) or a failed training run (10), so the first failing task's error
kind decides the code (docs/spine.md lists them; ``./piforge exit-codes`` prints them).
"""
from __future__ import annotations

import sys
from typing import List, Optional

from doit.doit_cmd import DoitMain

from . import outcome
from .errors import EXIT_INTERRUPTED


class PiforgeMain(DoitMain):
    BIN_NAME = "./piforge"


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    outcome.reset()
    try:
        # doit's own loader: dodo.py of the current directory (./piforge runs in the repo),
        # or -f FILE / --dir DIR as with plain doit (tests run their own task files).
        code = PiforgeMain().run(args)
    except KeyboardInterrupt:
        print("piforge: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    noted = outcome.failure_code()
    return noted if code != 0 and noted is not None else code


if __name__ == "__main__":
    sys.exit(main())
