"""Every kind of recipe mistake gives `file:LINE: field: problem`, never a traceback."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from build.errors import RecipeError
from build.recipe import load_recipe, load_recipes

SHA = "a" * 64
GOOD = f"""
name = "demo"
version = "1.0"
platform = "linux/aarch64"
inputs = []

[builder]
kind = "native"

[[sources]]
urls = ["https://example.invalid/demo-1.0.tar.gz"]
sha256 = "{SHA}"

[env]
CFLAGS = "-O2"

[[phases]]
name = "build"
run = "make"

[outputs]
paths = ["*.whl"]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(directory: Path) -> RecipeError:
    with pytest.raises(RecipeError) as caught:
        load_recipes(directory)
    return caught.value


def test_good_recipe_loads(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD)
    recipe = load_recipes(tmp_path)["demo"]
    assert recipe.sources[0].filename == "demo-1.0.tar.gz"
    assert recipe.sources[0].unpack is True
    assert recipe.phases[0].network is False
    assert recipe.platform == "linux/aarch64"


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "demo", 'name = "demo"\nversion = "1.0\n')
    error = error_of(tmp_path)
    assert error.line == 2 and "invalid TOML" in str(error)
    assert str(error).startswith(str(tmp_path / "demo.toml") + ":2:") or str(error).startswith("demo.toml")


def test_unknown_top_level_field(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace('inputs = []', 'inputs = []\ncolour = "red"'))
    error = error_of(tmp_path)
    assert error.field == "colour" and "unknown field" in error.problem
    assert error.line == 6


def test_unknown_field_in_a_phase_points_at_its_line(tmp_path: Path) -> None:
    text = GOOD.replace('run = "make"', 'run = "make"\nnetwrok = true')
    write(tmp_path, "demo", text)
    error = error_of(tmp_path)
    assert error.field == "phases.0.netwrok"
    assert textwrap.dedent(text).splitlines()[error.line - 1].startswith("netwrok")


def test_missing_sha256(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace(f'sha256 = "{SHA}"\n', ""))
    error = error_of(tmp_path)
    assert error.field == "sources.0.sha256" and "missing" in error.problem
    assert error.hint and "sha256sum" in error.hint


def test_bad_sha256(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace(SHA, "xyz"))
    assert error_of(tmp_path).field == "sources.0.sha256"


def test_unknown_input(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace("inputs = []", 'inputs = ["ghost"]'))
    error = error_of(tmp_path)
    assert error.field == "inputs" and "ghost" in error.problem and error.line == 5


def test_unknown_builder(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace('kind = "native"', 'kind = "magic"'))
    error = error_of(tmp_path)
    assert error.field == "builder.kind" and "native" in error.problem


def test_dependency_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a", GOOD.replace('"demo"', '"a"', 1).replace("inputs = []", 'inputs = ["b"]'))
    write(tmp_path, "b", GOOD.replace('"demo"', '"b"', 1).replace("inputs = []", 'inputs = ["a"]'))
    error = error_of(tmp_path)
    assert "cycle" in error.problem and "a -> b -> a" in error.problem


def test_name_must_match_file(tmp_path: Path) -> None:
    write(tmp_path, "other", GOOD)
    assert "must match the file name" in error_of(tmp_path).problem


def test_missing_phases_and_wrong_types(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace('[[phases]]\nname = "build"\nrun = "make"\n', ""))
    assert error_of(tmp_path).field == "phases"
    write(tmp_path, "demo", GOOD.replace('CFLAGS = "-O2"', "CFLAGS = 2"))
    assert error_of(tmp_path).field == "env.CFLAGS"


def test_output_globs_stay_inside(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace('"*.whl"', '"../*.whl"'))
    assert error_of(tmp_path).field == "outputs.paths"


def test_unknown_platform(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace("linux/aarch64", "linux/sparc"))
    assert error_of(tmp_path).field == "platform"


def test_unknown_recipe_lookup(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD)
    with pytest.raises(RecipeError, match="no recipe named 'nope'"):
        load_recipes(tmp_path).get("nope")


def test_every_shipped_recipe_is_valid() -> None:
    recipes = load_recipes()
    assert len(recipes) >= 1
    for name in recipes:
        assert load_recipe(Path(recipes[name].path)).name == name
