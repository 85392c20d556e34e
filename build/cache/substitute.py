"""Substitution: get a derivation's output from a binary cache instead of building it.

Order of trust: the metadata's signature is checked first (by a configured key); only
then is the artifact downloaded, straight into a staging directory inside the store.
While it streams, the compressed bytes are counted, the zstd frame checksum is checked
and every unpacked file is hashed against the signed file list; the staging directory is
renamed into the store only when all of that held. Anything else leaves it as it was.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import BinaryIO, Callable, List, Optional, Sequence

from ..derivation import Derivation
from ..errors import ArtifactRejectedError, CacheError
from ..store import Store
from .config import CacheConfig, load_cache_config
from .metadata import LOG_MEMBER, ArtifactMetadata, metadata_key
from .pack import unpack_verified
from .remote import Remote
from .signing import TrustedKeys

Log = Callable[[str], None]
READ_AHEAD = 1 << 20


class _ReadAhead:
    """Reads the compressed artifact ahead in a thread and counts it there.

    The download then overlaps decompression, extraction and the per-file hashes. A
    short download is reported as truncation, not as a confusing decompressor error, and
    a long one is cut off at the announced size. The compressed bytes are not hashed
    again: every byte that lands in the store is checked against the signed per-file
    sha256, the zstd frame carries its own checksum of the tar stream, and on a Pi 4
    (no SHA instructions) each redundant sha256 pass over a wheel costs seconds.
    """

    def __init__(self, source: BinaryIO, size: int, what: str) -> None:
        self.source = source
        self.expected_size = size
        self.what = what
        self.size = 0
        self.blocks: "queue.Queue[object]" = queue.Queue(maxsize=16)
        self.buffer = memoryview(b"")
        self.stopping = threading.Event()
        self.done = False
        self.thread = threading.Thread(target=self._pump, name="cache-download", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            while not self.stopping.is_set():
                block = self.source.read(READ_AHEAD)
                if not block:
                    if self.size < self.expected_size:
                        raise ArtifactRejectedError(
                            f"{self.what}: download truncated at {self.size} of {self.expected_size} bytes")
                    break
                self.size += len(block)
                if self.size > self.expected_size:
                    raise ArtifactRejectedError(
                        f"{self.what}: artifact is larger than the {self.expected_size} bytes its metadata says")
                self._put(block)
        except BaseException as error:  # handed to the reading thread
            self._put(error)
            return
        self._put(None)

    def _put(self, item: object) -> None:
        while not self.stopping.is_set():
            try:
                self.blocks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, size: int = -1) -> bytes:
        while not self.buffer and not self.done:
            item = self.blocks.get()
            if item is None:
                self.done = True
            elif isinstance(item, BaseException):
                self.done = True
                raise item
            else:
                self.buffer = memoryview(item)  # type: ignore[arg-type]
        if size is None or size < 0:
            size = len(self.buffer)
        chunk, self.buffer = self.buffer[:size], self.buffer[size:]
        return chunk.tobytes()

    def finish(self) -> None:
        """Consume the rest: bytes after the zstd frame must still be exactly as announced."""
        while self.read(READ_AHEAD):
            pass
        self.thread.join()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)


class Substituter:
    """``substitute(drv, store) -> bool``: the hook the build engine calls before building.

    Returns False (build it yourself) when no cache has a trusted, valid artifact; every
    rejection is logged and kept in ``rejections`` so substitute-only mode can explain.
    """

    def __init__(self, remotes: Sequence[Remote], trusted: TrustedKeys, log: Log = print) -> None:
        self.remotes = list(remotes)
        self.trusted = trusted
        self.log = log
        self.rejections: List[str] = []
        self.substituted: List[str] = []

    @classmethod
    def from_config(cls, config: Optional[CacheConfig] = None, log: Log = print) -> "Substituter":
        config = config or load_cache_config()
        return cls([config.remote(url) for url in config.urls], config.trusted(), log)

    def __call__(self, drv: Derivation, store: Store) -> bool:
        return self.pull(drv, store)

    def pull(self, drv: Derivation, store: Store) -> bool:
        """Substitute ``drv`` under its store lock (for callers outside the build engine)."""
        if store.is_valid(drv):
            return True
        with store.lock(drv):
            return self.substitute(drv, store)

    def substitute(self, drv: Derivation, store: Store) -> bool:
        """The engine's hook; the caller holds ``store.lock(drv)`` (realise_one does)."""
        if store.is_valid(drv):
            return True
        for remote in self.remotes:
            what = f"{drv.name} {drv.version} from {remote.display}"
            try:
                if self._from(remote, drv, store, what):
                    self.substituted.append(drv.store_name)
                    return True
            except ArtifactRejectedError as error:
                self.rejections.append(str(error))
                self.log(f"cache: REJECTED {error}")
            except CacheError as error:
                self.rejections.append(str(error))
                self.log(f"cache: skipped {remote.display}: {error}")
        return False

    def _from(self, remote: Remote, drv: Derivation, store: Store, what: str) -> bool:
        data = remote.get_bytes(metadata_key(drv.hash))
        if data is None:
            return False
        meta = ArtifactMetadata.parse_verified(data, drv.hash, self.trusted, what)
        if meta.store_name != drv.store_name:
            raise ArtifactRejectedError(f"{what}: metadata names {meta.store_name}, expected {drv.store_name}")
        if not self._references_present(meta, drv, store):
            return False
        self.log(f"cache: pulling {drv.store_name} ({meta.artifact['compressed_size'] / 1e6:.1f} MB) from {remote.display}")
        staging = store.new_staging(drv)
        try:
            self._download(remote, meta, staging, what)
            path = store.install(drv, staging, log=staging / LOG_MEMBER, manifest=meta.manifest_files())
        except BaseException:
            store.discard(staging)
            raise
        if store.manifest(path)["files"] != meta.manifest_files():  # belt and braces
            store.remove(path)
            raise ArtifactRejectedError(f"{what}: installed files differ from the signed metadata; removed")
        return True

    def _download(self, remote: Remote, meta: ArtifactMetadata, staging: Path, what: str) -> None:
        art = meta.artifact
        with remote.open_stream(art["file"]) as stream:
            if stream is None:
                raise CacheError(f"{what}: metadata present but artifact {art['file']} missing (interrupted push?)")
            reader = _ReadAhead(stream, art["compressed_size"], what)
            try:
                unpack_verified(reader, staging, meta.expected_files(), art["uncompressed_size"], what,  # type: ignore[arg-type]
                                compressed_size=art["compressed_size"])
                reader.finish()
            finally:
                reader.close()

    def _references_present(self, meta: ArtifactMetadata, drv: Derivation, store: Store) -> bool:
        """A path that mentions other store paths needs them: pull those first."""
        by_name = {d.store_name: d for d in drv.closure()}
        for reference in meta.references:
            if reference == drv.store_name:
                continue
            dependency = by_name.get(reference)
            if dependency is None:
                raise ArtifactRejectedError(f"{meta.name}: refers to {reference}, which is not in its derivation's closure")
            if not store.is_valid(dependency) and not self.pull(dependency, store):
                self.log(f"cache: {drv.store_name} needs {reference}, which no cache has: building instead")
                return False
        return True


def substitute_or_fail(drv: Derivation, store: Store, config: Optional[CacheConfig] = None,
                       log: Log = print) -> Path:
    """Substitute-only (``cache:pull``, ``build:X substitute_only=1``): ``drv``'s store path
    from a trusted cache, or a CacheError naming every cache tried and why each failed.
    Never builds; a target no cache has is not worth pulling any of its inputs for."""
    config = config or load_cache_config()
    if not config.urls:
        raise CacheError(f"{drv.name}: substitute only, but no cache urls in the [cache] table of {config.source}",
                         hint="set urls = [...] (or PIFORGE_CACHE_URLS)")
    substituter = Substituter.from_config(config, log)
    if not substituter.pull(drv, store):
        tried = ", ".join(remote.display for remote in substituter.remotes)
        why = "; ".join(substituter.rejections) or "none of them has it"
        raise CacheError(f"{drv.name}: cannot substitute {drv.store_name} (caches tried: {tried}): {why}",
                         hint=f"build it instead: ./piforge build:{drv.name} (without substitute_only=1)")
    return store.path_of(drv)
