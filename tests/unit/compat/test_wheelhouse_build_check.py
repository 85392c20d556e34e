"""Every wheelhouse build checks its wheels against the profiles that ship it: the
pinned ones before anything is fetched, the built ones before they enter the store."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from build.derivation import derive
from build.errors import CompatError
from build.realise import realise
from build.recipe import load_recipes
from build.store import Store

PROFILE = """name = "t"
description = "d"
os = "ubuntu-20.04"
platform = "linux/aarch64"
python = "3.8"
glibc = "2.31"
pip = "{pip}"
tensorflow = "none"
wheelhouse = "wh"
host_python = "/usr/bin/python3"
"""
RECIPE = """name = "wh"
version = "1"
platform = "linux/aarch64"

[builder]
kind = "native"
{sources}
[[phases]]
name = "collect"
run = '''cp "$PIFORGE_SOURCES"/*.whl "$PIFORGE_OUT"/ {extra}'''

[outputs]
paths = ["*.whl"]
"""


def source(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f'\n[[sources]]\nurls = ["file://{path}"]\nsha256 = "{digest}"\nfilename = "{path.name}"\nunpack = false\n'


def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wheels: list, pip: str = "24.3.1",
          extra: str = "") -> Store:
    files = tmp_path / "files"
    files.mkdir()
    for name in wheels:
        (files / name).write_bytes(b"not really a zip: only the name is checked " + name.encode())
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "wh.toml").write_text(
        RECIPE.format(sources="".join(source(files / n) for n in wheels), extra=extra))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "t.toml").write_text(PROFILE.format(pip=pip))
    monkeypatch.setenv("PIFORGE_PROFILES", str(tmp_path / "profiles"))
    monkeypatch.setenv("PIFORGE_HOME", str(tmp_path / "home"))
    return Store(tmp_path / "home" / "store")


def test_fitting_wheelhouse_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = setup(tmp_path, monkeypatch, ["pip-24.3.1-py3-none-any.whl", "six-1.17.0-py2.py3-none-any.whl"])
    path = realise(derive(load_recipes(tmp_path / "recipes"), "wh"), store, report=lambda line: None)
    assert sorted(p.name for p in path.glob("*.whl"))[0] == "pip-24.3.1-py3-none-any.whl"


def test_misfit_pin_refused_before_fetching(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = setup(tmp_path, monkeypatch, ["pip-24.3.1-py3-none-any.whl",
                                          "numpy-1.24.4-cp38-cp38-manylinux_2_17_x86_64.whl"])
    drv = derive(load_recipes(tmp_path / "recipes"), "wh")
    (tmp_path / "files" / "pip-24.3.1-py3-none-any.whl").unlink()   # a fetch would fail: none is tried
    with pytest.raises(CompatError) as error:
        realise(drv, store, report=lambda line: None)
    text = str(error.value)
    assert "recipes/wh.toml (pinned wheels): 1 of 2 wheels cannot be installed by t's hosts" in text
    assert "numpy-1.24.4-cp38-cp38-manylinux_2_17_x86_64.whl: tags cp38-cp38-manylinux_2_17_x86_64: " \
           "platform manylinux_2_17_x86_64 is not aarch64" in text
    assert not store.is_valid(drv)


def test_built_misfit_never_enters_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = setup(tmp_path, monkeypatch, ["pip-24.3.1-py3-none-any.whl"],
                  extra='&& : > "$PIFORGE_OUT"/lib-1.0-cp39-cp39-linux_aarch64.whl')
    drv = derive(load_recipes(tmp_path / "recipes"), "wh")
    with pytest.raises(CompatError) as error:
        realise(drv, store, report=lambda line: None)
    assert "wh (built wheelhouse)" in str(error.value) and "cp39-cp39 is not for CPython 3.8" in str(error.value)
    assert not store.is_valid(drv)


def test_built_wheelhouse_must_ship_the_profile_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = setup(tmp_path, monkeypatch, ["pip-24.3.1-py3-none-any.whl"], pip="20.0.2")
    with pytest.raises(CompatError) as error:
        realise(derive(load_recipes(tmp_path / "recipes"), "wh"), store, report=lambda line: None)
    assert "profile t installs with pip 20.0.2, but the wheelhouse ships pip 24.3.1" in str(error.value)
