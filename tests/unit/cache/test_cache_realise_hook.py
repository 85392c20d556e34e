"""The build engine asks the cache top-down: a substituted output needs none of its
build inputs, and a derivation no cache has is built after its inputs are realised."""
from __future__ import annotations

from pathlib import Path

import pytest

import build.realise as engine
from build.cache.push import push_one
from build.cache.filesystem import FileRemote
from build.cache.substitute import Substituter
from build.store import Store


def test_substituted_target_needs_no_inputs_and_runs_no_builder(tmp_path, drvs, install_fake, key, trusted,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    built = Store(tmp_path / "built")
    install_fake(built, drvs["dep"])
    install_fake(built, drvs["thing"])
    remote = FileRemote(f"file://{tmp_path}/cache")
    push_one(built, drvs["thing"], remote, key, log=lambda _: None)   # only the target is cached

    def no_builder(drv, *args, **kwargs):
        raise AssertionError(f"builder ran for {drv.name}")

    monkeypatch.setattr(engine, "build", no_builder)
    fresh = Store(tmp_path / "fresh")
    path = engine.realise(drvs["thing"], fresh, substituters=[Substituter([remote], trusted, log=lambda _: None)],
                          report=lambda _: None)
    assert path == fresh.path_of(drvs["thing"]) and not fresh.is_valid(drvs["dep"])


def test_what_no_cache_has_is_built_after_its_inputs(tmp_path, drvs, install_fake, key, trusted,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    built = Store(tmp_path / "built")
    install_fake(built, drvs["dep"])
    remote = FileRemote(f"file://{tmp_path}/cache")
    push_one(built, drvs["dep"], remote, key, log=lambda _: None)   # only the input is cached
    order = []

    def fake_build(drv, store, **kwargs) -> Path:
        assert all(store.is_valid(d) for d in drv.inputs)
        order.append(drv.name)
        return install_fake(store, drv)

    monkeypatch.setattr(engine, "build", fake_build)
    fresh = Store(tmp_path / "fresh")
    engine.realise(drvs["thing"], fresh, substituters=[Substituter([remote], trusted, log=lambda _: None)],
                   report=lambda _: None)
    assert order == ["thing"] and fresh.is_valid(drvs["dep"]) and fresh.is_valid(drvs["thing"])
