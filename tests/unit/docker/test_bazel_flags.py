"""Bazel flags piforge renders (caches, CPU/RAM) and the persistent cache layout."""
from __future__ import annotations

import shlex
from pathlib import Path

from build.bazel.caches import cache_key, container_caches, container_mounts, host_caches
from build.bazel.flags import BazelSettings, remote_cache_from_environment, render_script


def test_host_caches_are_keyed_by_recipe_and_target_outside_the_store(piforge_home: Path) -> None:
    caches = host_caches("tensorflow", "linux/aarch64")
    assert cache_key("tensorflow", "linux/aarch64") == "tensorflow-linux-aarch64"
    for directory in caches.directories():
        assert Path(directory).is_dir()
        assert str(piforge_home / "cache" / "bazel") in directory
        assert "store" not in Path(directory).relative_to(piforge_home).parts
    other = host_caches("tensorflow", "linux/x86_64")
    assert other.output_base != caches.output_base
    assert other.repository_cache == caches.repository_cache   # content-addressed: shared


def test_container_mounts_map_every_cache() -> None:
    host = host_caches("x", "linux/aarch64", root=Path("/tmp/piforge-test-bazel-cache"))
    mounts = container_mounts(host)
    assert sorted(mounts.values()) == sorted(container_caches().directories())


def test_settings_render_startup_and_command_flags() -> None:
    settings = BazelSettings(container_caches(), 3, 2800, "http://127.0.0.1:8080/bazel")
    env = settings.environment()
    startup = shlex.split(env["PIFORGE_BAZEL_STARTUP"])
    flags = shlex.split(env["PIFORGE_BAZEL_FLAGS"])
    assert startup == ["--output_user_root=/piforge/bazel/user-root", "--output_base=/piforge/bazel/output-base"]
    assert "--local_cpu_resources=3" in flags and "--local_ram_resources=2800" in flags
    assert "--disk_cache=/piforge/bazel/disk-cache" in flags
    assert "--repository_cache=/piforge/bazel/repository-cache" in flags
    assert "--remote_cache=http://127.0.0.1:8080/bazel" in flags
    assert "--remote_cache" not in env["PIFORGE_BAZEL_FLAGS"].replace(
        "--remote_cache=http://127.0.0.1:8080/bazel", "")


def test_remote_cache_only_when_configured(piforge_home: Path) -> None:
    assert remote_cache_from_environment({}) is None
    assert remote_cache_from_environment({"PIFORGE_BAZEL_REMOTE_CACHE": " http://h/c "}) == "http://h/c"


def test_render_script_expands_only_bazel_variables() -> None:
    env = {"PIFORGE_BAZEL_STARTUP": "--output_base=/o", "PIFORGE_BAZEL_FLAGS": "--local_cpu_resources=3"}
    text = 'bazel $PIFORGE_BAZEL_STARTUP build ${PIFORGE_BAZEL_FLAGS} //x "$PIFORGE_OUT" $PIFORGE_BAZEL_NOPE'
    assert render_script(text, env) == 'bazel --output_base=/o build --local_cpu_resources=3 //x "$PIFORGE_OUT" $PIFORGE_BAZEL_NOPE'


def test_host_environment_uses_this_machines_caches(piforge_home: Path) -> None:
    from types import SimpleNamespace

    from build.bazel.flags import host_environment
    from build.preflight import GIB, MachineFigures
    from build.recipe import Resources

    recipe = SimpleNamespace(name="tensorflow", platform="linux/aarch64", resources=Resources(ram_gb=4))
    env = host_environment(recipe, MachineFigures(4 * GIB, 6 * GIB, 100 * GIB, 4))
    assert f"--output_base={piforge_home}/cache/bazel/tensorflow-linux-aarch64/output-base" in env["PIFORGE_BAZEL_STARTUP"]
    assert "--local_cpu_resources=3" in env["PIFORGE_BAZEL_FLAGS"] and env["PIFORGE_BAZEL_CPUS"] == "3"
