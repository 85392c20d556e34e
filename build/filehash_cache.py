"""Stat-cached file hashing, as git's index does: (path, size, mtime_ns, inode) -> sha256.

Re-checking a large local source tree then costs one ``fstatat`` per file plus hashing
only what changed. Measured on the 2-core VM (bench/rehash_tree.py): the kernel's stat
is ~2 us a file there, so everything around it must be near free:

- the walk opens each directory once and stats its files by name relative to that
  directory's fd (no absolute path built or resolved per file);
- each tree has its own cache file keyed by paths relative to the tree, so loading it
  costs only that tree's entries, not every tree ever hashed;
- a save that changes few entries appends them to a journal instead of rewriting the
  whole cache (a one-file touch writes ~100 bytes); the journal is folded in later.

An entry whose mtime is too close to when it was hashed is not trusted later ("racy
git": the file could change again within the clock's granularity). A damaged or
concurrently written cache only costs speed: every entry is checked against a fresh stat.
"""
from __future__ import annotations

import hashlib
import marshal
import os
import stat as stat_module
import struct
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from .hashing import CHUNK, sha256_file
from .paths import piforge_home

RACY_SECONDS = 2.0
FORMAT = 2           # bumped when the on-disk layout changes: older files are ignored
JOURNAL_FOLD = 256   # journal entries beyond which a save rewrites the whole cache
RECORD = struct.Struct("<I")   # journal record: length, then marshal((key, entry))
Entry = Tuple[int, int, int, str]   # size, mtime_ns, inode, sha256
PathLike = Union[str, "os.PathLike[str]"]


class FileHashCache:
    """A persistent map from a file's stat signature to its sha256.

    Keys are plain strings: paths relative to a tree (as tree_listing uses them) or
    absolute paths (as ``sha256`` uses them). The file on disk is
    ``marshal((FORMAT, {key: entry}))``; its journal ``<file>.journal`` holds
    length-prefixed ``marshal((key, entry))`` records appended by later saves.
    """

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self.entries: Dict[str, Entry] = {}
        self.hashed = 0      # files actually read (for tests and the benchmark)
        self._changed: Dict[str, Entry] = {}
        self._journal_entries = 0
        if path is not None:
            self._load(path)

    @classmethod
    def default(cls) -> "FileHashCache":
        return cls(piforge_home() / "filehash-cache.marshal")

    @classmethod
    def for_tree(cls, root: PathLike) -> "FileHashCache":
        """The cache of one directory tree: its own file, so loading it is proportional
        to that tree alone."""
        name = hashlib.sha256(os.path.abspath(root).encode("utf-8", "surrogateescape")).hexdigest()
        return cls(piforge_home() / "filehash" / f"{name[:32]}.marshal")

    @property
    def journal(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".journal")

    def _load(self, path: Path) -> None:
        try:   # marshal: the fastest load of plain data, and it runs no code
            loaded = marshal.loads(path.read_bytes())
            if isinstance(loaded, tuple) and len(loaded) == 2 and loaded[0] == FORMAT \
                    and isinstance(loaded[1], dict):
                self.entries = loaded[1]
        except (ValueError, EOFError, TypeError, OSError):
            self.entries = {}   # a damaged cache is only a slower cache
        try:
            data = self.journal.read_bytes()
        except OSError:
            return
        offset = 0
        while offset + 4 <= len(data):   # a torn last record (a crash mid-append) ends the replay
            (size,) = RECORD.unpack_from(data, offset)
            payload = data[offset + 4:offset + 4 + size]
            if len(payload) != size:
                break
            try:
                record = marshal.loads(payload)
            except (ValueError, EOFError, TypeError):
                break
            if not (isinstance(record, tuple) and len(record) == 2 and isinstance(record[1], tuple)):
                break
            self.entries[record[0]] = record[1]
            self._journal_entries += 1
            offset += 4 + size

    def lookup(self, key: str, stat: os.stat_result) -> Optional[str]:
        known = self.entries.get(key)
        if known is not None and known[1] == stat.st_mtime_ns and known[0] == stat.st_size \
                and known[2] == stat.st_ino:
            return known[3]
        return None

    def remember(self, key: str, stat: os.stat_result, digest: str) -> None:
        self.hashed += 1
        if time.time() - stat.st_mtime_ns / 1e9 > RACY_SECONDS:
            entry = (stat.st_size, stat.st_mtime_ns, stat.st_ino, digest)
            self.entries[key] = entry
            self._changed[key] = entry

    def sha256(self, path: PathLike, stat: Optional[os.stat_result] = None) -> str:
        """sha256 of one file; read only if its stat signature is new. Keyed by its
        absolute path."""
        key = path if isinstance(path, str) and path.startswith("/") else os.path.abspath(path)
        stat = stat or os.stat(key)
        digest = self.lookup(key, stat)
        if digest is None:
            digest = sha256_file(Path(key))
            self.remember(key, stat, digest)
        return digest

    def save(self) -> None:
        if self.path is None or not self._changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self._journal_entries + len(self._changed) <= JOURNAL_FOLD:
            # One write() of whole records on an O_APPEND fd: concurrent savers don't interleave.
            records = b"".join(_record(item) for item in self._changed.items())
            fd = os.open(str(self.journal), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, records)
            finally:
                os.close(fd)
            self._journal_entries += len(self._changed)
        else:
            fd, tmp = tempfile.mkstemp(dir=str(self.path.parent), prefix=".filehash-")
            with os.fdopen(fd, "wb") as handle:
                marshal.dump((FORMAT, self.entries), handle)
            os.replace(tmp, self.path)
            try:   # folded in; a record another process appended just now is only lost speed
                os.unlink(self.journal)
            except FileNotFoundError:
                pass
            self._journal_entries = 0
        self._changed = {}


def _record(item: Tuple[str, Entry]) -> bytes:
    payload = marshal.dumps(item)
    return RECORD.pack(len(payload)) + payload


def _sha256_at(dir_fd: int, name: str) -> str:
    digest = hashlib.sha256()
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_listing(directory: PathLike, cache: FileHashCache) -> List[List[str]]:
    """Every entry under ``directory`` as [relpath, kind, sha256-or-target], sorted.

    kind is ``f`` (file), ``x`` (executable file) or ``l`` (symlink); empty directories
    count as ``d``. Other permission bits and times do not change a tree's identity;
    other file types (sockets, fifos, devices) are not part of it.
    """
    listing: List[List[str]] = []
    append = listing.append
    entries_get = cache.entries.get
    is_link = stat_module.S_ISLNK
    is_dir = stat_module.S_ISDIR
    is_reg = stat_module.S_ISREG

    def walk(dir_fd: int, prefix: str) -> None:
        # The hot loop of a re-check: per file one fstatat by name (DirEntry's d_type
        # tells directories and links apart for free) and a dict lookup.
        empty = True
        subdirs: List[str] = []
        with os.scandir(dir_fd) as iterator:
            for entry in iterator:
                empty = False
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                    continue
                stat = entry.stat(follow_symlinks=False)
                mode = stat.st_mode
                relative = prefix + entry.name
                if is_reg(mode):
                    known = entries_get(relative)
                    if known is not None and known[1] == stat.st_mtime_ns and known[0] == stat.st_size \
                            and known[2] == stat.st_ino:
                        digest = known[3]
                    else:
                        digest = _sha256_at(dir_fd, entry.name)
                        cache.remember(relative, stat, digest)
                    append([relative, "x" if mode & 0o111 else "f", digest])
                elif is_link(mode):
                    append([relative, "l", os.readlink(entry.name, dir_fd=dir_fd)])
                elif is_dir(mode):   # d_type was unknown (some filesystems)
                    subdirs.append(entry.name)
        for name in subdirs:
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            try:
                walk(child, prefix + name + "/")
            finally:
                os.close(child)
        if empty and prefix:
            append([prefix[:-1], "d", ""])

    root = os.open(os.path.abspath(directory), os.O_RDONLY | os.O_DIRECTORY)
    try:
        walk(root, "")
    finally:
        os.close(root)
    listing.sort(key=lambda row: row[0])
    return listing


def tree_hash(directory: PathLike, cache: Optional[FileHashCache] = None) -> str:
    """The sha256 a recipe pins for a local directory source: of one line
    ``KIND SHA256-OR-TARGET RELPATH`` per entry, sorted (like ``sha256sum`` output)."""
    cache = cache or FileHashCache(None)
    text = "".join([f"{kind} {value} {relative}\n"
                    for relative, kind, value in tree_listing(directory, cache)])
    cache.save()
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
