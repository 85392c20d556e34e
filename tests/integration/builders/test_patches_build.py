"""[[patches]] through a real build (doit build:, native builder, GNU patch): a good
patch changes the unpacked tree the phases see; a bad one stops the build before any
phase, naming the patch and the failed hunk."""
from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docker"))
from docker_helpers import run_doit, store_path  # noqa: E402

pytestmark = pytest.mark.slow

GOOD = "--- a/hello.txt\n+++ b/hello.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n"
BAD = "--- a/hello.txt\n+++ b/hello.txt\n@@ -1,3 +1,3 @@\n one\n-zwei\n+ZWEI\n three\n"


def make_repo(root: Path) -> Path:
    """root/recipes/*.toml, root/patches/demo/*.patch, root/recipes/demo-1.tar.gz."""
    recipes = root / "recipes"
    (root / "patches" / "demo").mkdir(parents=True)
    recipes.mkdir()
    (root / "patches" / "demo" / "good.patch").write_text(GOOD)
    (root / "patches" / "demo" / "bad.patch").write_text(BAD)
    data = b"one\ntwo\nthree\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("demo-1/hello.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (recipes / "demo-1.tar.gz").write_bytes(buffer.getvalue())
    sha = hashlib.sha256(buffer.getvalue()).hexdigest()
    for name, patches in (("patched-good", ["good"]), ("patched-bad", ["good", "bad"])):
        text = (f'name = "{name}"\nversion = "1"\n\n[builder]\nkind = "native"\n\n'
                f'[[sources]]\nurls = ["demo-1.tar.gz"]\nsha256 = "{sha}"\n\n')
        text += "".join(f'[[patches]]\nfile = "patches/demo/{p}.patch"\n\n' for p in patches)
        text += '[[phases]]\nname = "copy"\nrun = "cp hello.txt \\"$PIFORGE_OUT/\\""\n\n[outputs]\npaths = ["hello.txt"]\n'
        (recipes / f"{name}.toml").write_text(text)
    return recipes


def test_good_patch_applies_bad_patch_names_its_hunk(tmp_path: Path) -> None:
    if shutil.which("patch") is None:
        pytest.skip("GNU patch not installed (scripts/setup-host.sh)")
    recipes = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    path = store_path(run_doit("build:patched-good", home=home, recipes=recipes))
    assert (path / "hello.txt").read_text() == "one\nTWO\nthree\n"
    result = run_doit("build:patched-bad", home=home, recipes=recipes, check=False)
    assert result.returncode != 0
    assert "patch patches/demo/bad.patch does not apply" in result.stderr
    assert "file hello.txt: hunk #1 failed at line 1" in result.stderr
    assert "phase 'copy'" not in result.stderr   # stopped before any phase ran
