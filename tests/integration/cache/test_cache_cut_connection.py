"""A download cut mid-transfer by the server (connection closed before Content-Length
bytes arrived) is a clean failure: nothing enters the store, the next cache is tried."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Dict, Iterator

import pytest

import json

from build.cache.metadata import metadata_key
from build.cache.push import push_one
from build.cache.filesystem import FileRemote
from build.cache.http import HttpRemote
from build.cache.substitute import Substituter
from build.store import Store

pytestmark = pytest.mark.slow


class CuttingServer:
    """Serves files by name over HTTP/1.1 but sends only half of any ``cut`` file's body."""

    def __init__(self, files: Dict[str, bytes], cut: str) -> None:
        self.files, self.cut = files, cut
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)   # accept() wakes up to notice close()
        self.stopping = threading.Event()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                name = request.split(b" ")[1].decode().lstrip("/") if request else ""
                body = self.files.get(name)
                if body is None:
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
                conn.sendall(body[: len(body) // 2] if name == self.cut else body)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def cutting(tmp_path: Path, drvs, install_fake, key) -> Iterator[CuttingServer]:
    built = Store(tmp_path / "built")
    install_fake(built, drvs["dep"], os.urandom(2 << 20))
    push_one(built, drvs["dep"], FileRemote(f"file://{tmp_path}/cache"), key, log=lambda _: None)
    cache = tmp_path / "cache"
    files = {p.relative_to(cache).as_posix(): p.read_bytes() for p in cache.rglob("*") if p.is_file()}
    artifact = json.loads(files[metadata_key(drvs["dep"].hash)])["artifact"]["file"]
    server = CuttingServer(files, cut=artifact)
    try:
        yield server
    finally:
        server.close()


def test_connection_cut_mid_download_leaves_store_unchanged(tmp_path, drvs, trusted, cutting) -> None:
    fresh = Store(tmp_path / "fresh")
    lines: list = []
    substituter = Substituter([HttpRemote(cutting.url)], trusted, log=lines.append)
    assert substituter.pull(drvs["dep"], fresh) is False
    assert fresh.entries() == [] and not list(fresh.root.glob(".staging-*"))
    assert "interrupted" in substituter.rejections[0] or "truncated" in substituter.rejections[0], substituter.rejections
    # the same artifact from an intact cache listed second is used
    good = Substituter([HttpRemote(cutting.url), FileRemote(f"file://{tmp_path}/cache")], trusted, log=lines.append)
    assert good.pull(drvs["dep"], fresh) and fresh.verify(fresh.path_of(drvs["dep"])) == []
