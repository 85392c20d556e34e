"""[builder] tables are checked against build/builder_kinds.py at load time."""
from __future__ import annotations

from pathlib import Path

import sys
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_recipe_validation import GOOD, error_of, write


def test_unknown_builder_option_is_an_error_at_its_line(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace('kind = "native"', 'kind = "native"\nbazle = true'))
    error = error_of(tmp_path)
    assert error.field == "builder.bazle" and "unknown option for the native builder" in error.problem
    assert error.line == 9
    assert str(error).startswith(f"{tmp_path / 'demo.toml'}:9: builder.bazle: ")


def test_docker_option_of_the_wrong_type(tmp_path: Path) -> None:
    body = GOOD.replace('kind = "native"', 'kind = "docker"\nbase = "demo"\nbazel = "yes"')
    write(tmp_path, "demo", body)
    error = error_of(tmp_path)
    assert error.field == "builder.bazel" and "expected true or false" in error.problem


def test_chroot_recipe_without_base_is_an_error_at_load_time(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace('kind = "native"', 'kind = "chroot"'))
    error = error_of(tmp_path)
    assert error.field == "builder.base" and "needs a base recipe" in error.problem
    assert str(error).startswith(f"{tmp_path / 'demo.toml'}:")
