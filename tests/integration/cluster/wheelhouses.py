"""Wheelhouses made on the spot, for deploy tests and benches: installable pure-Python
wheels of random bytes, gathered into a store entry laid out like a realised wheelhouse
(wheels, lock.txt with hashes, .piforge/manifest.json)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from pathlib import Path

from build.cluster.wheelhouse import Wheelhouse, load_wheelhouse
from build.store import MANIFEST, META_DIR, Store, file_manifest


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def data_wheel(directory: Path, name: str, size: int) -> Path:
    """A valid, installable py3-none-any wheel carrying ``size`` random bytes (incompressible)."""
    files = {
        f"{name}/__init__.py": b"",
        f"{name}/blob.bin": os.urandom(size),
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: piforge-bench\nRoot-Is-Purelib: true\n"
                                      b"Tag: py3-none-any\n",
    }
    record = "".join(f"{path},{record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{name}-1.0.dist-info/RECORD,,\n"
    path = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(f"{name}-1.0.dist-info/RECORD", record)
    return path


def wheelhouse_entry(entry: Path) -> Wheelhouse:
    """The wheels already in store entry ``entry``, made a wheelhouse: lock + manifest."""
    files = {name: facts for name, facts in file_manifest(entry).items() if name.endswith(".whl")}
    lock = []   # from the manifest's hashes: each wheel is read once
    for wheel_name, facts in sorted(files.items()):
        name, version = wheel_name.split("-")[:2]
        lock.append(f"{name}=={version} --hash=sha256:{facts['sha256']}")
    (entry / "lock.txt").write_text("\n".join(lock) + "\n")
    (entry / META_DIR).mkdir()
    (entry / META_DIR / MANIFEST).write_text(json.dumps({"files": files}))
    return load_wheelhouse(entry, Store(entry.parent))
