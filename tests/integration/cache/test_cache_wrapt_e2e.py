"""The user's story end to end, through doit: CI builds the arm64 wrapt wheel (chroot
builder, qemu) and pushes it with its closure (the rootfs too) to a real nginx; a machine
with an empty store then runs `build:wrapt` and gets the very same bytes from the cache
without running any builder: it never even gets the rootfs the wheel was built in.

The build side uses the shared test home, so the arm64 rootfs and the wheel are built
once per CI run, whichever test needs them first.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict

import pytest

from build.cache.config import CacheConfig, write_cache_config
from build.cache.signing import SecretKey
from build.derivation import derive
from build.recipe import load_recipes
from build.store import Store
from prerequisites import require_root, require_tool
from tests.cli import run_piforge

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
RECIPE = "wrapt"


def doit(*args: str, home: Path, config: Path, timeout: int = 1500, check: bool = True,
         recipes: Path = REPO / "recipes") -> subprocess.CompletedProcess:
    return run_piforge(*args, home=home, recipes=recipes, env={"PIFORGE_CONFIG": str(config)},
                       timeout=timeout, check=check)


def files_of(path: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def test_wrapt_pushed_by_ci_is_substituted_byte_identical_without_building(shared_home, tmp_path, dav) -> None:
    require_root()   # builds run in private namespaces
    for tool in ("debootstrap", "unshare", "chroot"):
        require_tool(tool)
    key = SecretKey.generate("ci-test")
    key.save(tmp_path / "ci.secret", tmp_path / "ci.public")
    cache = dav.url + "/piforge"
    ci_config = write_cache_config(CacheConfig(push_url=cache, signing_key=tmp_path / "ci.secret"),
                                   tmp_path / "ci.toml")   # builds, never pulls: it is the source
    user_config = write_cache_config(CacheConfig(urls=(cache,), trusted_keys=(key.public().spelling(),)),
                                     tmp_path / "user.toml")

    # CI: build (in the shared test home, where expensive outputs are kept) and push the closure.
    pushed = doit("ci", f"targets={RECIPE}", home=shared_home, config=ci_config).stdout
    assert f"{RECIPE}: 2 uploaded" in pushed   # the rootfs and the wheel
    built = Path(doit(f"path:{RECIPE}", home=shared_home, config=ci_config).stdout.splitlines()[-1])
    again = doit("cache:push", RECIPE, home=shared_home, config=ci_config).stdout
    assert "0 uploaded" in again and "already in" in again

    # A fresh machine: empty store, the same recipes.
    fresh = tmp_path / "fresh-home"
    result = doit(f"build:{RECIPE}", home=fresh, config=user_config)
    pulled = Path(result.stdout.splitlines()[-1])
    assert "building with" not in result.stderr and "substituted" in result.stderr, result.stderr
    assert not (fresh / "build").exists()   # no build directory was ever made: no builder ran
    drv = derive(load_recipes(REPO / "recipes"), RECIPE)
    store = Store(fresh / "store")
    assert [p.name for p in store.entries()] == [drv.store_name]
    assert pulled == store.path_of(drv) and store.verify(pulled) == []
    assert files_of(pulled) == files_of(built)
    assert store.manifest(pulled)["files"] == Store(shared_home / "store").manifest(built)["files"]
    wheel = next(pulled.glob("wrapt-1.12.1-cp3*-linux_aarch64.whl"))
    assert wheel.stat().st_size > 10000

    # Substitute-only with a key the cache's artifacts are not signed with: a clear refusal.
    stranger = SecretKey.generate("stranger").public().spelling()
    wary = write_cache_config(CacheConfig(urls=(cache,), trusted_keys=(stranger,)), tmp_path / "wary.toml")
    refused = doit("cache:pull", RECIPE, home=tmp_path / "wary-home", config=wary, check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "unknown key(s) ci-test" in refused.stderr and "build it instead" in refused.stderr
    assert not Store(tmp_path / "wary-home" / "store").entries()


BASE = '''
name = "toy-base"
version = "1"
[builder]
kind = "native"
[[phases]]
run = "echo base > $PIFORGE_OUT/base.txt"
'''
APP = '''
name = "toy-app"
version = "1"
inputs = ["toy-base"]
[builder]
kind = "native"
[[phases]]
run = "cat $PIFORGE_INPUT_TOY_BASE/base.txt > $PIFORGE_OUT/app.txt; echo app >> $PIFORGE_OUT/app.txt"
'''


def test_doit_build_asks_the_cache_before_building_any_input(tmp_path, dav) -> None:
    require_root()
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "toy-base.toml").write_text(BASE)
    (recipes / "toy-app.toml").write_text(APP)
    key = SecretKey.generate("ci-test")
    key.save(tmp_path / "ci.secret", tmp_path / "ci.public")
    ci = write_cache_config(CacheConfig(push_url=dav.url, signing_key=tmp_path / "ci.secret"), tmp_path / "ci.toml")
    user = write_cache_config(CacheConfig(urls=(dav.url,), trusted_keys=(key.public().spelling(),)), tmp_path / "u.toml")
    pushed = doit("ci", "targets=toy-app", home=tmp_path / "ci-home", config=ci, recipes=recipes).stdout
    assert "toy-app: 2 uploaded" in pushed   # the closure: base and app

    result = doit("build:toy-app", home=tmp_path / "fresh", config=user, recipes=recipes)
    assert "building with" not in result.stderr
    assert Path(result.stdout.splitlines()[-1]).joinpath("app.txt").read_text() == "base\napp\n"
    assert [p.name.split("-", 1)[1] for p in Store(tmp_path / "fresh" / "store").entries()] == ["toy-app-1"]
