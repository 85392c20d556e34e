"""`doit plan:tensorflow-wheelhouse` on a fresh home: the whole chain, hashes and the
exact commands, before anything is fetched or built."""
from __future__ import annotations

import re
from pathlib import Path

from tests.cli import run_piforge

REPO = Path(__file__).resolve().parents[3]


def plan(name: str, home: Path) -> str:
    result = run_piforge(f"plan:{name}", home=home, drop=("PIFORGE_RECIPES",), timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_plan_prints_rootfs_image_bazel_tensorflow_wheelhouse(tmp_path: Path) -> None:
    text = plan("tensorflow-wheelhouse", tmp_path / "fresh-home")
    headers = re.findall(r"^== (\S+) ", text, re.M)
    assert headers == ["auditwheel", "rootfs-focal-arm64", "image-aarch64", "bazel", "tensorflow",
                       "tensorflow-wheelhouse"]
    assert len(re.findall(r"^   hash      [0-9a-f]{64}$", text, re.M)) == 6
    assert text.count("missing (would build)") == 6
    # Item 4 of issue 9: the source-built wheels are repaired before collect takes them.
    assert '"$PIFORGE_INPUT_AUDITWHEEL"/bin/repair-wheels "$TMPDIR/repaired" "$TMPDIR"/wheels/*.whl' in text
    assert "--config=noaws --config=nogcp --config=nohdfs --config=nonccl --config=monolithic --config=v2" in text
    assert 'EXTRA_BAZEL_ARGS="--host_javabase=@local_jdk//:jdk" bash ./compile.sh' in text
    assert "bazel-bin/tensorflow/tools/pip_package/build_pip_package" in text
    assert not (tmp_path / "fresh-home" / "store").exists() or not any((tmp_path / "fresh-home" / "store").iterdir())
