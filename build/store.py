"""The content-addressed store: ``<store>/<hash[:32]>-<name>-<version>/``.

An entry holds the build outputs plus ``.piforge/`` (manifest.json, derivation.json,
build.log). Entries appear only by an atomic rename of a finished staging directory
inside the store, so a killed build or pull leaves no entry, and a present entry is
complete by construction. Per-derivation file locks make concurrent builders of the
same derivation take turns (the second finds the entry and reuses it).
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, ContextManager, Dict, List, Optional, Union

from .derivation import Derivation
from .errors import StoreError
from .filelock import exclusive_lock, lock_if_free
from .hashing import canonical_json, sha256_file
from .paths import store_dir

META_DIR = ".piforge"
MANIFEST = "manifest.json"
DERIVATION = "derivation.json"
BUILD_LOG = "build.log"
STAGING_PREFIX = ".staging-"


def file_manifest(root: Path, with_hashes: bool = True) -> Dict[str, Dict[str, Any]]:
    """Every file under ``root`` (except .piforge/): relpath -> type, sha256, size, mode.

    ``with_hashes=False`` skips the sha256 (for callers that verified content already)."""
    entries: Dict[str, Dict[str, Any]] = {}
    for directory, dirnames, filenames in os.walk(root):
        relative_dir = os.path.relpath(directory, root)
        if relative_dir == ".":
            dirnames[:] = [d for d in dirnames if d != META_DIR]
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, name)
            relative = os.path.normpath(os.path.join(relative_dir, name))
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                entries[relative] = {"type": "symlink", "target": os.readlink(path)}
            elif stat.S_ISREG(info.st_mode):
                entries[relative] = {"type": "file", "size": info.st_size, "mode": stat.S_IMODE(info.st_mode)}
                if with_hashes:
                    entries[relative]["sha256"] = sha256_file(Path(path))
            else:  # device nodes, fifos (a rootfs may have some): recorded, not hashed
                entries[relative] = {"type": "special", "mode": info.st_mode}
    return entries


class Store:
    def __init__(self, root: Union[Path, str]) -> None:
        self.root = Path(root)

    @classmethod
    def default(cls) -> "Store":
        return cls(store_dir())

    def path_of(self, drv: Derivation) -> Path:
        return self.root / drv.store_name

    def is_valid(self, drv: Derivation) -> bool:
        return (self.path_of(drv) / META_DIR / MANIFEST).is_file()

    def require(self, drv: Derivation) -> Path:
        """The store path of ``drv``, or a StoreError that says how to build it."""
        if not self.is_valid(drv):
            raise StoreError(f"{drv.name} {drv.version} is not built ({self.path_of(drv)})",
                             hint=f"run ./piforge build:{drv.name}")
        return self.path_of(drv)

    def lock_path(self, store_name: str) -> Path:
        return self.root / ".locks" / f"{store_name}.lock"

    def lock(self, drv: Derivation) -> ContextManager[None]:
        """Exclusive lock on one derivation; blocks while another process holds it."""
        return exclusive_lock(self.lock_path(drv.store_name))

    def unclaimed(self, store_name: str) -> ContextManager[bool]:
        """Lock ``store_name`` if no live build or pull holds it (yields whether it did)."""
        return lock_if_free(self.lock_path(store_name))

    def new_staging(self, drv: Derivation) -> Path:
        """An empty directory inside the store (same filesystem, so install is a rename).

        Call it while holding ``lock(drv)`` and keep the lock until install/discard:
        that is how remove_stale_staging tells an orphan from a live build."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{drv.store_name}-", dir=str(self.root)))

    def install(self, drv: Derivation, staging: Path, log: Union[str, Path, None] = None,
                manifest: Optional[Dict[str, Dict[str, Any]]] = None) -> Path:
        """Seal ``staging`` (manifest, derivation, log) and rename it to the store path.

        ``manifest`` may be passed when the caller already verified the files' content
        against it (a substituted artifact); here it is checked again, cheaply, by
        type, size, mode and link target only, and recorded as the entry's manifest.
        """
        staging = Path(staging)
        if staging.parent.resolve() != self.root.resolve():
            raise StoreError(f"staging directory {staging} is not inside the store {self.root}")
        target = self.path_of(drv)
        if target.exists():
            raise StoreError(f"{target} already exists; a store entry is never overwritten")
        if manifest is None:
            files = file_manifest(staging)
        else:
            # The caller checked every byte against the signed manifest while writing the
            # files: a second hashing pass would double the cost of a pull for nothing.
            if _shape(manifest) != _shape(file_manifest(staging, with_hashes=False)):
                raise StoreError(f"files in {staging} do not match the expected manifest of {drv.name}")
            files = manifest
        meta = staging / META_DIR
        meta.mkdir(exist_ok=True)
        if isinstance(log, Path):
            if log.resolve() != (meta / BUILD_LOG).resolve():
                shutil.copyfile(log, meta / BUILD_LOG)
        else:
            (meta / BUILD_LOG).write_text(log or "", encoding="utf-8")
        (meta / DERIVATION).write_text(canonical_json(drv.to_json()) + "\n", encoding="utf-8")
        (meta / MANIFEST).write_text(json.dumps({"derivation": drv.hash, "name": drv.name,
                                                 "version": drv.version, "files": files},
                                                indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp made it 0700
        os.rename(staging, target)
        return target

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def remove_stale_staging(self) -> List[Path]:
        """Remove staging dirs left by killed builds or pulls.

        A live build holds its derivation's lock for as long as its staging dir exists,
        so a staging dir whose lock can be taken without waiting is an orphan.
        """
        removed: List[Path] = []
        if not self.root.is_dir():
            return removed
        for path in sorted(self.root.glob(STAGING_PREFIX + "*")):
            store_name = path.name[len(STAGING_PREFIX):].rsplit("-", 1)[0]
            with self.unclaimed(store_name) as orphan:
                if orphan:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        return removed

    def manifest(self, path: Path) -> Dict[str, Any]:
        try:
            return json.loads((Path(path) / META_DIR / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise StoreError(f"{path}: no readable manifest ({error})") from None

    def verify(self, path: Path) -> List[str]:
        """Re-hash one entry against its manifest; each problem names the file."""
        path = Path(path)
        try:
            expected = self.manifest(path)["files"]
        except StoreError as error:
            return [str(error)]
        actual = file_manifest(path)
        problems = []
        for name, entry in sorted(expected.items()):
            found = actual.get(name)
            if found is None:
                problems.append(f"{path / name}: missing")
            elif found != entry:
                what = "content changed" if found.get("sha256") != entry.get("sha256") else "metadata changed"
                problems.append(f"{path / name}: {what}")
        for name in sorted(set(actual) - set(expected)):
            problems.append(f"{path / name}: not in the manifest")
        return problems

    def entries(self) -> List[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def remove(self, path: Path) -> None:
        """Delete an entry: renamed aside first, so it vanishes from the store at once."""
        path = Path(path)
        if path.parent.resolve() != self.root.resolve():
            raise StoreError(f"{path} is not a store entry of {self.root}")
        doomed = self.root / f"{STAGING_PREFIX}deleted-{path.name}-{os.getpid()}"
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def _shape(files: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Everything a manifest says of each file except its hash."""
    return {name: {k: v for k, v in entry.items() if k != "sha256"} for name, entry in files.items()}
