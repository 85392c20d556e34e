"""Hosts: one small interface (run, spawn, put, get, with timeouts) over local processes and ssh."""
from __future__ import annotations

from typing import Optional

from ..config import HostSpec
from .base import CommandResult, Host


def open_host(spec: HostSpec, *, agent_socket: Optional[str] = None) -> Host:
    """The Host object for ``spec`` (its transport decides the class).

    ``agent_socket``: an ssh-agent the ssh connection forwards (deploy's relay hops).
    """
    if spec.transport == "ssh":
        from .ssh import SshHost
        return SshHost(spec, agent_socket=agent_socket)
    from .local import LocalHost
    return LocalHost(spec)


__all__ = ["CommandResult", "Host", "open_host"]
