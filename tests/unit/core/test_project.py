"""The Project: each piece loaded once, broken files remembered, profile= honoured."""
from __future__ import annotations

from pathlib import Path

import pytest

import build.derivation
from build.errors import ClusterConfigError, RecipeError, UsageError
from build.options import parse_options
from build.project import Project


def test_derivations_compute_each_builder_identity_once(monkeypatch: pytest.MonkeyPatch, piforge_home: Path) -> None:
    calls = []
    real = build.derivation.builder_identity
    monkeypatch.setattr(build.derivation, "builder_identity", lambda recipe: calls.append(recipe.name) or real(recipe))  # type: ignore[func-returns-value]
    here = Project(parse_options({}))
    assert here.derivations is here.derivations
    assert sorted(calls) == sorted(here.recipes) and len(calls) == len(set(calls))


def test_one_no_recipe_named_error(piforge_home: Path) -> None:
    with pytest.raises(RecipeError, match="no recipe named 'nope'"):
        Project(parse_options({})).derivation("nope")


def test_a_broken_cluster_file_keeps_its_jobs_and_its_error(tmp_path: Path, piforge_home: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[[hosts]]\nname = "a"\ntf_prt = 1\n[jobs.mnist]\n[jobs.other.params]\nx = 1\n')
    here = Project(parse_options({"cluster": str(path)}, ["train:extra"]))
    assert isinstance(here.cluster_error(), ClusterConfigError)
    assert here.job_names() == ["extra", "mnist", "other"]
    with pytest.raises(ClusterConfigError, match="tf_prt: unknown field"):
        here.cluster


def test_profile_on_the_command_line_wins_over_the_cluster_files(tmp_path: Path, piforge_home: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nprofile = "local"\n[[hosts]]\nname = "a"\n[jobs.mnist]\n')
    here = Project(parse_options({"cluster": str(path), "profile": "local-py38-tf2.2"}))
    assert here.cluster.profile == "local-py38-tf2.2"


def test_variables_are_checked_against_every_requested_job(tmp_path: Path, piforge_home: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[[hosts]]\nname = "a"\n[jobs.mnist]\n[jobs.catsdogs]\n')
    Project(parse_options({"cluster": str(path), "epochs": "2"}, ["train:mnist"])).check_variables()
    with pytest.raises(UsageError, match="image_size=32"):   # catsdogs has it, mnist not
        Project(parse_options({"cluster": str(path), "image_size": "32"},
                              ["train:mnist", "train:catsdogs"])).check_variables()
    with pytest.raises(UsageError, match="epochs=2"):          # no train: task asked for
        Project(parse_options({"cluster": str(path), "epochs": "2"}, ["deploy"])).check_variables()
