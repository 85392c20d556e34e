"""Store entries appear atomically, are verified by manifest and never overwritten."""
from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from build.derivation import derive
from build.errors import StoreError
from build.recipe import load_recipes
from build.store import Store

RECIPE = """
name = "thing"
version = "1"
[builder]
kind = "native"
[[phases]]
run = "true"
"""


@pytest.fixture
def drv(tmp_path: Path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "thing.toml").write_text(RECIPE)
    return derive(load_recipes(recipes), "thing")


def staged(store: Store, drv) -> Path:
    staging = store.new_staging(drv)
    (staging / "bin").mkdir()
    (staging / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    os.chmod(staging / "bin" / "tool", 0o755)
    os.symlink("bin/tool", staging / "tool")
    return staging


def test_install_is_atomic_and_sealed(tmp_path: Path, drv) -> None:
    store = Store(tmp_path / "store")
    assert not store.is_valid(drv)
    path = store.install(drv, staged(store, drv), log="built\n")
    assert path == store.path_of(drv) and store.is_valid(drv)
    manifest = store.manifest(path)
    assert manifest["derivation"] == drv.hash
    assert manifest["files"]["bin/tool"]["mode"] == 0o755
    assert manifest["files"]["tool"] == {"type": "symlink", "target": "bin/tool"}
    assert (path / ".piforge" / "build.log").read_text() == "built\n"
    assert store.verify(path) == []
    assert [p.name for p in store.entries()] == [drv.store_name]


def test_never_overwrites(tmp_path: Path, drv) -> None:
    store = Store(tmp_path / "store")
    store.install(drv, staged(store, drv))
    with pytest.raises(StoreError, match="never overwritten"):
        store.install(drv, staged(store, drv))


def test_verify_names_the_corrupted_file(tmp_path: Path, drv) -> None:
    store = Store(tmp_path / "store")
    path = store.install(drv, staged(store, drv))
    (path / "bin" / "tool").write_text("#!/bin/sh\necho evil\n")
    (path / "extra").write_text("x")
    problems = store.verify(path)
    assert any("bin/tool: content changed" in p for p in problems)
    assert any("extra: not in the manifest" in p for p in problems)


def test_stale_staging_removed_only_when_its_lock_is_free(tmp_path: Path, drv) -> None:
    store = Store(tmp_path / "store")
    with store.lock(drv):
        live = store.new_staging(drv)
        assert store.remove_stale_staging() == []  # flock is per open file: same process still conflicts
    assert live.exists()
    assert store.remove_stale_staging() == [live] and not live.exists()


def _hold_lock(root: str, drv, marks: str) -> None:
    with Store(root).lock(drv):
        Path(marks, "acquired").touch()
        time.sleep(0.5)
        Path(marks, "released").touch()


def test_lock_serialises_processes(tmp_path: Path, drv) -> None:
    store = Store(tmp_path / "store")
    holder = multiprocessing.get_context("fork").Process(target=_hold_lock, args=(str(store.root), drv, str(tmp_path)))
    holder.start()
    while not (tmp_path / "acquired").exists():
        time.sleep(0.01)
    with store.lock(drv):
        assert (tmp_path / "released").exists()  # we got the lock only after the holder let go
    holder.join()


def test_install_with_a_verified_manifest_checks_shape_not_content(tmp_path: Path, drv) -> None:
    store = Store(tmp_path / "store")
    source = Store(tmp_path / "other")
    expected = source.manifest(source.install(drv, staged(source, drv)))["files"]
    wrong = dict(expected, **{"bin/tool": dict(expected["bin/tool"], size=1)})
    with pytest.raises(StoreError, match="do not match"):
        store.install(drv, staged(store, drv), manifest=wrong)
    assert not store.is_valid(drv)
    path = store.install(drv, staged(store, drv), manifest=expected)
    assert store.manifest(path)["files"] == expected and store.verify(path) == []
