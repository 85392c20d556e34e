"""Stat-cached file hashing, as git's index does: (path, size, mtime_ns, inode) -> sha256.

Re-checking a large local source tree then costs one stat per file plus hashing only
what changed. An entry whose mtime is too close to when it was hashed is not trusted
later ("racy git": the file could change again within the clock's granularity).
"""
from __future__ import annotations

import hashlib
import marshal
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .hashing import sha256_file
from .paths import piforge_home

RACY_SECONDS = 2.0
Entry = Tuple[int, int, int, str]   # size, mtime_ns, inode, sha256


class FileHashCache:
    """A persistent map from a file's stat signature to its sha256."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self.entries: Dict[str, Entry] = {}
        self.hashed = 0      # files actually read (for tests and the benchmark)
        self._dirty = False
        if path is not None and path.exists():
            try:   # marshal: the fastest load/dump of plain data, and it runs no code
                loaded = marshal.loads(path.read_bytes())
                self.entries = loaded if isinstance(loaded, dict) else {}
            except (ValueError, EOFError, TypeError, OSError):
                self.entries = {}   # a damaged cache is only a slower cache

    @classmethod
    def default(cls) -> "FileHashCache":
        return cls(piforge_home() / "filehash-cache.marshal")

    def sha256(self, path: "os.PathLike[str] | str", stat: Optional[os.stat_result] = None) -> str:
        """sha256 of ``path``; read only if its stat signature is new. Absolute paths
        are the keys (callers walking a tree pass them already absolute: no Path churn)."""
        key = path if isinstance(path, str) and path.startswith("/") else os.path.abspath(path)
        stat = stat or os.stat(key)
        signature = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        known = self.entries.get(key)
        if known is not None and known[0] == signature[0] and known[1] == signature[1] \
                and known[2] == signature[2]:
            return known[3]
        digest = sha256_file(Path(key))
        self.hashed += 1
        if time.time() - stat.st_mtime_ns / 1e9 > RACY_SECONDS:
            self.entries[key] = (*signature, digest)
            self._dirty = True
        return digest

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=str(self.path.parent), prefix=".filehash-")
        with os.fdopen(fd, "wb") as handle:
            marshal.dump(self.entries, handle)
        os.replace(tmp, self.path)
        self._dirty = False


def tree_listing(directory: Path, cache: FileHashCache) -> List[List[str]]:
    """Every entry under ``directory`` as [relpath, kind, sha256-or-target], sorted.

    kind is ``f`` (file), ``x`` (executable file) or ``l`` (symlink); empty directories
    count as ``d``. Other permission bits and times do not change a tree's identity.
    """
    listing: List[List[str]] = []
    entries_cache = cache.entries
    hash_file = cache.sha256

    def walk(current: str, prefix: str) -> None:
        # The hot loop of a re-check: per file one stat (DirEntry caches d_type, so the
        # is_* calls are free) and a dict lookup; nothing else is allocated.
        empty = True
        with os.scandir(current) as iterator:
            for entry in iterator:
                empty = False
                relative = prefix + entry.name
                if entry.is_symlink():
                    listing.append([relative, "l", os.readlink(entry.path)])
                elif entry.is_dir():
                    walk(entry.path, relative + "/")
                elif entry.is_file():
                    stat = entry.stat()
                    known = entries_cache.get(entry.path)
                    if known is not None and known[1] == stat.st_mtime_ns and known[0] == stat.st_size \
                            and known[2] == stat.st_ino:
                        digest = known[3]
                    else:
                        digest = hash_file(entry.path, stat)
                    listing.append([relative, "x" if stat.st_mode & 0o111 else "f", digest])
        if empty and prefix:
            listing.append([prefix[:-1], "d", ""])

    walk(os.path.abspath(directory), "")
    listing.sort(key=lambda row: row[0])
    return listing


def tree_hash(directory: Path, cache: Optional[FileHashCache] = None) -> str:
    """The sha256 a recipe pins for a local directory source: of one line
    ``KIND SHA256-OR-TARGET RELPATH`` per entry, sorted (like ``sha256sum`` output)."""
    cache = cache or FileHashCache(None)
    digest = hashlib.sha256()
    for relative, kind, value in tree_listing(directory, cache):
        digest.update(f"{kind} {value} {relative}\n".encode("utf-8", "surrogateescape"))
    cache.save()
    return digest.hexdigest()
