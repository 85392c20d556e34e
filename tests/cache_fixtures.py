"""Derivations and store entries for cache tests, built by hand (no builder needed).

Imported by the conftest.py of tests/unit/cache and tests/integration/cache."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from build.cache.signing import SecretKey, TrustedKeys
from build.derivation import Derivation, derive
from build.recipe import load_recipes
from build.store import Store

RECIPES = {
    "dep": 'name = "dep"\nversion = "1"\n[builder]\nkind = "native"\n[[phases]]\nrun = "true"\n',
    "thing": 'name = "thing"\nversion = "2"\ninputs = ["dep"]\n[builder]\nkind = "native"\n[[phases]]\nrun = "true"\n',
}


@pytest.fixture
def drvs(tmp_path: Path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name, text in RECIPES.items():
        (recipes / f"{name}.toml").write_text(text)
    loaded = load_recipes(recipes)
    return {name: derive(loaded, name) for name in RECIPES}


@pytest.fixture
def install_fake(tmp_path: Path) -> Callable[[Store, Derivation, bytes], Path]:
    """Install a small store entry for ``drv`` whose main file holds ``payload``."""

    def install(store: Store, drv: Derivation, payload: bytes = b"payload") -> Path:
        staging = store.new_staging(drv)
        (staging / "lib").mkdir()
        (staging / "lib" / "data.bin").write_bytes(payload)
        (staging / "bin").mkdir()
        (staging / "bin" / "run").write_text("#!/bin/sh\necho run\n")
        os.chmod(staging / "bin" / "run", 0o755)
        os.symlink("bin/run", staging / "run")
        return store.install(drv, staging, log=f"built {drv.name}\n")

    return install


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.generate("test-1")


@pytest.fixture
def trusted(key: SecretKey) -> TrustedKeys:
    return TrustedKeys([key.public()])
