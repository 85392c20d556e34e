"""The derivation hash covers what changes an output, and nothing else."""
from __future__ import annotations

from pathlib import Path

from build.derivation import derive
from build.hashing import canonical_hash, canonical_json
from build.recipe import load_recipes

SHA_A, SHA_B = "a" * 64, "b" * 64
BASE = """
name = "base"
version = "1"
[builder]
kind = "native"
[[phases]]
run = "true"
"""
APP = """
# a comment
name = "app"
version = "2"
inputs = ["base"]
[builder]
kind = "native"
[[sources]]
urls = ["https://a.invalid/app.tar.gz"]
sha256 = "{sha}"
[[phases]]
run = "make CFLAGS={flags}"
"""


def hashes(tmp_path: Path, base: str = BASE, **app: str) -> tuple:
    (tmp_path / "base.toml").write_text(base)
    values = {"sha": SHA_A, "flags": "-O2"}
    values.update(app)
    (tmp_path / "app.toml").write_text(APP.format(**values))
    recipes = load_recipes(tmp_path)
    return derive(recipes, "app").hash, derive(recipes, "base").hash


def test_canonical_json_is_order_and_space_free() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'
    assert canonical_hash({"x": 1, "y": 2}) == canonical_hash({"y": 2, "x": 1})


def test_comments_and_formatting_do_not_change_the_hash(tmp_path: Path) -> None:
    first = hashes(tmp_path)
    spaced = APP.replace("# a comment", "# another comment\n\n").replace('version = "2"', 'version   =   "2"  # pinned')
    (tmp_path / "app.toml").write_text(spaced.format(sha=SHA_A, flags="-O2"))
    assert derive(load_recipes(tmp_path), "app").hash == first[0]


def test_build_flag_changes_the_hash(tmp_path: Path) -> None:
    assert hashes(tmp_path)[0] != hashes(tmp_path, flags="-O3")[0]


def test_source_hash_changes_the_hash_but_mirrors_do_not(tmp_path: Path) -> None:
    first = hashes(tmp_path)[0]
    assert first != hashes(tmp_path, sha=SHA_B)[0]
    mirrored = APP.replace('urls = ["https://a.invalid/app.tar.gz"]',
                           'urls = ["https://mirror.invalid/app.tar.gz", "https://a.invalid/app.tar.gz"]\nfilename = "app.tar.gz"')
    (tmp_path / "app.toml").write_text(mirrored.format(sha=SHA_A, flags="-O2"))
    assert derive(load_recipes(tmp_path), "app").hash == first


def test_input_change_propagates(tmp_path: Path) -> None:
    app1, base1 = hashes(tmp_path)
    app2, base2 = hashes(tmp_path, base=BASE.replace('run = "true"', 'run = "echo changed"'))
    assert base1 != base2 and app1 != app2


def test_store_name_and_closure(tmp_path: Path) -> None:
    hashes(tmp_path)
    drv = derive(load_recipes(tmp_path), "app")
    assert drv.store_name == f"{drv.hash[:32]}-app-2"
    assert [d.name for d in drv.closure()] == ["base", "app"]
    assert drv.to_json()["inputs"] == {"base": drv.inputs[0].hash}
