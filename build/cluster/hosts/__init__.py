"""Hosts: one small interface (run, spawn, put, get, with timeouts) over local processes and ssh."""
from __future__ import annotations

from ..config import HostSpec
from .base import CommandResult, Host


def open_host(spec: HostSpec) -> Host:
    """The Host object for ``spec`` (its transport decides the class)."""
    if spec.transport == "ssh":
        from .ssh import SshHost
        return SshHost(spec)
    from .local import LocalHost
    return LocalHost(spec)


__all__ = ["CommandResult", "Host", "open_host"]
