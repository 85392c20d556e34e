"""Mount points seen from this process, and a last-resort cleanup before deleting a tree.

Builders keep their mounts in private mount namespaces, so normally nothing is ever
mounted below a build or staging dir. Deleting a tree that still had, say, /sys bound
inside would be a disaster, so the engine checks (and lazily unmounts) first anyway.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import List


def mount_points() -> List[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 4:
                points.append(fields[4].encode().decode("unicode_escape"))
    return points


def mounts_below(path: Path) -> List[str]:
    root = os.path.realpath(path)
    return [p for p in mount_points() if p == root or p.startswith(root.rstrip("/") + "/")]


def unmount_below(path: Path) -> List[str]:
    """Detach every mount at or below ``path``, deepest first; returns what was found."""
    found = sorted(mounts_below(path), key=len, reverse=True)
    for point in found:
        subprocess.call(["umount", "-l", point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return found
