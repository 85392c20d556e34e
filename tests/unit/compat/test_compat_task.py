"""`doit compat`: every shipped profile passes; an old-pip profile fails naming grpcio."""
from __future__ import annotations

import subprocess
from pathlib import Path

from cli import REPO, run_piforge


def run_compat(tmp_path: Path, *args: str, profiles: Path = REPO / "profiles") -> "subprocess.CompletedProcess[str]":
    return run_piforge("compat", *args, home=tmp_path / "home", env={"PIFORGE_PROFILES": str(profiles)},
                       timeout=300)


def test_every_shipped_profile_passes(tmp_path: Path) -> None:
    result = run_compat(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("local", "local-py38-tf2.2", "pi4-ubuntu2004-py38-tf2.2", "pi4-ubuntu2004-py38-tf2.13",
                 "rpios-bookworm-py311"):
        assert f"compat: {name}: CPython" in result.stdout
    # Unbuilt: the TF 2.2 wheelhouse says what it cannot see yet.
    assert "numpy-1.18.5.zip" in result.stdout and "(wheels of recipe tensorflow)" in result.stdout
    assert "not built yet (built from source)" in result.stdout
    # The edge runtime is one more pinned wheel, checked like the rest (a row that fits).
    row = [line for line in result.stdout.splitlines()
           if line.startswith("tflite_runtime-2.13.0-cp38-cp38-manylinux2014_aarch64.whl")]
    assert row and row[0].rstrip().endswith("yes"), row
    runtimes = {line.split(":")[1].strip(): line.split("edge runtime (infer:): ", 1)[1]
                for line in result.stdout.splitlines() if "edge runtime (infer:)" in line}
    assert runtimes["pi4-ubuntu2004-py38-tf2.13"].startswith("tflite-runtime 2.13.0 ")
    assert runtimes["rpios-bookworm-py311"].startswith("ai-edge-litert 2.3.0 ")
    assert runtimes["pi4-ubuntu2004-py38-tf2.2"].startswith("TensorFlow's own tf.lite.Interpreter")


def test_old_pip_profile_rejects_grpcio_1_70_0(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (REPO / "profiles" / "pi4-ubuntu2004-py38-tf2.2.toml").read_text()
    (profiles / "pi4-ubuntu2004-py38-tf2.2.toml").write_text(text.replace('pip = "24.3.1"', 'pip = "20.0.2"'))
    result = run_compat(tmp_path, "profile=pi4-ubuntu2004-py38-tf2.2", profiles=profiles)
    assert result.returncode != 0
    row = [line for line in result.stdout.splitlines() if line.startswith("grpcio-1.70.0-")][0]
    assert "cp38-cp38-manylinux_2_17_aarch64" in row and "NO: pip 20.0.2 does not understand manylinux_2_X" in row
    assert "installs with pip 20.0.2, but the wheelhouse ships pip 24.3.1" in result.stdout
    assert "wheels that do not fit their target: pi4-ubuntu2004-py38-tf2.2" in result.stdout + result.stderr


def test_glibc_2_26_profile_rejects_manylinux_2_27(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (REPO / "profiles" / "rpios-bookworm-py311.toml").read_text()
    (profiles / "rpios-bookworm-py311.toml").write_text(text.replace('glibc = "2.36"', 'glibc = "2.26"'))
    result = run_compat(tmp_path, "profile=rpios-bookworm-py311", profiles=profiles)
    assert result.returncode != 0
    row = [line for line in result.stdout.splitlines() if line.startswith("tensorflow-2.21.0-")][0]
    assert "NO: manylinux_2_27_aarch64 needs glibc 2.27, the target has 2.26" in row
