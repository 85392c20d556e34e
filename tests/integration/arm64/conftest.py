"""Fixtures of the arm64 tests: two simulated Pis (sim:up arch=arm64, the bookworm arm64
rootfs under qemu) and doit run against them. The rootfs, the aarch64 wheelhouse and the
hosts' homes (so the installed venv) live in the shared test home: built once per CI run."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from arm64_helpers import doit, sim_up
from prerequisites import require_root, require_tool


@pytest.fixture(scope="session")
def arm64_ready(shared_home: Path) -> Path:
    """Root, the tools, and the bookworm arm64 rootfs built (once) in the shared home."""
    require_root()
    for tool in ("sshd", "ssh", "scp", "ssh-keygen", "ip", "tc", "unshare", "qemu-aarch64-static"):
        require_tool(tool)
    doit("build:rootfs-bookworm-arm64", home=shared_home)
    return shared_home


@pytest.fixture(scope="module")
def arm64_cluster(arm64_ready: Path) -> Iterator[Path]:
    """Two arm64 hosts whose homes persist in the shared test home (the deployed venv is
    reused by the next run: deploy then says "up to date"). Yields the cluster.toml."""
    out = arm64_ready / "arm64-sim" / "cluster.toml"
    sim_up(out, arm64_ready)
    try:
        yield out
    finally:
        doit("sim:down", f"out={out}", home=arm64_ready, check=False)


@pytest.fixture
def fresh_arm64_cluster(arm64_ready: Path, tmp_path: Path) -> Iterator[Path]:
    """Two arm64 hosts with empty homes (for tests that check nothing changed)."""
    out = tmp_path / "cluster.toml"
    sim_up(out, arm64_ready)
    try:
        yield out
    finally:
        doit("sim:down", f"out={out}", home=arm64_ready, check=False)
