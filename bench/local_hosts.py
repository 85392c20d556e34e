"""Local benchmark clusters: hosts are directories laid out as `doit deploy` leaves them,
whose deployed python is a shim to the TensorFlow venv under test."""
from __future__ import annotations

from pathlib import Path
from typing import List

PROFILE = "bench"


def shim_host(home: Path, python: str, prefix: str = "") -> Path:
    """``home/venvs/bench/current/bin/python`` runs ``python`` (after ``prefix``, a shell
    line such as an export, or a command such as ``taskset -c 0``)."""
    script = home / "venvs" / PROFILE / "current" / "bin" / "python"
    script.parent.mkdir(parents=True)
    script.write_text(f'#!/bin/sh\n{prefix}exec {python} "$@"\n')
    script.chmod(0o755)
    return home


def local_cluster_text(name: str, hosts: List[Path], base_port: int) -> str:
    """The [cluster] table and one [[hosts]] entry per home (named after its directory)."""
    text = f'[cluster]\nname = "{name}"\ntransport = "local"\nprofile = "{PROFILE}"\n\n'
    for index, home in enumerate(hosts):
        text += (f'[[hosts]]\nname = "{home.name}"\naddress = "127.0.0.1"\ntf_port = {base_port + index}\n'
                 f'home = "{home}"\n\n')
    return text
