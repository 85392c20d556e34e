"""Profile local-py38-tf2.2 end to end: its wheelhouse (PyPI's tensorflow-cpu 2.2.0 for
Python 3.8 with the pins that make it import) installs offline, exactly as locked, into
a fresh Python 3.8 venv, and `import tensorflow` gives 2.2.0."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from build.profiles import load_profile
from prerequisites import unavailable
from docker_helpers import run_doit, store_path

pytestmark = pytest.mark.slow


def test_wheelhouse_installs_offline_and_imports_tensorflow_2_2(shared_home: Path, tmp_path: Path) -> None:
    profile = load_profile("local-py38-tf2.2")
    python = Path(profile.host_python)
    if not python.exists():
        unavailable(f"{python} (Python 3.8 under pyenv) is missing")
    wheelhouse = store_path(run_doit(f"build:{profile.wheelhouse}", home=shared_home))
    lock = (wheelhouse / "lock.txt").read_text().splitlines()
    pins = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1].split()[0] for line in lock}
    assert pins["tensorflow-cpu"] == "2.2.0" and pins["gast"] == "0.3.3"
    assert pins["numpy"].startswith("1.18.") and pins["protobuf"].startswith("3.20.")
    assert all("--hash=sha256:" in line for line in lock)

    venv = tmp_path / "venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    env = dict(os.environ, PIP_CONFIG_FILE="/dev/null", PIP_NO_INDEX="1")   # nothing but the wheelhouse
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links", str(wheelhouse),
                    "--require-hashes", "-r", str(wheelhouse / "lock.txt")], check=True, env=env, timeout=900)
    result = subprocess.run([str(venv / "bin" / "python"), "-c", "import tensorflow as tf; print(tf.__version__)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "2.2.0"
