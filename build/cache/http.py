"""Plain HTTP(S) cache backend: nginx WebDAV, or any static server for pulls.

Credentials come from the ``auth`` given (S3's signer), else the environment
(PIFORGE_CACHE_TOKEN, or PIFORGE_CACHE_USER + PIFORGE_CACHE_PASSWORD), else user:password
in the URL, else ~/.netrc (requests reads it).
"""
from __future__ import annotations

import contextlib
import os
import urllib.parse
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Optional

import requests

from ..errors import CacheError
from .remote import TIMEOUT, Remote, redact


class HttpRemote(Remote):
    """The verbs over HTTP; ``where`` is added to "cannot reach" messages (S3: the endpoint)."""

    def __init__(self, url: str, *, auth: Optional[Any] = None, display: Optional[str] = None,
                 where: str = "") -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(url)
        self.base = redact(url).rstrip("/") + "/"
        self.display = display or self.base
        self.where = where
        self.session = requests.Session()
        token = os.environ.get("PIFORGE_CACHE_TOKEN")
        if auth is not None:
            self.session.auth = auth   # e.g. SigV4: requests then adds no ~/.netrc Basic auth
            return
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
            raise CacheError(f"{verb} {self.display}{name}: {type(error).__name__}: "
                             f"cannot reach the cache{self.where}") from None

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
