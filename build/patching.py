"""Apply a recipe's [[patches]] to the unpacked source tree, in order, with GNU patch.

A patch that does not apply stops the build before any phase runs, with a PatchError
naming the patch, the file and the hunk that failed (from patch's own report)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, List, Sequence

from .errors import PatchError, PrerequisiteError
from .recipe import Patch

_PATCHING = re.compile(r"^patching file '?(?P<file>[^']+?)'?$")
_HUNK = re.compile(r"^Hunk #(?P<hunk>\d+) FAILED at (?P<line>\d+)")


def failed_hunks(output: str) -> List[str]:
    """'file F: hunk #N failed at line L' for each failure patch reported."""
    current = "?"
    found = []
    for line in output.splitlines():
        patching = _PATCHING.match(line.strip())
        if patching:
            current = patching.group("file")
            continue
        hunk = _HUNK.match(line.strip())
        if hunk:
            found.append(f"file {current}: hunk #{hunk.group('hunk')} failed at line {hunk.group('line')}")
    return found


def apply_patches(patches: Sequence[Patch], src_dir: Path, log: Callable[[str], None]) -> None:
    enabled = [p for p in patches if p.enabled]
    for patch in patches:
        if not patch.enabled:
            log(f"--- patch {patch.file}: disabled (enabled = false), not applied")
    if not enabled:
        return
    if shutil.which("patch") is None:
        raise PrerequisiteError("the recipe has [[patches]] but GNU patch is not installed",
                                hint="apt-get install -y patch   # scripts/setup-host.sh installs it")
    for patch in enabled:
        log(f"--- patch {patch.file} sha256 {patch.sha256} (-p{patch.strip})")
        result = subprocess.run(
            ["patch", f"-p{patch.strip}", "--batch", "--forward", "--no-backup-if-mismatch",
             "--reject-file=-", "-d", str(src_dir), "-i", patch.path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        for line in result.stdout.splitlines():
            log(f"  {line}")
        if result.returncode != 0:
            hunks = failed_hunks(result.stdout)
            detail = "; ".join(hunks) if hunks else (result.stdout.strip().splitlines() or ["patch failed"])[-1]
            raise PatchError(f"patch {patch.file} does not apply to {src_dir.name}: {detail}",
                             hint="refresh the patch against this source version, or set enabled = false")
