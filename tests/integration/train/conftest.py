"""Fixtures of the training tests: real TensorFlow environments and simulated hosts.

TensorFlow comes from piforge's own `deploy` of two profiles, once per CI run into the
shared test home: `local` (Python 3.11, tensorflow-cpu 2.21 + tf-keras) and the user's
own version (`local-py38-tf2.2`: Python 3.8, tensorflow-cpu 2.2.0 and the pins that make
it import). A test host is a directory laid out as `doit deploy` leaves one:
``<home>/venvs/<profile>/current -> venv``.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests import cli

REPO = Path(__file__).resolve().parents[3]
PROFILES = ("local", "local-py38-tf2.2")


@contextlib.contextmanager
def _home(path: Path) -> Iterator[None]:
    saved = os.environ.get("PIFORGE_HOME")
    os.environ["PIFORGE_HOME"] = str(path)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PIFORGE_HOME", None)
        else:
            os.environ["PIFORGE_HOME"] = saved


def _deploy_profile(shared_home: Path, name: str) -> Path:
    """`doit deploy` of profile ``name`` to one local host in the shared test home."""
    from build.cluster.config import load_cluster
    from build.cluster.deploy import deploy, raise_for_failures
    from build.cluster.wheelhouse import load_wheelhouse
    from build.derivation import derive
    from build.profiles import load_profile
    from build.realise import realise
    from build.recipe import load_recipes
    from build.store import Store

    home = shared_home / "train-hosts" / name
    current = home / "venvs" / name / "current"
    if (current / "bin" / "python").exists() and _has_modules(current / "bin" / "python", name):
        return current.resolve()
    print(f"\n[train fixtures] deploying profile {name} into {home} (once per test home)", flush=True)
    with _home(shared_home):
        profile = load_profile(name)
        store = Store.default()
        wheelhouse = load_wheelhouse(realise(derive(load_recipes(), profile.wheelhouse), store), store)
        cluster_file = shared_home / f"train-deploy-{name}.toml"
        cluster_file.write_text(f'[cluster]\ntransport = "local"\nprofile = "{name}"\n'
                                f'python = "{profile.host_python}"\n\n'
                                f'[[hosts]]\nname = "deploy"\ntf_port = 1\nhome = "{home}"\n')
        raise_for_failures(deploy(load_cluster(cluster_file), profile, wheelhouse, relay=False), "deploy")
    return current.resolve()


def _has_modules(python: Path, profile_name: str) -> bool:
    """Does the deployed venv still have every module the profile's check_import names?
    (A wheelhouse that gained a package, e.g. ai-edge-litert, is deployed again.)"""
    from build.profiles import load_profile

    modules = [m.strip() for m in load_profile(profile_name).check_import.split(",") if m.strip()]
    probe = "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))"
    return subprocess.run([str(python), "-c", probe, *modules], check=False).returncode == 0


@pytest.fixture(scope="session")
def tf_venvs(shared_home: Path) -> Dict[str, Path]:
    """profile name -> the venv `doit deploy` made for it (TensorFlow, pinned by the
    profile's wheelhouse), built once per test home."""
    return {name: _deploy_profile(shared_home, name) for name in PROFILES}


class TestCluster:
    """Writes cluster files whose hosts are directories laid out as `doit deploy` leaves them."""

    def __init__(self, root: Path, venvs: Dict[str, Path]) -> None:
        self.root = root
        self.venvs = venvs

    def host_home(self, name: str, profile: str, wrapper: Optional[str] = None) -> Path:
        """``<home>/venvs/<profile>/current`` is the profile's venv, or a directory whose
        bin/python runs it through ``wrapper`` (e.g. ``ip netns exec pft-a``)."""
        home = self.root / "hosts" / name
        current = home / "venvs" / profile / "current"
        current.parent.mkdir(parents=True, exist_ok=True)
        venv = self.venvs[profile]
        if wrapper is None:
            current.symlink_to(venv)
        else:
            (current / "bin").mkdir(parents=True)
            script = current / "bin" / "python"
            script.write_text(f'#!/bin/sh\nexec {wrapper} {venv}/bin/python "$@"\n')
            script.chmod(0o755)
        return home

    def write(self, jobs: str, *, profile: str = "local", hosts: int = 2,
              addresses: Optional[List[str]] = None, wrappers: Optional[List[str]] = None) -> Path:
        lines = ["[cluster]", 'name = "test"', 'transport = "local"', f'profile = "{profile}"', ""]
        for index in range(hosts):
            name = f"h{index}"
            home = self.host_home(name, profile, wrappers[index] if wrappers else None)
            address = addresses[index] if addresses else "127.0.0.1"
            lines += ["[[hosts]]", f'name = "{name}"', f'address = "{address}"',
                      f"tf_port = {free_port()}", f'home = "{home}"', ""]
        path = self.root / "cluster.toml"
        path.write_text("\n".join(lines) + textwrap.dedent(jobs), encoding="utf-8")
        return path


@pytest.fixture
def test_cluster(tmp_path: Path, tf_venvs: Dict[str, Path], piforge_home: Path) -> TestCluster:
    return TestCluster(tmp_path, tf_venvs)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def piforge_command(*args: str) -> List[str]:
    """`./piforge ARGS` without the venv check (tests/cli.py)."""
    return cli.piforge_argv(*args)


@pytest.fixture
def start_piforge(piforge_home: Path):  # type: ignore[no-untyped-def]
    """Start `./piforge ARGS` in the background (for faults injected mid-run)."""

    def start(*args: str) -> "subprocess.Popen[str]":
        return cli.start_piforge(*args, home=piforge_home)

    return start


@pytest.fixture
def run_piforge(piforge_home: Path):  # type: ignore[no-untyped-def]
    """Run `./piforge ARGS` in a subprocess (stderr joins stdout, echoed for the test log)."""

    def run(*args: str, timeout: float = 600) -> "subprocess.CompletedProcess[str]":
        result = cli.run_piforge(*args, home=piforge_home, timeout=timeout, merge_stderr=True)
        print(result.stdout[-6000:])
        return result

    return run


def write_pet_images(zip_path: Path, per_class: int = 60) -> None:
    """A small PetImages archive like Microsoft's: cats reddish, dogs bluish (learnable),
    plus the two kinds of bad file the real set has: no JFIF header, and a truncated JPEG."""
    import io
    import random
    import zipfile

    from PIL import Image

    rng = random.Random(7)

    def jpeg(base: tuple) -> bytes:
        image = Image.new("RGB", (80, 60))
        image.putdata([tuple(max(0, min(255, c + rng.randint(-60, 60))) for c in base) for _ in range(80 * 60)])
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        return buffer.getvalue()

    with zipfile.ZipFile(zip_path, "w") as archive:
        for index in range(per_class):
            archive.writestr(f"PetImages/Cat/{index}.jpg", jpeg((170, 80, 60)))
            archive.writestr(f"PetImages/Dog/{index}.jpg", jpeg((60, 90, 170)))
        archive.writestr(f"PetImages/Cat/{per_class}.jpg", jpeg((170, 80, 60))[:700])  # truncated
        archive.writestr(f"PetImages/Dog/{per_class}.jpg", b"\x89PNG\r\n\x1a\n not a jpeg at all")
        archive.writestr("PetImages/Cat/Thumbs.db", b"\0" * 64)


@pytest.fixture
def cats_dataset(tmp_path: Path, piforge_home: Path) -> Path:
    """The real dataset-cats-vs-dogs recipe, its source swapped for a generated archive,
    built into the store; returns the .npz the jobs read."""
    import dataclasses

    from build.derivation import derive
    from build.hashing import sha256_file
    from build.realise import realise
    from build.recipe import RecipeSet, Source, load_recipes

    archive = tmp_path / "pets.zip"
    write_pet_images(archive)
    recipes = load_recipes()
    real = recipes["dataset-cats-vs-dogs"]
    source = Source(urls=(str(archive),), sha256=sha256_file(archive), filename=real.sources[0].filename,
                    unpack=False)
    name = "dataset-cats-vs-dogs"
    swapped = RecipeSet({**{n: recipes[n] for n in recipes}, name: dataclasses.replace(real, sources=(source,))},
                        recipes.directory)
    return realise(derive(swapped, name)) / "cats_vs_dogs.npz"
