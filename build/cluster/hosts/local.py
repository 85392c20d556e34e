"""Local hosts: processes on this machine (the built-in cluster runs everything on one box).

All local hosts share one piforge home, so one deployed venv serves them all; each
gets its own ``workdir`` for job files.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ...errors import HostError
from ...paths import piforge_home
from .base import CommandResult, Host


class LocalHost(Host):
    @property
    def home(self) -> str:
        configured = self.spec.home
        return str(Path(configured).expanduser().resolve() if configured else piforge_home().resolve())

    def _environment(self, env: Optional[Mapping[str, str]]) -> dict:
        merged = dict(os.environ)
        merged.update(env or {})
        return merged

    def run(self, argv: Sequence[str], *, timeout: float = 60.0, env: Optional[Mapping[str, str]] = None,
            cwd: Optional[str] = None, stdin: Optional[bytes] = None, check: bool = True) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        try:
            process = subprocess.Popen(argv, cwd=cwd, env=self._environment(env),
                                       stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as error:
            raise HostError(f"{self.name}: cannot run {argv[0]!r}: {error.strerror}") from None
        try:
            out, err = process.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise HostError(f"{self.name}: `{' '.join(argv)}` timed out after {timeout:g} s") from None
        result = CommandResult(self.name, argv, process.returncode,
                               out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        return result.check() if check else result

    def spawn(self, argv: Sequence[str], *, env: Optional[Mapping[str, str]] = None,
              cwd: Optional[str] = None, stdout: object = subprocess.PIPE,
              stderr: object = subprocess.STDOUT) -> "subprocess.Popen[bytes]":
        try:
            # Own process group, so stopping a worker also stops what it started.
            return subprocess.Popen([str(a) for a in argv], cwd=cwd, env=self._environment(env),  # type: ignore[call-overload]
                                    stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                    start_new_session=True)
        except OSError as error:
            raise HostError(f"{self.name}: cannot start {argv[0]!r}: {error.strerror}") from None

    def put(self, local: Path, remote: str, *, timeout: float = 600.0) -> None:
        _copy_atomically(Path(local), Path(remote), self.name)

    def get(self, remote: str, local: Path, *, timeout: float = 600.0) -> None:
        _copy_atomically(Path(remote), Path(local), self.name)


def _copy_atomically(source: Path, target: Path, host: str) -> None:
    partial = target.with_name(f".{target.name}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, partial)
        shutil.copymode(source, partial)
        os.replace(partial, target)
    except OSError as error:
        if partial.exists():
            partial.unlink()
        raise HostError(f"{host}: cannot copy {source} -> {target}: {error.strerror or error}") from None


def _kill_group(process: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
