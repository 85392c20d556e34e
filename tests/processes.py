"""Finding the workers a test (or a bench) started, by where they run."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List


def worker_pids(host_dir: Path) -> List[int]:
    """Processes whose working directory is under ``host_dir``: a local host's workers
    run in their own directory below the host's home."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "cwd").startswith(str(host_dir)):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids
