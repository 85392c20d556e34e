"""fetch() logic against a fake requests session: mirrors in order, PyPI resolution,
hash mismatch (nothing cached), resume with Range. The real HTTP path is tested in
tests/integration/spine/test_fetch_http.py."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import requests

from build.errors import FetchError, HashMismatchError
from build.fetch import cached_path, download, fetch, local_path
from build.recipe import Source

PAYLOAD = b"wrapt sources " * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FakeResponse:
    def __init__(self, status: int, body: bytes = b"", headers: Optional[Dict[str, str]] = None,
                 url: str = "", cut_after: Optional[int] = None) -> None:
        self.status_code = status
        self.reason = "reason"
        self.body = body
        self.headers = dict(headers or {})
        self.headers.setdefault("Content-Length", str(len(body)))
        self.url = url
        self.cut_after = cut_after

    def json(self) -> Any:
        return json.loads(self.body)

    def iter_content(self, chunk_size: int) -> Any:
        data = self.body if self.cut_after is None else self.body[:self.cut_after]
        for start in range(0, len(data), chunk_size):
            yield data[start:start + chunk_size]
        if self.cut_after is not None:
            raise requests.exceptions.ChunkedEncodingError("connection cut")

    def __enter__(self) -> "FakeResponse":
        return self

    def __exit__(self, *args: Any) -> None:
        pass


class FakeSession:
    """Answers each URL from a list of prepared responses (callables get the headers)."""

    def __init__(self, routes: Dict[str, List[Any]]) -> None:
        self.routes = routes
        self.calls: List[tuple] = []

    def get(self, url: str, headers: Optional[Dict[str, str]] = None, **kwargs: Any) -> FakeResponse:
        self.calls.append((url, dict(headers or {})))
        answers = self.routes.get(url)
        if not answers:
            raise requests.exceptions.ConnectionError(f"no route to {url}")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(headers or {}) if callable(answer) else answer


def source(*urls: str, sha: str = SHA, filename: str = "wrapt-1.12.1.tar.gz") -> Source:
    return Source(urls=tuple(urls), sha256=sha, filename=filename, unpack=True)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("build.fetch.time.sleep", lambda seconds: None)


def test_mirrors_are_tried_in_order_and_the_result_cached(piforge_home: Path) -> None:
    session = FakeSession({"https://b.example/w.tgz": [FakeResponse(200, PAYLOAD)]})
    path = fetch(source("https://a.example/w.tgz", "https://b.example/w.tgz"), session=session)
    assert path == cached_path(SHA, "wrapt-1.12.1.tar.gz") and path.read_bytes() == PAYLOAD
    assert [c[0] for c in session.calls][0] == "https://a.example/w.tgz"
    again = FakeSession({})
    assert fetch(source("https://a.example/w.tgz"), session=again) == path and again.calls == []


def test_a_hash_mismatch_names_both_hashes_and_caches_nothing(piforge_home: Path) -> None:
    session = FakeSession({"https://a.example/w.tgz": [FakeResponse(200, b"tampered")]})
    with pytest.raises(HashMismatchError) as caught:
        fetch(source("https://a.example/w.tgz"), session=session)
    message = str(caught.value)
    assert SHA in message and hashlib.sha256(b"tampered").hexdigest() in message
    assert not cached_path(SHA, "wrapt-1.12.1.tar.gz").exists()
    assert not list((piforge_home / "sources" / ".tmp").glob("*.part"))


def test_every_failed_url_is_named(piforge_home: Path) -> None:
    session = FakeSession({"https://b.example/w.tgz": [FakeResponse(404)]})
    with pytest.raises(FetchError) as caught:
        fetch(source("https://a.example/w.tgz", "https://b.example/w.tgz", "ftp://c.example/w.tgz"),
              session=session)
    message = str(caught.value)
    for url in ("https://a.example/w.tgz", "https://b.example/w.tgz", "ftp://c.example/w.tgz"):
        assert url in message
    assert "HTTP 404" in message and "unsupported URL scheme 'ftp'" in message


def test_a_cut_download_resumes_with_a_range_request(piforge_home: Path) -> None:
    def resumed(headers: Dict[str, str]) -> FakeResponse:
        start = int(headers["Range"].split("=")[1].rstrip("-"))
        return FakeResponse(206, PAYLOAD[start:])

    session = FakeSession({"https://a.example/w.tgz": [FakeResponse(200, PAYLOAD, cut_after=5000), resumed]})
    path = fetch(source("https://a.example/w.tgz"), session=session)
    assert path.read_bytes() == PAYLOAD
    assert session.calls[1][1] == {"Range": "bytes=5000-"}


def test_a_server_ignoring_range_restarts_from_zero(piforge_home: Path, tmp_path: Path) -> None:
    part = tmp_path / "x.part"
    part.write_bytes(b"garbage-prefix")
    session = FakeSession({"https://a.example/w.tgz": [FakeResponse(200, PAYLOAD)]})
    download("https://a.example/w.tgz", part, session)
    assert part.read_bytes() == PAYLOAD


def test_pypi_resolves_the_sdist_and_checks_its_published_digest(piforge_home: Path) -> None:
    release = {"urls": [
        {"packagetype": "bdist_wheel", "filename": "wrapt-1.12.1-py3-none-any.whl", "url": "/w.whl",
         "digests": {"sha256": "0" * 64}},
        {"packagetype": "sdist", "filename": "wrapt-1.12.1.tar.gz",
         "url": "../../packages/wrapt-1.12.1.tar.gz", "digests": {"sha256": SHA}}]}
    session = FakeSession({
        "https://pypi.org/pypi/wrapt/1.12.1/json": [FakeResponse(404)],
        "https://pypi.org/pypi/wrapt/json": [FakeResponse(200, json.dumps({"releases": {"1.12.1": release["urls"]}}).encode(),
                                                          url="https://pypi.org/pypi/wrapt/json")],
        "https://pypi.org/packages/wrapt-1.12.1.tar.gz": [FakeResponse(200, PAYLOAD)],
    })
    assert fetch(source("pypi:wrapt==1.12.1"), session=session).read_bytes() == PAYLOAD
    other = "f" * 64
    with pytest.raises(HashMismatchError, match="PyPI's published digest"):
        fetch(source("pypi:wrapt==1.12.1", sha=other), session=session)
    assert not cached_path(other, "wrapt-1.12.1.tar.gz").exists()


def test_local_files_and_urls(piforge_home: Path, tmp_path: Path) -> None:
    (tmp_path / "w.tgz").write_bytes(PAYLOAD)
    assert local_path("file:///x/y.tgz", None) == Path("/x/y.tgz")
    assert local_path("w.tgz", tmp_path) == tmp_path / "w.tgz"
    assert local_path("https://a/b", tmp_path) is None
    assert fetch(source("w.tgz"), base_dir=tmp_path).read_bytes() == PAYLOAD
    with pytest.raises(FetchError, match="no such file"):
        fetch(source(str(tmp_path / "missing.tgz"), sha="e" * 64))


def test_a_local_directory_is_pinned_by_its_tree_hash(piforge_home: Path, tmp_path: Path) -> None:
    from build.filehash_cache import tree_hash

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.c").write_text("int a;")
    digest = tree_hash(tree)
    path = fetch(Source(urls=(f"file://{tree}",), sha256=digest, filename="tree", unpack=False))
    assert (path / "sub" / "a.c").read_text() == "int a;"
    (tree / "sub" / "a.c").write_text("int b;")
    with pytest.raises(HashMismatchError):
        fetch(Source(urls=(f"file://{tree}",), sha256="d" * 64, filename="tree", unpack=False))
