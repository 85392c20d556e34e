"""Local workers isolated like separate machines: a private /tmp per worker.

All local hosts of a cluster are processes on one box. Each already has its own working
directory (``<home>/hosts/<name>/runs/<run>``), but /tmp is shared: two workers of a
user's script that saves to a fixed path (``model.save("/tmp/keras_save")``, as the
user's own scripts do) write the same files and race (measured: 3 of 5 runs failed in
MergeV2Checkpoints). On real Pis every worker has its own /tmp.

- root (and ``unshare`` works): the worker runs in a private mount namespace
  (``unshare --mount --propagation private``) where ``<workdir>/tmp/<run>`` is bound on
  /tmp. The network is not unshared: peers stay reachable on loopback. ``unshare`` and
  the small ``sh`` that mounts both ``exec``, so the process the supervisor started *is*
  the worker: signals to its process group reach the real process. Paths under /tmp the
  worker needs (its host home, venv, data) are bound back into the private /tmp first.
  The mounts exist only in that namespace and vanish with its last process.
- otherwise: ``TMPDIR`` is the per-worker directory (Python's tempfile and TF honour it)
  and one note says that /tmp itself is still shared.

Either way the per-worker directory is removed when the job ends (``release``).
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

Say = Callable[[str], None]

NAMESPACE = "mount-namespace"
TMPDIR_ONLY = "tmpdir"
OFF = "off"
# Diagnostics only (e.g. to show the collision it prevents): PIFORGE_LOCAL_ISOLATION=off.
SWITCH = "PIFORGE_LOCAL_ISOLATION"
SHARED_TMP = "/tmp"
PRIVATE_ROOT = "/var/tmp/piforge-private-tmp"


def namespace_problem() -> Optional[str]:
    """Why a private mount namespace cannot be made here (None: it can)."""
    if os.geteuid() != 0:
        return "not running as root"
    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            return f"no {tool} command"
    try:
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare failed: {error}"
    if probe.returncode != 0:
        return "unshare --mount failed: " + probe.stderr.decode("utf-8", "replace").strip()[:120]
    return None


def _under_tmp(path: str) -> bool:
    real = os.path.realpath(SHARED_TMP)
    return path == real or path.startswith(real.rstrip("/") + "/")


def paths_to_keep(candidates: Sequence[str]) -> List[str]:
    """The real paths under /tmp a worker needs visible through its private /tmp, outermost
    only (a path inside another one is covered by its bind)."""
    real = sorted({os.path.realpath(p) for p in candidates if p and os.path.isabs(p)})
    inside = [p for p in real if _under_tmp(p) and os.path.exists(p)]
    kept: List[str] = []
    for path in inside:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def namespace_argv(private: str, keep: Sequence[str], argv: Sequence[str]) -> List[str]:
    """``argv`` run in a private mount namespace with ``private`` on /tmp and every ``keep``
    path bound back at its own place. Paths are shell-quoted; the command stays argv."""
    tmp = os.path.realpath(SHARED_TMP)
    steps = ["set -e"]
    for path in keep:
        inner = private.rstrip("/") + path[len(tmp):]
        steps.append(f"mkdir -p {shlex.quote(inner)}")
        steps.append(f"mount --bind {shlex.quote(path)} {shlex.quote(inner)}")
    # rbind: the binds made just above ride along onto /tmp.
    steps.append(f"mount --rbind {shlex.quote(private)} {shlex.quote(tmp)}")
    steps.append('exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", "; ".join(steps), "piforge-private-tmp", *argv]


def mounts_under(path: str) -> List[str]:
    """Mount points at or below ``path`` in this process's namespace (from mountinfo)."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            for line in handle:
                point = line.split()[4].replace("\\040", " ")
                if point == prefix[:-1] or point.startswith(prefix):
                    found.append(point)
    except OSError:
        pass
    return found


def private_dir(workdir: str, run_id: str) -> str:
    """``<workdir>/tmp/<run>``; a workdir under /tmp itself (tests, PIFORGE_HOME=/tmp/..)
    gets one under /var/tmp instead, so the private /tmp does not contain itself."""
    if not _under_tmp(os.path.realpath(workdir)):
        return f"{workdir}/tmp/{run_id}"
    tag = hashlib.sha256(workdir.encode("utf-8")).hexdigest()[:10]
    return f"{PRIVATE_ROOT}/{run_id}-{os.path.basename(workdir)}-{tag}/tmp"


@dataclass
class _RunState:
    mode: str
    reason: Optional[str]
    dirs: Dict[str, str] = field(default_factory=dict)  # host -> its private /tmp
    noted: bool = False


class LocalIsolation:
    """Per run: wraps local workers' commands and removes their private dirs afterwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: Dict[str, _RunState] = {}
        self._probe: Optional[Tuple[Optional[str]]] = None

    def _state(self, run_id: str) -> _RunState:
        state = self._runs.get(run_id)
        if state is None:
            if os.environ.get(SWITCH, "").lower() in ("0", "off", "no", "false"):
                state = _RunState(OFF, f"{SWITCH}=off")
            else:
                if self._probe is None:
                    self._probe = (namespace_problem(),)
                problem = self._probe[0]
                state = _RunState(TMPDIR_ONLY if problem else NAMESPACE, problem)
            self._runs[run_id] = state
        return state

    def wrap(self, host: object, run_id: str, cwd: str, argv: Sequence[str], env: Dict[str, str],
             say: Say) -> Tuple[List[str], Dict[str, str]]:
        """``argv`` and ``env`` for a worker of ``run_id`` on ``host``; ssh hosts unchanged
        (a real machine has its own /tmp)."""
        spec = getattr(host, "spec")
        if spec.transport != "local":
            return list(argv), env
        with self._lock:
            state = self._state(run_id)
            if state.mode == OFF:
                return list(argv), env
            private = private_dir(str(getattr(host, "workdir")), run_id)
            os.makedirs(private, exist_ok=True)
            os.chmod(private, 0o1777)  # like /tmp: a worker that drops privileges can write
            state.dirs[spec.name] = private
            env = dict(env)
            keep = paths_to_keep([getattr(host, "home"), cwd, os.path.dirname(os.path.dirname(argv[0]))]
                                 + [v for v in env.values() if v.startswith("/")])
            if state.mode == NAMESPACE and any(p == os.path.realpath(SHARED_TMP) for p in keep):
                state.mode, state.reason = TMPDIR_ONLY, "the host home is /tmp itself"
            if state.mode == NAMESPACE:
                env["TMPDIR"] = SHARED_TMP  # the private one; never the controller's TMPDIR
                return namespace_argv(private, keep, argv), env
            env["TMPDIR"] = private
            if not state.noted:
                state.noted = True
                say(f"note: local workers share /tmp ({state.reason}: no private mount namespace); "
                    f"each gets its own TMPDIR (e.g. {private}), but a script writing "
                    "a fixed /tmp path can still collide with its neighbour")
            return list(argv), env

    def mode(self, run_id: str) -> Optional[str]:
        state = self._runs.get(run_id)
        return state.mode if state else None

    def release(self, run_id: str, say: Say) -> None:
        """Remove the run's private dirs (its workers are gone: their mounts went with them)."""
        with self._lock:
            state = self._runs.pop(run_id, None)
        if state is None:
            return
        for host, private in state.dirs.items():
            busy = mounts_under(private)
            if busy:  # never delete through a mount into someone's real files
                say(f"warning: {host}: kept {private}: still mounted here: {', '.join(busy)}")
                continue
            shutil.rmtree(private, ignore_errors=True)
            try:
                Path(private).parent.rmdir()  # <workdir>/tmp (or the /var/tmp stand-in) once empty
            except OSError:
                pass


LOCAL_ISOLATION = LocalIsolation()
