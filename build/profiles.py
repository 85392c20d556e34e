"""Target profiles: what a cluster runs (OS, Python, TensorFlow, CPU flags) and which
recipes produce its TensorFlow wheel and the wheelhouse that `doit deploy` ships.

One file per profile in ``profiles/<name>.toml``; choose one with ``profile=NAME``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from .errors import ProfileError
from .paths import REPO_ROOT
from .tomlfile import load_toml

DEFAULT_PROFILE = "pi4-ubuntu2004-py38-tf2.2"
PROFILE_FIELDS = ("name", "description", "os", "platform", "python", "tensorflow", "cpu_flags",
                  "wheel", "wheelhouse", "host_python", "check_import", "job_env")


def profiles_dir() -> Path:
    return Path(os.environ.get("PIFORGE_PROFILES", str(REPO_ROOT / "profiles")))


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    os: str
    platform: str
    python: str
    tensorflow: str
    wheelhouse: str
    host_python: str
    check_import: str = "tensorflow"
    cpu_flags: str = ""
    wheel: Optional[str] = None
    job_env: Mapping[str, str] = field(default_factory=dict)
    path: str = ""


def list_profiles() -> List[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.toml"))


def load_profile(name: Optional[str] = None) -> Profile:
    """Load profile ``name`` (default: $PIFORGE_PROFILE or DEFAULT_PROFILE)."""
    name = name or os.environ.get("PIFORGE_PROFILE") or DEFAULT_PROFILE
    path = profiles_dir() / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(list_profiles()) or "none"
        raise ProfileError(str(path), None, "profile", f"unknown profile '{name}' (known: {known})")
    doc = load_toml(path, ProfileError, display=f"profiles/{path.name}")
    data = doc.data
    for key in data:
        if key not in PROFILE_FIELDS:
            raise doc.error(ProfileError, (key,), f"unknown field (expected one of: {', '.join(PROFILE_FIELDS)})")
    values: Dict[str, object] = {}
    for key in ("name", "description", "os", "platform", "python", "tensorflow", "wheelhouse", "host_python"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise doc.error(ProfileError, (key,), "missing or not a string")
        values[key] = data[key]
    if values["name"] != name:
        raise doc.error(ProfileError, ("name",), f"must match the file name '{name}.toml'")
    for key in ("check_import", "cpu_flags", "wheel"):
        if key in data:
            if not isinstance(data[key], str):
                raise doc.error(ProfileError, (key,), "expected a string")
            values[key] = data[key]
    job_env = data.get("job_env", {})
    if not isinstance(job_env, dict) or not all(isinstance(v, str) for v in job_env.values()):
        raise doc.error(ProfileError, ("job_env",), "expected a table of NAME = \"value\"")
    return Profile(job_env=dict(job_env), path=str(path), **values)  # type: ignore[arg-type]
