"""fetch() against a real HTTP server on loopback: Range resume after a cut connection,
mirrors, 404s, hash mismatch. The server is a thread in this test process."""
from __future__ import annotations

import hashlib
import http.server
import os
import threading
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from build.errors import FetchError, HashMismatchError
from build.fetch import cached_path, fetch
from build.recipe import Source

pytestmark = pytest.mark.slow

PAYLOAD = os.urandom(3 << 20)   # 3 MiB: several chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    def __init__(self) -> None:
        self.requests: List[Dict[str, str]] = []
        self.cut_first = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "range": self.headers.get("Range", "")})
                if self.path != "/w.tgz":
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_first and len(server.requests) == 1:
                    self.wfile.write(body[: len(body) // 3])   # then drop the connection
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("build.fetch.time.sleep", lambda seconds: None)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    try:
        yield running
    finally:
        running.close()


def source(*urls: str, sha: str = SHA) -> Source:
    return Source(urls=tuple(urls), sha256=sha, filename="w.tgz", unpack=False)


def test_a_cut_connection_is_resumed_with_range(piforge_home: Path, server: Server) -> None:
    server.cut_first = True
    lines: List[str] = []
    path = fetch(source(f"{server.url}/w.tgz"), progress=lines.append)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA
    assert len(server.requests) == 2
    assert server.requests[0]["range"] == ""
    assert server.requests[1]["range"] == f"bytes={len(PAYLOAD) // 3}-"
    assert any("resuming" in line for line in lines)


def test_mirrors_in_order_and_every_failure_named(piforge_home: Path, server: Server) -> None:
    path = fetch(source(f"{server.url}/missing.tgz", f"{server.url}/w.tgz"))
    assert path == cached_path(SHA, "w.tgz")
    assert [r["path"] for r in server.requests] == ["/missing.tgz", "/w.tgz"]
    with pytest.raises(FetchError) as caught:
        fetch(source(f"{server.url}/a.tgz", "http://127.0.0.1:9/b.tgz", sha="c" * 64))
    assert f"{server.url}/a.tgz: HTTP 404" in str(caught.value)
    assert "http://127.0.0.1:9/b.tgz" in str(caught.value)


def test_a_mismatch_leaves_nothing_in_the_cache(piforge_home: Path, server: Server) -> None:
    wrong = "0" * 64
    with pytest.raises(HashMismatchError) as caught:
        fetch(source(f"{server.url}/w.tgz", sha=wrong))
    assert wrong in str(caught.value) and SHA in str(caught.value)
    assert not (piforge_home / "sources" / wrong).exists()
    assert not list((piforge_home / "sources" / ".tmp").glob("*.part"))
