"""A wheelhouse as deploy sees it: a store path holding wheels + lock.txt, with the
sha256 of every file already in the store manifest (no re-hashing per deploy)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from ..errors import DeployError
from ..store import Store


@dataclass(frozen=True)
class WheelFile:
    name: str
    sha256: str
    size: int
    path: Path


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    key: str               # the store hash: names the venv built from it on every host
    wheels: Tuple[WheelFile, ...]
    lock: Path

    @property
    def total_bytes(self) -> int:
        return sum(w.size for w in self.wheels)

    @property
    def pip_wheel(self) -> Optional[WheelFile]:
        """pip itself, run from its wheel so hosts need no ensurepip (python3-venv);
        without one, the hosts' ``python -m venv`` must be able to install pip."""
        for wheel in self.wheels:
            if wheel.name.startswith("pip-"):
                return wheel
        return None


def load_wheelhouse(path: Path, store: Store) -> Wheelhouse:
    path = Path(path)
    files = store.manifest(path).get("files", {})
    wheels = tuple(WheelFile(name=name, sha256=entry["sha256"], size=int(entry["size"]), path=path / name)
                   for name, entry in sorted(files.items()) if name.endswith(".whl") and "/" not in name)
    lock = path / "lock.txt"
    if not wheels or not lock.is_file():
        raise DeployError(f"{path}: not a wheelhouse (needs *.whl files and lock.txt)")
    return Wheelhouse(path=path, key=path.name.split("-", 1)[0][:16], wheels=wheels, lock=lock)
