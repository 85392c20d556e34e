"""[[patches]]: recipe data (validated, hashed), applied in order after unpacking by
the real GNU patch; a bad patch names itself and the failed hunk."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_recipe_validation import GOOD, error_of, write  # noqa: E402

from build.derivation import derive  # noqa: E402
from build.errors import PatchError  # noqa: E402
from build.patching import apply_patches, failed_hunks  # noqa: E402
from build.recipe import load_recipes  # noqa: E402

GOOD_PATCH = """--- a/hello.txt
+++ b/hello.txt
@@ -1,3 +1,3 @@
 one
-two
+TWO
 three
"""
BAD_PATCH = """--- a/hello.txt
+++ b/hello.txt
@@ -1,3 +1,3 @@
 one
-zwei
+ZWEI
 three
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """tmp/recipes/demo.toml and tmp/patches/demo/*.patch: the repo layout."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "patches" / "demo").mkdir(parents=True)
    (tmp_path / "patches" / "demo" / "good.patch").write_text(GOOD_PATCH)
    (tmp_path / "patches" / "demo" / "bad.patch").write_text(BAD_PATCH)
    return tmp_path


def with_patches(text: str) -> str:
    return GOOD.replace("[env]", text + "\n[env]")


def test_patches_load_in_order_and_are_hashed(repo: Path) -> None:
    write(repo / "recipes", "demo", GOOD)
    plain = derive(load_recipes(repo / "recipes"), "demo").hash
    write(repo / "recipes", "demo", with_patches('[[patches]]\nfile = "patches/demo/good.patch"\n'
                                                 '[[patches]]\nfile = "patches/demo/bad.patch"\nenabled = false\n'))
    recipe = load_recipes(repo / "recipes")["demo"]
    assert [p.file for p in recipe.patches] == ["patches/demo/good.patch", "patches/demo/bad.patch"]
    assert [p.enabled for p in recipe.patches] == [True, False]
    patched = derive(load_recipes(repo / "recipes"), "demo").hash
    assert patched != plain
    (repo / "patches" / "demo" / "good.patch").write_text(GOOD_PATCH.replace("TWO", "Two"))
    edited = derive(load_recipes(repo / "recipes"), "demo").hash
    assert edited != patched   # the patch's bytes are hashed
    (repo / "patches" / "demo" / "bad.patch").write_text("changed, but disabled")
    assert derive(load_recipes(repo / "recipes"), "demo").hash == edited


def test_disabled_patch_does_not_change_the_hash(repo: Path) -> None:
    write(repo / "recipes", "demo", GOOD)
    plain = derive(load_recipes(repo / "recipes"), "demo").hash
    write(repo / "recipes", "demo", with_patches('[[patches]]\nfile = "patches/demo/bad.patch"\nenabled = false\n'))
    assert derive(load_recipes(repo / "recipes"), "demo").hash == plain


def test_missing_patch_file_is_a_load_time_error(repo: Path) -> None:
    write(repo / "recipes", "demo", with_patches('[[patches]]\nfile = "patches/demo/nope.patch"\n'))
    error = error_of(repo / "recipes")
    assert error.field == "patches.0.file" and "does not exist" in error.problem and error.line


def test_patch_outside_patches_dir_is_refused(repo: Path) -> None:
    write(repo / "recipes", "demo", with_patches('[[patches]]\nfile = "../etc/passwd"\n'))
    assert "under patches/" in error_of(repo / "recipes").problem


def test_failed_hunks_are_read_from_patch_output() -> None:
    output = "patching file hello.txt\nHunk #1 succeeded at 1.\nHunk #2 FAILED at 14.\n1 out of 2 hunks FAILED\n"
    assert failed_hunks(output) == ["file hello.txt: hunk #2 failed at line 14"]


@pytest.mark.skipif(shutil.which("patch") is None, reason="GNU patch not installed (scripts/setup-host.sh)")
def test_real_patch_applies_good_and_names_the_bad_hunk(repo: Path, tmp_path: Path) -> None:
    write(repo / "recipes", "demo", with_patches('[[patches]]\nfile = "patches/demo/good.patch"\n'
                                                 '[[patches]]\nfile = "patches/demo/bad.patch"\n'))
    recipe = load_recipes(repo / "recipes")["demo"]
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("one\ntwo\nthree\n")
    lines = []
    apply_patches(recipe.patches[:1], src, lines.append)
    assert (src / "hello.txt").read_text() == "one\nTWO\nthree\n"
    with pytest.raises(PatchError) as caught:
        apply_patches(recipe.patches[1:], src, lines.append)
    message = str(caught.value)
    assert "patches/demo/bad.patch" in message and "file hello.txt: hunk #1 failed at line 1" in message
    assert (src / "hello.txt").read_text() == "one\nTWO\nthree\n"   # no half-applied mess, no .rej
    assert not list(src.glob("*.rej")) and not list(src.glob("*.orig"))
