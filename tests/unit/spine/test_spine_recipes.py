"""The spine's real recipes parse, hash as designed and render a plan offline."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from build.derivation import derive
from build.plan import render_plan
from build.recipe import load_recipes
from build.store import Store

REPO = Path(__file__).resolve().parents[3]
NAMES = ("rootfs-bullseye-arm64", "rootfs-bookworm-arm64", "wrapt", "wrapt-native")


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    directory = tmp_path / "recipes"
    directory.mkdir()
    for name in NAMES:
        shutil.copy(REPO / "recipes" / f"{name}.toml", directory)
    return directory


def test_wrapt_builds_in_the_bullseye_rootfs_from_a_pinned_sdist(recipes: Path) -> None:
    drv = derive(load_recipes(recipes), "wrapt")
    assert drv.recipe.platform == "linux/aarch64" and drv.recipe.builder.kind == "chroot"
    assert drv.base is not None and drv.base.name == "rootfs-bullseye-arm64"
    assert [d.name for d in drv.closure()] == ["rootfs-bullseye-arm64", "wrapt"]
    (source,) = drv.recipe.sources
    assert source.urls[0] == "pypi:wrapt==1.12.1" and source.unpack
    assert source.sha256 == "b62ffa81fb85f4332a4f609cab4ac40709470da05643a082ec1eb88e6d9b97d7"
    assert all(not phase.network for phase in drv.recipe.phases)   # the build is offline
    rootfs = drv.base.recipe
    assert [phase.network for phase in rootfs.phases] == [True, False]   # only debootstrap


def test_comments_do_not_change_hashes_but_flags_and_the_base_do(recipes: Path) -> None:
    before = derive(load_recipes(recipes), "wrapt").hash
    path = recipes / "wrapt.toml"
    text = path.read_text()
    path.write_text("# new comment\n" + text.replace("[env]", "[env]   # why these flags"))
    assert derive(load_recipes(recipes), "wrapt").hash == before
    path.write_text(text.replace('CFLAGS = "-O2', 'CFLAGS = "-O3'))
    assert derive(load_recipes(recipes), "wrapt").hash != before
    path.write_text(text)
    rootfs = recipes / "rootfs-bullseye-arm64.toml"
    rootfs.write_text(rootfs.read_text().replace("ca-certificates", "ca-certificates,make"))
    assert derive(load_recipes(recipes), "wrapt").hash != before   # an input changed


def test_the_plan_shows_hashes_state_and_exact_scripts(recipes: Path, tmp_path: Path) -> None:
    drv = derive(load_recipes(recipes), "wrapt")
    plan = render_plan(drv, Store(tmp_path / "store"))
    assert plan.index("== rootfs-bullseye-arm64 11") < plan.index("== wrapt 1.12.1")
    assert drv.hash in plan and drv.base.hash in plan and "missing (would build)" in plan
    assert "pip wheel --no-deps --no-build-isolation --no-index" in plan
    assert "phase debootstrap (network)" in plan and "phase wheel (offline)" in plan
