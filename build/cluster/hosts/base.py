"""The interface every host transport implements.

Commands are argv lists, never shell strings: a transport that needs a shell (ssh)
quotes every word itself, so a hostile path or name in cluster.toml is never code.
Every call has a timeout; failures raise HostError naming the host and the command.
"""
from __future__ import annotations

import abc
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

from ...errors import HostError
from ..config import HostSpec


@dataclass(frozen=True)
class CommandResult:
    host: str
    argv: Tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> "CommandResult":
        """Raise HostError unless the command succeeded (message ends with its stderr)."""
        if self.returncode != 0:
            tail = (self.stderr or self.stdout).strip().splitlines()[-3:]
            raise HostError(f"{self.host}: `{shlex.join(self.argv)}` exited {self.returncode}"
                            + (": " + " | ".join(tail) if tail else ""))
        return self


class Host(abc.ABC):
    """A machine of the cluster as the controller sees it."""

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    # -- where things live on the host -------------------------------------------------
    @property
    @abc.abstractmethod
    def home(self) -> str:
        """Absolute piforge directory on the host (venvs, job files). Local hosts share one."""

    def profile_dir(self, profile: str) -> str:
        """Where `doit deploy` keeps the venvs of ``profile`` (``current`` -> active one)."""
        return f"{self.home}/venvs/{profile}"

    def venv_python(self, profile: str) -> str:
        """The deployed interpreter job scripts run with."""
        return f"{self.profile_dir(profile)}/current/bin/python"

    @property
    def workdir(self) -> str:
        """A per-host scratch directory (distinct even for local hosts sharing ``home``)."""
        return f"{self.home}/hosts/{self.name}"

    # -- commands ----------------------------------------------------------------------
    @abc.abstractmethod
    def run(self, argv: Sequence[str], *, timeout: float = 60.0, env: Optional[Mapping[str, str]] = None,
            cwd: Optional[str] = None, stdin: Optional[bytes] = None, check: bool = True) -> CommandResult:
        """Run ``argv`` to completion; HostError on timeout or (with check) non-zero exit."""

    @abc.abstractmethod
    def spawn(self, argv: Sequence[str], *, env: Optional[Mapping[str, str]] = None,
              cwd: Optional[str] = None, stdout: object = subprocess.PIPE,
              stderr: object = subprocess.STDOUT) -> "subprocess.Popen[bytes]":
        """Start a long-running command (a training worker); the caller owns the Popen.

        Terminating the returned process ends the command on the host too.
        """

    # -- files -------------------------------------------------------------------------
    @abc.abstractmethod
    def put(self, local: Path, remote: str, *, timeout: float = 600.0) -> None:
        """Copy a local file to ``remote`` (parents created); written to a temp name, then renamed."""

    @abc.abstractmethod
    def get(self, remote: str, local: Path, *, timeout: float = 600.0) -> None:
        """Copy ``remote`` to a local file (parents created)."""

    def close(self) -> None:
        """Release connections (ssh master); idempotent."""

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
