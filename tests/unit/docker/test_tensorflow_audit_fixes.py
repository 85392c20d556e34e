"""The TF 2.2 audit fixes (issue 9 items 3, 6, 7) appear in the rendered plans."""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_tensorflow_plan import REPO, plan  # noqa: E402


def bazel_lines(text: str, recipe: str) -> list:
    section = text.split(f"== {recipe} ", 1)[1].split("\n== ", 1)[0]
    return [line for line in section.splitlines() if re.match(r"^\s+\| bazel ", line)]


def test_plan_tensorflow_shows_every_fix(tmp_path: Path) -> None:
    text = plan("tensorflow", tmp_path / "home")
    lines = bazel_lines(text, "tensorflow")
    assert len(lines) == 2   # fetch and build carry the same flags
    for line in lines:
        assert "--config=opt" in line                                   # item 6: CC_OPT_FLAGS apply
        assert "--copt=-mcpu=cortex-a72" in line
        # configure.py's --host_copt=-march=native is overridden by a later flag
        assert "--host_copt=-mcpu=cortex-a72" in line and "-march=native" not in line
        assert "--linkopt=-mno-fix-cortex-a53-843419" in line           # item 7: R_AARCH64_CALL26
        startup, command = line.split(" build ", 1)
        assert "--host_jvm_args=-Xmx" in startup                        # item 7: JVM capped, before `build`
    assert re.search(r"patch     patches/tensorflow/remote-platform-aarch64.patch sha256 [0-9a-f]{64} -p1 "
                     r"\(disabled: enabled = false\)", text)             # item 7: ready, switched off


def test_disk_budget_counts_the_disk_cache() -> None:
    from build.recipe import load_recipes

    tensorflow = load_recipes()["tensorflow"]
    assert tensorflow.resources.disk_gb is not None and tensorflow.resources.disk_gb > 30


def test_patch_applies_to_the_v2_2_0_file_shape(tmp_path: Path) -> None:
    """The patch's context is TF 2.2.0's remote_platform_configure.bzl (only ppc/s390x)."""
    text = (REPO / "patches" / "tensorflow" / "remote-platform-aarch64.patch").read_text()
    assert "--- a/third_party/remote_config/remote_platform_configure.bzl" in text
    assert '+        cpu = "aarch64"' in text and ' cpu = "s390x"' in text


def test_image_installs_pkg_config_for_h5py() -> None:
    dockerfile = (REPO / "Dockerfile.aarch64").read_text()
    tensorflow_set = dockerfile.split("tensorflow) pkgs=", 1)[1].split(";;", 1)[0]
    assert "pkg-config" in tensorflow_set.replace('"', " ").split()                    # item 3: h5py PR #1231


def test_plan_wheelhouse_shows_the_image_with_pkg_config_and_the_fixed_build(tmp_path: Path) -> None:
    text = plan("tensorflow-wheelhouse", tmp_path / "home")
    assert "--config=opt" in text and "--linkopt=-mno-fix-cortex-a53-843419" in text
    assert "remote-platform-aarch64.patch" in text
