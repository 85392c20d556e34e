"""Upload store paths to a cache: pack, describe, sign, PUT artifact then metadata.

The metadata goes up last, so a reader that finds ``<hash>.json`` always finds the
artifact it describes. A path whose metadata is already there costs one HEAD.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..derivation import Derivation
from ..errors import CacheError
from ..hashing import sha256_file
from ..paths import piforge_home
from ..store import META_DIR, Store
from .metadata import LOG_MEMBER, ArtifactMetadata, metadata_key
from .pack import pack_tree
from .remote import Remote
from .signing import SecretKey

Log = Callable[[str], None]


@dataclass
class PushReport:
    uploaded: List[str] = field(default_factory=list)
    present: List[str] = field(default_factory=list)
    bytes_uploaded: int = 0


def _signed_files(path: Path, manifest_files: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The manifest's file list plus device numbers of special files (they must travel)."""
    files: Dict[str, Dict[str, Any]] = {}
    for rel, entry in manifest_files.items():
        entry = dict(entry)
        if entry.get("type") == "special":
            rdev = os.lstat(path / rel).st_rdev
            entry["rdev"] = [os.major(rdev), os.minor(rdev)]
        files[rel] = entry
    return files


def _log_entry(path: Path) -> Dict[str, Any]:
    log = path / LOG_MEMBER
    if not log.is_file():  # an entry installed without a log: travel an empty one
        raise CacheError(f"{path}: store entry has no {LOG_MEMBER}; rebuild it")
    return {"type": "file", "sha256": sha256_file(log), "size": log.stat().st_size, "mode": log.stat().st_mode & 0o7777}


def push_one(store: Store, drv: Derivation, remote: Remote, key: SecretKey,
             report: Optional[PushReport] = None, log: Log = print) -> bool:
    """Push one store path unless the cache has it; True if something was uploaded."""
    report = report if report is not None else PushReport()
    if remote.head(metadata_key(drv.hash)):
        report.present.append(drv.store_name)
        log(f"cache: {drv.store_name} already in {remote.display}")
        return False
    path = store.require(drv)
    problems = store.verify(path)
    if problems:  # never sign what the local store cannot vouch for
        raise CacheError(f"{path}: refusing to push a store entry that fails verification: {problems[0]}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                         hint="remove it and rebuild: ./piforge gc / build again")
    files = _signed_files(path, store.manifest(path)["files"])
    log_entry = _log_entry(path)
    meta_dir = path / META_DIR
    exclude = [f"{META_DIR}/{p.name}" for p in meta_dir.iterdir() if f"{META_DIR}/{p.name}" != LOG_MEMBER]
    # hash parts of everything this path could refer to at run time
    candidates = {d.hash[:32]: d.store_name for d in drv.closure() if d.hash != drv.hash}
    temp_dir = piforge_home() / "tmp"
    temp_dir.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix="push-", suffix=".tar.zst", dir=str(temp_dir))
    try:
        log(f"cache: packing {drv.store_name}")
        with os.fdopen(fd, "wb") as out:
            packed = pack_tree(path, out, reference_candidates=candidates, exclude=exclude)
        meta = ArtifactMetadata.describe(drv, packed, files, log_entry)
        meta.sign(key)
        log(f"cache: uploading {drv.store_name} ({packed.compressed_size / 1e6:.1f} MB, "
            f"{packed.uncompressed_size / 1e6:.1f} MB unpacked) to {remote.display}")
        remote.put_file(meta.artifact["file"], Path(temp_name))
        remote.put_bytes(metadata_key(drv.hash), meta.to_bytes())
    finally:
        os.unlink(temp_name)
    report.uploaded.append(drv.store_name)
    report.bytes_uploaded += packed.compressed_size
    return True


def push_closure(store: Store, drv: Derivation, remote: Remote, key: SecretKey, log: Log = print) -> PushReport:
    """Push ``drv`` and every derivation it was built from (deps first) that is in the store.

    Inputs that are not in the local store (e.g. the target itself was substituted)
    are skipped: a cache serves what was built, and nothing needs them to use ``drv``.
    """
    report = PushReport()
    for member in drv.closure():
        if member.hash != drv.hash and not store.is_valid(member):
            log(f"cache: skipping {member.store_name} (not in the local store)")
            continue
        push_one(store, member, remote, key, report, log)
    return report
