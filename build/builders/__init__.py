"""Builders: where a derivation's phases run. ``BUILDER_KINDS`` maps a recipe's
``builder.kind`` to its class; recipe validation and the build engine both use it."""
from __future__ import annotations

from typing import Dict, Type

from .base import Builder, BuildJob
from .chroot import ChrootBuilder
from .native import NativeBuilder
from .docker import DockerBuilder

BUILDER_KINDS: Dict[str, Type[Builder]] = {
    NativeBuilder.kind: NativeBuilder,
    ChrootBuilder.kind: ChrootBuilder,
    DockerBuilder.kind: DockerBuilder,
}

__all__ = ["BUILDER_KINDS", "Builder", "BuildJob", "NativeBuilder", "ChrootBuilder", "DockerBuilder"]
