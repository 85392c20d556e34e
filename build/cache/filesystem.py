"""A directory as a cache backend (file://): offline machines, USB sticks, NFS mounts."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

from ..errors import CacheError
from .remote import STREAM_CHUNK, Remote, redact


class FileRemote(Remote):
    """Writes are atomic (temp file + rename), so a reader never sees half an artifact."""

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
