"""Target profiles: what a cluster runs (OS, Python, TensorFlow, CPU flags) and which
recipes produce its TensorFlow wheel and the wheelhouse that `doit deploy` ships.

One file per profile in ``profiles/<name>.toml``; choose one with ``profile=NAME``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from .errors import ProfileError
from .paths import REPO_ROOT
from .tomlfile import load_toml

DEFAULT_PROFILE = "pi4-ubuntu2004-py38-tf2.2"
PROFILE_FIELDS = ("name", "description", "os", "platform", "python", "glibc", "pip", "tensorflow", "cpu_flags",
                  "wheel", "wheelhouse", "host_python", "check_import", "job_env")
# "2.31", "24.3.1": dotted numbers only (the target check compares them as versions).
_GLIBC = re.compile(r"^2\.[0-9]+$")
_PIP = re.compile(r"^[0-9]+(\.[0-9]+){1,2}$")
_PYTHON = re.compile(r"^3\.[0-9]+$")
_PLATFORM = re.compile(r"^linux/[a-z0-9_]+$")


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
    # What the hosts' installer accepts (build/compat.py): the target's glibc, and the
    # version of the pip wheel every wheelhouse ships and deploy installs with. Loaded
    # profiles always state both; "" (code-built profiles) makes the target check refuse.
    glibc: str = ""
    pip: str = ""
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
    for key in ("name", "description", "os", "platform", "python", "glibc", "pip", "tensorflow", "wheelhouse",
                "host_python"):
        if key not in data:
            # A missing field has no line of its own: point at the profile's name.
            raise ProfileError(doc.path, doc.line_of("name") or 1, key, "missing (a required field)")
        if not isinstance(data[key], str) or not data[key]:
            raise doc.error(ProfileError, (key,), "expected a non-empty string")
        values[key] = data[key]
    for key, pattern, example in (("python", _PYTHON, '"3.8"'), ("platform", _PLATFORM, '"linux/aarch64"'),
                                  ("glibc", _GLIBC, '"2.31" (the hosts\' glibc: ldd --version)'),
                                  ("pip", _PIP, '"24.3.1" (the pip wheel the wheelhouse ships)')):
        if not pattern.match(str(values[key])):
            raise doc.error(ProfileError, (key,), f"'{values[key]}' is not valid (expected e.g. {example})")
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
