"""The one small interface every builder implements, and the job it is handed.

A builder's only job is to run a derivation's phases somewhere (this machine, an arm64
chroot, a container) so that they see ``$PIFORGE_SRC``, ``$PIFORGE_OUT``,
``$PIFORGE_SOURCES`` and the input store paths. Fetching, unpacking, checking outputs
and installing into the store are the engine's (build/realise.py), the same for all.
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, Mapping, Optional, Sequence

from ..builder_kinds import builder_identity
from ..epoch import SOURCE_DATE_EPOCH
from ..errors import BuildError

if TYPE_CHECKING:  # imported for annotations only: recipe.py imports this package
    from ..derivation import Derivation
    from ..recipe import BuilderSpec, Phase


LogSink = Callable[[str], None]


@dataclass(frozen=True)
class BuildJob:
    """Everything a builder needs to run one derivation's phases. Frozen: the engine
    fetches and unpacks the sources first (src_dir is final), then makes the job."""

    derivation: "Derivation"
    build_dir: Path           # scratch root of this build (holds src/ and tmp/)
    src_dir: Path             # cwd of the phases: the unpacked source tree
    out_dir: Path             # $PIFORGE_OUT: what ends up in the store
    sources_dir: Path         # $PIFORGE_SOURCES: every fetched source file by its filename
    inputs: Dict[str, Path]   # input recipe name -> its store path
    base: Optional[Path]      # store path of builder.base (rootfs / image), if any
    env: Dict[str, str]       # recipe [env] (the builder adds the PIFORGE_* variables)
    log: LogSink              # one line (without newline) at a time, to the build log
    jobs: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    # A Bazel HTTP cache for builders with bazel = true; given by the caller (the task
    # layer reads $PIFORGE_BAZEL_REMOTE_CACHE / the cache config): builders never read it.
    bazel_remote_cache: Optional[str] = None


def input_variable(name: str) -> str:
    """``PIFORGE_INPUT_<NAME>``: upper-case, ``-`` and ``.`` become ``_``."""
    return "PIFORGE_INPUT_" + name.upper().replace("-", "_").replace(".", "_")


def phase_environment(job: BuildJob, *, src: str, out: str, sources: str,
                      inputs: Mapping[str, str], home: str, tmp: str,
                      path: str) -> Dict[str, str]:
    """The complete, clean environment of a phase, given paths as the phase sees them."""
    env = {
        "PATH": path,
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
        "PYTHONHASHSEED": "0",
        "PIFORGE_SRC": src,
        "PIFORGE_OUT": out,
        "PIFORGE_SOURCES": sources,
        "PIFORGE_JOBS": str(job.jobs),
        "PIFORGE_NAME": job.derivation.name,
        "PIFORGE_VERSION": job.derivation.version,
    }
    for name, where in inputs.items():
        env[input_variable(name)] = where
    env.update({str(k): str(v) for k, v in job.env.items()})
    return env


def inner_src(job: BuildJob, inner_root: str) -> str:
    """Where ``job.src_dir`` appears when ``job.build_dir/src`` is mounted at ``inner_root``
    (chroot, container): builders that move the tree keep its shape below src/."""
    src_root = job.build_dir / "src"
    try:
        relative = job.src_dir.relative_to(src_root)
    except ValueError:
        raise BuildError(f"internal: source dir {job.src_dir} is not under {src_root}") from None
    return inner_root if str(relative) == "." else f"{inner_root}/{relative.as_posix()}"


def phase_script(phase: "Phase", cwd: str) -> str:
    """The exact shell text a phase runs (also what ``doit plan:`` shows)."""
    where = '"$PIFORGE_SRC"' if cwd == "$PIFORGE_SRC" else quote(cwd)
    return f"set -euo pipefail\numask 022\ncd {where}\n{phase.run}"


def quote(text: str) -> str:
    """Single-quote ``text`` for sh."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def run_logged(argv: Sequence[str], job: BuildJob, phase: "Phase",
               env: Optional[Dict[str, str]] = None) -> None:
    """Run one phase's process, streaming its output into the build log.

    The child gets its own process group so Ctrl-C or a failure here can stop the
    whole tree (make, gcc, qemu...) instead of leaving it running.
    """
    job.log(f"--- phase {phase.name} ({'network' if phase.network else 'offline'})")
    process = subprocess.Popen(list(argv), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True, preexec_fn=_die_with_parent)
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            job.log(raw.decode("utf-8", "replace").rstrip("\n"))
        code = process.wait()
    except BaseException:
        _kill_group(process)
        raise
    if code != 0:
        raise BuildError(f"{job.derivation.name}: phase '{phase.name}' failed with exit code {code}")


# Builders put a phase in a PID namespace whose init is the child of ``unshare
# --kill-child``: if piforge itself is killed (even SIGKILL), the kernel kills unshare
# (parent-death signal), unshare's death kills the namespace's init, and that kills
# every process of the phase. Nothing keeps writing into a dead build.
PID_NAMESPACE = ["--pid", "--fork", "--kill-child"]
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: receive SIGKILL when the parent (piforge) dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass   # not glibc/Linux: the process group kill on Ctrl-C still applies


def _kill_group(process: "subprocess.Popen[Any]") -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    except ProcessLookupError:
        pass


class Builder:
    """Runs a derivation's phases. Subclasses set ``kind`` and implement ``run``."""

    kind: ClassVar[str] = ""

    def __init__(self, spec: "BuilderSpec") -> None:
        self.spec = spec

    @classmethod
    def identity(cls, spec: "BuilderSpec") -> Dict[str, Any]:
        """What about the build environment can change outputs (build/builder_kinds.py)."""
        return builder_identity(cls.kind, spec.options)

    def check_prerequisites(self, job: Optional[BuildJob] = None) -> None:
        """Raise PrerequisiteError saying exactly what to run if this builder cannot work here."""

    def run(self, job: BuildJob) -> None:
        raise NotImplementedError
