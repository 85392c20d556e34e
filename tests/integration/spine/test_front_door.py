"""The front door as a new user meets it: ./piforge (build.main) in a subprocess, with a
broken cluster.toml, misspelt variables, and the file-load count of `list`."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Dict, Optional

import pytest
from cli import run_piforge

REPO = Path(__file__).resolve().parents[3]

BROKEN = """\
[cluster]
transport = "lokal"
profile = "local"

[[hosts]]
name = "h0"
tf_port = 70000

[[hosts]]
name = "h1"
tf_prt = 23461

[jobs.mnist]
hosts = ["h0", "h1"]
"""


def piforge(*args: str, home: Path, env: Optional[Dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    return run_piforge(*args, home=home, env=env, timeout=300)


@pytest.fixture
def broken_cluster(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(BROKEN)
    return path


@pytest.mark.parametrize("task", ["train:mnist", "tfconfig:mnist", "tfconfig", "deploy", "cluster:check"])
def test_a_broken_cluster_file_is_reported_whole_by_every_task(task: str, broken_cluster: Path,
                                                               piforge_home: Path) -> None:
    result = piforge(task, f"cluster={broken_cluster}", home=piforge_home)
    said = result.stdout + result.stderr
    assert result.returncode == 2, said
    assert "Invalid parameter" not in said and "Traceback" not in said
    for line in ("cluster.toml:2: cluster.transport: expected one of local, ssh, got 'lokal'",
                 "cluster.toml:7: hosts.0.tf_port: expected a port number 1-65535, got 70000",
                 "cluster.toml:11: hosts.1.tf_prt: unknown field"):
        assert line in said, said
    assert not (piforge_home / "venvs").exists()


def test_the_broken_files_jobs_stay_in_the_list(broken_cluster: Path, piforge_home: Path) -> None:
    result = piforge("list", "--all", f"cluster={broken_cluster}", home=piforge_home)
    assert result.returncode == 0, result.stderr
    assert "train:mnist" in result.stdout and "<invalid" not in result.stdout


def test_a_misspelt_hyperparameter_is_refused_before_any_deploy(piforge_home: Path) -> None:
    started = time.monotonic()
    result = piforge("train:mnist", "epoch=3", home=piforge_home)
    seconds = time.monotonic() - started
    said = result.stdout + result.stderr
    assert result.returncode == 2, said
    assert "epoch=3" in said and "epochs" in said and "Traceback" not in said
    assert not (piforge_home / "venvs").exists() and not (piforge_home / "runs").exists()
    print(f"refused in {seconds:.2f} s")


@pytest.mark.parametrize("variable, expected", [
    ("profle=local", "unknown command-line variable profle=local"),
    ("workers=two", "workers=two: expected a whole number"),
])
def test_a_bad_variable_stops_the_run_before_tasks_start(variable: str, expected: str, piforge_home: Path) -> None:
    result = piforge("train:mnist", variable, home=piforge_home)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert "TaskFailed" not in result.stdout + result.stderr    # no task ran


def test_exit_codes_follow_the_error_kind(piforge_home: Path) -> None:
    missing = piforge("path:wrapt", home=piforge_home)            # not built: a plain task failure
    assert missing.returncode == 1, missing.stderr
    unknown = piforge("wheel", "recipe=nope", home=piforge_home)   # one "no recipe named" everywhere
    assert unknown.returncode == 2 and "no recipe named 'nope'" in unknown.stderr, unknown.stderr
    table = piforge("exit-codes", home=piforge_home)
    assert table.returncode == 0 and "TrainingError" in table.stdout


def test_list_loads_each_file_once(piforge_home: Path) -> None:
    result = piforge("list", home=piforge_home, env={"PIFORGE_TRACE_LOADS": "1"})
    assert result.returncode == 0, result.stderr
    loads = [line.split("load ", 1)[1] for line in result.stderr.splitlines() if "piforge: trace: load" in line]
    assert loads and len(loads) == len(set(loads)), "\n".join(sorted(loads))
    assert any(path.endswith("cluster.toml") for path in loads)
    assert sum(path.endswith(".toml") and "/recipes/" in path for path in loads) == len(list((REPO / "recipes").glob("*.toml")))
