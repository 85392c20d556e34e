"""A real nginx WebDAV server on loopback for the cache tests (own prefix, port, temp dir)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from build.cache.davserver import DavServer
from tests.cache_fixtures import drvs, install_fake, key, trusted  # noqa: F401
from prerequisites import require_tool


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[DavServer]:
    """nginx with WebDAV PUT on 127.0.0.1:<free port>, stopped (and checked gone) after the test."""
    require_tool("nginx")
    server = DavServer(tmp_path / "nginx")
    try:
        server.start()
        yield server
    finally:
        process = server.process
        server.stop()
        assert process is None or process.poll() is not None
