"""Cache backends: plain HTTP(S) (nginx WebDAV, any static server for pulls) and file://
(S3: ``s3.py``).

A backend knows four verbs on names relative to its base URL: HEAD, GET (whole, for
small metadata), GET as a stream (artifacts), PUT. Credentials come from the
environment (PIFORGE_CACHE_TOKEN, or PIFORGE_CACHE_USER + PIFORGE_CACHE_PASSWORD), from
user:password in the URL, or from ~/.netrc (requests reads it); they are never part of
``display`` or of any message, so logs and metadata cannot leak them.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Tuple

import requests

from ..errors import CacheError

TIMEOUT = (10, 120)  # connect, read (seconds)
STREAM_CHUNK = 1 << 20


def redact(url: str) -> str:
    """``url`` without user:password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class Remote:
    """Interface of every backend; ``calls`` records (verb, name) so tests and the
    bench can prove e.g. that pushing a present artifact cost exactly one HEAD."""

    display: str

    def __init__(self) -> None:
        self.calls: List[Tuple[str, str]] = []

    def head(self, name: str) -> bool:
        raise NotImplementedError

    def get_bytes(self, name: str, limit: int = 64 << 20) -> Optional[bytes]:
        raise NotImplementedError

    def open_stream(self, name: str) -> "contextlib.AbstractContextManager[Optional[BinaryIO]]":
        raise NotImplementedError

    def put_file(self, name: str, path: Path, content_type: str = "application/octet-stream") -> None:
        raise NotImplementedError

    def put_bytes(self, name: str, data: bytes, content_type: str = "application/json") -> None:
        raise NotImplementedError


class HttpRemote(Remote):
    def __init__(self, url: str) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(url)
        self.base = redact(url).rstrip("/") + "/"
        self.display = self.base
        self.session = requests.Session()
        token = os.environ.get("PIFORGE_CACHE_TOKEN")
        user = os.environ.get("PIFORGE_CACHE_USER")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif user:
            self.session.auth = (user, os.environ.get("PIFORGE_CACHE_PASSWORD", ""))
        elif parts.username is not None:
            self.session.auth = (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        # else: requests falls back to ~/.netrc for the host.

    def _url(self, name: str) -> str:
        return self.base + urllib.parse.quote(name)

    def _request(self, verb: str, name: str, **kwargs) -> requests.Response:
        self.calls.append((verb, name))
        try:
            return self.session.request(verb, self._url(name), timeout=TIMEOUT, **kwargs)
        except requests.RequestException as error:
            # The exception text can embed the URL; rebuild the message from safe parts.
            raise CacheError(f"{verb} {self.display}{name}: {type(error).__name__}: cannot reach the cache") from None

    def _fail(self, verb: str, name: str, response: requests.Response) -> CacheError:
        hint = None
        if response.status_code in (401, 403):
            hint = "set PIFORGE_CACHE_TOKEN, or PIFORGE_CACHE_USER/PIFORGE_CACHE_PASSWORD, or a ~/.netrc entry"
        elif verb == "PUT" and response.status_code == 405:
            hint = "this server does not accept uploads (nginx needs `dav_methods PUT`)"
        return CacheError(f"{verb} {self.display}{name}: HTTP {response.status_code} {response.reason}", hint=hint)

    def head(self, name: str) -> bool:
        response = self._request("HEAD", name, allow_redirects=True)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail("HEAD", name, response)

    def get_bytes(self, name: str, limit: int = 64 << 20) -> Optional[bytes]:
        with self.open_stream(name) as stream:
            if stream is None:
                return None
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise CacheError(f"GET {self.display}{name}: larger than {limit} bytes")
        return data

    @contextlib.contextmanager
    def open_stream(self, name: str) -> Iterator[Optional[BinaryIO]]:
        response = self._request("GET", name, stream=True)
        try:
            if response.status_code == 404:
                yield None
                return
            if response.status_code != 200:
                raise self._fail("GET", name, response)
            response.raw.decode_content = False
            yield _SafeStream(response.raw, f"{self.display}{name}")  # type: ignore[misc]
        finally:
            response.close()

    def put_file(self, name: str, path: Path, content_type: str = "application/octet-stream") -> None:
        size = path.stat().st_size
        with open(path, "rb") as body:
            response = self._request("PUT", name, data=body,
                                     headers={"Content-Type": content_type, "Content-Length": str(size)})
        if response.status_code not in (200, 201, 204):
            raise self._fail("PUT", name, response)

    def put_bytes(self, name: str, data: bytes, content_type: str = "application/json") -> None:
        response = self._request("PUT", name, data=data, headers={"Content-Type": content_type})
        if response.status_code not in (200, 201, 204):
            raise self._fail("PUT", name, response)


class _SafeStream:
    """urllib3's raw stream, with connection errors turned into CacheError (URL-free)."""

    def __init__(self, raw, display: str) -> None:
        self.raw = raw
        self.display = display

    def read(self, size: int = -1) -> bytes:
        try:
            return self.raw.read(size if size is not None and size >= 0 else None)
        except Exception as error:  # urllib3 raises ProtocolError/IncompleteRead/ReadTimeout
            raise CacheError(f"GET {self.display}: download interrupted ({type(error).__name__})") from None


class FileRemote(Remote):
    """A directory as a cache (offline machines, USB sticks, shared NFS mounts)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise CacheError(f"cache URL {redact(url)!r}: a file cache needs an absolute path: file:///srv/cache")
        self.root = Path(urllib.parse.unquote(parts.path))
        self.display = f"file://{self.root}/"

    def _path(self, name: str) -> Path:
        return self.root / name

    def head(self, name: str) -> bool:
        self.calls.append(("HEAD", name))
        return self._path(name).is_file()

    def get_bytes(self, name: str, limit: int = 64 << 20) -> Optional[bytes]:
        with self.open_stream(name) as stream:
            data = None if stream is None else stream.read(limit + 1)
        if data is not None and len(data) > limit:
            raise CacheError(f"GET {self.display}{name}: larger than {limit} bytes")
        return data

    @contextlib.contextmanager
    def open_stream(self, name: str) -> Iterator[Optional[BinaryIO]]:
        self.calls.append(("GET", name))
        try:
            handle = open(self._path(name), "rb")
        except FileNotFoundError:
            yield None
            return
        with handle:
            yield handle  # type: ignore[misc]

    def _atomic_write(self, name: str, write) -> None:
        self.calls.append(("PUT", name))
        target = self._path(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".put-", dir=str(target.parent))
            with os.fdopen(fd, "wb") as out:
                write(out)
            os.chmod(temp, 0o644)
            os.replace(temp, target)
        except OSError as error:
            raise CacheError(f"PUT {self.display}{name}: {error.strerror or error}") from None

    def put_file(self, name: str, path: Path, content_type: str = "application/octet-stream") -> None:
        def copy(out: BinaryIO) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, out, STREAM_CHUNK)
        self._atomic_write(name, copy)

    def put_bytes(self, name: str, data: bytes, content_type: str = "application/json") -> None:
        self._atomic_write(name, lambda out: out.write(data))


def open_remote(url: str, endpoint: Optional[str] = None, region: Optional[str] = None) -> Remote:
    """The backend for ``url``: http(s)://, file:// or s3:// (``endpoint``/``region``: S3 only)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in ("http", "https"):
        return HttpRemote(url)
    if scheme == "file":
        return FileRemote(url)
    if scheme == "s3":
        from .s3 import S3Remote   # imported late: s3.py builds on HttpRemote

        return S3Remote(url, endpoint=endpoint, region=region)
    raise CacheError(f"cache URL {redact(url)!r}: unsupported scheme {scheme!r} "
                     "(use http://, https://, file:// or s3://)")
