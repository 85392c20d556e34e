"""The real TensorFlow 2.2.0 recipe: the user's Bazel flags, every ./configure answer,
the graph rootfs/image -> bazel -> tensorflow, and pinned, cited sources."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from build.bazel.flags import render_script
from build.bazel.tf_configure import TF_2_2_CONFIGURE_QUESTIONS, answers_that_enable_gpu_or_mobile, unanswered
from build.builders.base import phase_script
from build.builders.docker import DockerBuilder
from build.derivation import derive
from build.paths import REPO_ROOT
from build.preflight import GIB, MachineFigures
from build.recipe import load_recipes

# The user's command, from their notes (seed/000_...txt), verbatim.
USER_BUILD = ("bazel  build --config=noaws --config=nogcp --config=nohdfs --config=nonccl "
              "--config=monolithic --config=v2 --local_cpu_resources=3 "
              "//tensorflow/tools/pip_package:build_pip_package")
PI4 = MachineFigures(ram_bytes=int(3.7 * GIB), swap_bytes=6 * GIB, disk_free_bytes=64 * GIB, cpus=4)


def rendered_build_command() -> list:
    recipe = load_recipes()["tensorflow"]
    env = DockerBuilder.plan_environment(recipe, PI4)
    phase = next(p for p in recipe.phases if p.name == "build")
    script = render_script(phase_script(phase, "$PIFORGE_SRC"), env)
    line = next(line for line in script.splitlines() if line.startswith("bazel "))
    return shlex.split(line)


def test_rendered_bazel_invocation_carries_every_flag_of_the_users_notes() -> None:
    argv = rendered_build_command()
    user = shlex.split(USER_BUILD)
    assert argv[0] == "bazel" and "build" in argv
    for flag in user[2:]:
        assert flag in argv, f"{flag} missing from {argv}"
    # what piforge adds: resumable state outside the store, and the machine's RAM budget
    for prefix in ("--output_base=", "--output_user_root=", "--disk_cache=", "--repository_cache=",
                   "--local_ram_resources="):
        assert any(a.startswith(prefix) for a in argv), prefix
    startup, command = argv[:argv.index("build")], argv[argv.index("build"):]
    # startup options before the command: the caches' and the JVM heap cap (audit item 7)
    assert all(a.startswith(("--output", "--host_jvm_args=")) for a in startup[1:])
    assert command[-1] == "//tensorflow/tools/pip_package:build_pip_package"


def test_configure_gets_every_answer_it_asks_for() -> None:
    recipe = load_recipes()["tensorflow"]
    assert unanswered(recipe.env) == []
    assert answers_that_enable_gpu_or_mobile(recipe.env) == {}
    assert recipe.env["PYTHON_BIN_PATH"].endswith("python3")
    assert len(TF_2_2_CONFIGURE_QUESTIONS) == 10
    configure = next(p for p in recipe.phases if p.name == "configure")
    assert "./configure" in configure.run and not configure.network


def test_unanswered_names_what_would_prompt() -> None:
    assert unanswered({"PYTHON_BIN_PATH": "/usr/bin/python3"})[0] == "PYTHON_LIB_PATH"
    assert "TF_NEED_CUDA" in unanswered({})


def test_only_the_fetch_phase_has_network_and_the_wheel_is_named_as_the_users() -> None:
    recipe = load_recipes()["tensorflow"]
    assert [p.name for p in recipe.phases if p.network] == ["fetch"]
    assert recipe.outputs == ("tensorflow-2.2.0-cp38-cp38-linux_aarch64.whl",)
    assert (recipe.resources.ram_gb, recipe.resources.swap_gb) == (4, 6)


def test_graph_runs_rootfs_image_bazel_tensorflow() -> None:
    drv = derive(load_recipes(), "tensorflow")
    order = [d.name for d in drv.closure()]
    assert order.index("rootfs-focal-arm64") < order.index("image-aarch64") < order.index("bazel") < order.index("tensorflow")
    image = next(d for d in drv.closure() if d.name == "image-aarch64")
    assert re.fullmatch(r"[0-9a-f]{64}", image.builder_identity["dockerfile_sha256"])


def test_every_pinned_source_of_the_tf_chain_cites_where_its_hash_was_published() -> None:
    for name in ("bazel", "tensorflow"):
        text = (REPO_ROOT / "recipes" / f"{name}.toml").read_text()
        sha = re.search(r'^sha256 = "([0-9a-f]{64})"', text, re.M).group(1)
        before = text[:text.index(sha)]
        assert "Homebrew/homebrew-core" in before.split("[[sources]]")[-1], name


def test_dockerfile_change_changes_the_image_hash(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import build.builder_kinds as docker_builder

    recipes = load_recipes()
    before = derive(recipes, "image-aarch64").hash
    tensorflow_before = derive(recipes, "tensorflow").hash
    copy = tmp_path / "Dockerfile.aarch64"
    copy.write_text((REPO_ROOT / "Dockerfile.aarch64").read_text() + "\n# changed\n")
    monkeypatch.setattr(docker_builder, "REPO_ROOT", tmp_path)
    after = derive(recipes, "image-aarch64")
    assert after.hash != before
    assert derive(recipes, "tensorflow").hash != tensorflow_before   # everything built in it, too


def test_wrapt_docker_is_wrapt_with_another_builder() -> None:
    """The docker/chroot wheel comparison means something only if the recipes agree."""
    recipes = load_recipes()
    chroot, docker = recipes["wrapt"].content(), recipes["wrapt-docker"].content()
    for key in ("version", "platform", "sources", "env", "phases", "outputs"):
        assert chroot[key] == docker[key], key
    assert (chroot["builder"]["kind"], docker["builder"]["kind"]) == ("chroot", "docker")
    assert chroot["builder"]["base"] == docker["builder"]["base"]
