"""What each builder kind accepts in a recipe's ``[builder]`` table, and what about it
is hashed into a derivation: plain data, so the recipe validator and the derivation
hash (core layer) need nothing from build/builders (which run builds)."""
from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Type

from .paths import REPO_ROOT


@dataclass(frozen=True)
class Option:
    types: Tuple[Type[Any], ...]
    meaning: str


@dataclass(frozen=True)
class KindSchema:
    """``base``: must ``builder.base`` name a recipe (rootfs/image)? ``options``: the
    other keys allowed, with their types."""

    needs_base: bool
    options: Mapping[str, Option] = field(default_factory=dict)


BUILDER_SCHEMAS: Dict[str, KindSchema] = {
    "native": KindSchema(needs_base=False),
    "chroot": KindSchema(needs_base=True),
    "docker": KindSchema(needs_base=True, options={
        "dockerfile": Option((str,), "a Dockerfile in the repo, built FROM the base into the output"),
        "build_args": Option((list,), "Dockerfile build args, [\"KEY=value\", ...]"),
        "build_network": Option((bool,), "give `docker build` the host's network"),
        "bazel": Option((bool,), "mount the persistent Bazel caches and render Bazel's flags"),
    }),
}
TYPE_NAMES = {str: "a string", list: "a list", bool: "true or false", int: "an integer", float: "a number"}


def type_name(types: Tuple[Type[Any], ...]) -> str:
    return " or ".join(TYPE_NAMES.get(t, t.__name__) for t in types)


def dockerfile_path(options: Mapping[str, Any]) -> Optional[Path]:
    name = options.get("dockerfile")
    return (REPO_ROOT / str(name)) if name else None


def builder_identity(kind: str, options: Mapping[str, Any]) -> Dict[str, Any]:
    """What about the build environment (beyond the base's hash, an input) can change outputs."""
    identity: Dict[str, Any] = {"kind": kind}
    if kind == "native":
        # A native output depends on the host's architecture (and toolchain, which we
        # cannot fully pin: a Pi building for itself is the use case).
        identity["machine"] = platform.machine()
    identity["options"] = dict(options)
    if kind == "docker":
        path = dockerfile_path(options)   # an image derivation's Dockerfile bytes
        if path is not None:
            identity["dockerfile_sha256"] = (hashlib.sha256(path.read_bytes()).hexdigest()
                                             if path.is_file() else f"missing:{path.name}")
    return identity
