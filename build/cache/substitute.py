"""Substitution: get a derivation's output from a binary cache instead of building it.

Order of trust: the metadata's signature is checked first (by a configured key); only
then is the artifact downloaded, straight into a staging directory inside the store.
While it streams, the compressed bytes are hashed and counted, and every unpacked file
is checked against the signed file list; the staging directory is renamed into the
store only when all of that held. Anything else leaves the store as it was.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO, Callable, List, Optional, Sequence

from ..derivation import Derivation
from ..errors import ArtifactRejectedError, CacheError
from ..store import Store
from .config import CacheConfig, load_cache_config
from .metadata import LOG_MEMBER, ArtifactMetadata, metadata_key
from .pack import unpack_verified
from .remote import Remote, open_remote
from .signing import TrustedKeys

Log = Callable[[str], None]


class _VerifyingReader:
    """Hashes and counts the compressed bytes as they stream; refuses excess and
    reports a short download as truncation, not as a confusing decompressor error."""

    def __init__(self, source: BinaryIO, sha256: str, size: int, what: str) -> None:
        self.source = source
        self.expected_sha256 = sha256
        self.expected_size = size
        self.what = what
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        block = self.source.read(size)
        if not block and size != 0 and self.size < self.expected_size:
            raise ArtifactRejectedError(f"{self.what}: download truncated at {self.size} of {self.expected_size} bytes")
        self.size += len(block)
        if self.size > self.expected_size:
            raise ArtifactRejectedError(f"{self.what}: artifact is larger than the {self.expected_size} bytes its metadata says")
        self.digest.update(block)
        return block

    def finish(self) -> None:
        while self.size < self.expected_size:
            self.read(min(1 << 20, self.expected_size - self.size))
        if self.source.read(1):
            raise ArtifactRejectedError(f"{self.what}: artifact is larger than the {self.expected_size} bytes its metadata says")
        if self.digest.hexdigest() != self.expected_sha256:
            raise ArtifactRejectedError(f"{self.what}: artifact sha256 {self.digest.hexdigest()} does not match its signed metadata")


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
        return cls([open_remote(url) for url in config.urls], config.trusted(), log)

    def __call__(self, drv: Derivation, store: Store) -> bool:
        return self.substitute(drv, store)

    def substitute(self, drv: Derivation, store: Store) -> bool:
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
        with store.lock(drv):
            if store.is_valid(drv):  # another process pulled or built it meanwhile
                return True
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
            reader = _VerifyingReader(stream, art["sha256"], art["compressed_size"], what)
            unpack_verified(reader, staging, meta.expected_files(), art["uncompressed_size"], what)  # type: ignore[arg-type]
            reader.finish()

    def _references_present(self, meta: ArtifactMetadata, drv: Derivation, store: Store) -> bool:
        """A path that mentions other store paths needs them: pull those first."""
        by_name = {d.store_name: d for d in drv.closure()}
        for reference in meta.references:
            if reference == drv.store_name:
                continue
            dependency = by_name.get(reference)
            if dependency is None:
                raise ArtifactRejectedError(f"{meta.name}: refers to {reference}, which is not in its derivation's closure")
            if not store.is_valid(dependency) and not self.substitute(dependency, store):
                self.log(f"cache: {drv.store_name} needs {reference}, which no cache has: building instead")
                return False
        return True
