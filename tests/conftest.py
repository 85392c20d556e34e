"""Shared fixtures. Unit tests get a fresh PIFORGE_HOME; heavy derivations (rootfs,
images, profile venvs) live in one shared test home built once per CI run."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: integration test against real components")
    config.addinivalue_line("markers", "root: needs root (chroot, namespaces, mounts)")


@pytest.fixture
def piforge_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty piforge home for one test."""
    home = tmp_path / "piforge-home"
    home.mkdir()
    monkeypatch.setenv("PIFORGE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_home() -> Path:
    """A piforge home shared by the whole run (and across runs on a dev machine):
    the arm64 rootfs and other expensive, content-addressed outputs are built once."""
    home = Path(os.environ.get("PIFORGE_TEST_HOME", str(REPO / ".piforge" / "test-home")))
    home.mkdir(parents=True, exist_ok=True)
    return home
