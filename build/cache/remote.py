"""What every cache backend is: four verbs on names relative to a base URL.

HEAD, GET (whole, for small metadata), GET as a stream (artifacts), PUT. The backends
(http.py, filesystem.py, s3.py) register by URL scheme in backends.py. Credentials are
never part of ``display`` or of any message, so logs and metadata cannot leak them.
"""
from __future__ import annotations

import contextlib
import urllib.parse
from pathlib import Path
from typing import BinaryIO, List, Optional, Tuple

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
