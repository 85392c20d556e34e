"""The docker builder with a fake engine (the real one: tests/integration/docker/):
containers are removed whatever happens, logs are split into lines, a missing binfmt
handler or engine is a PrerequisiteError with the exact fix, images are labelled arm64."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List

import pytest

import build.builders.docker as docker_builder
from build.builders.docker import DockerBuilder, _LineSplitter, build_args, run_phase_container
from build.builders.docker_image import docker_platform, write_rootfs_image_archive
from build.errors import BuildError, PrerequisiteError
from build.recipe import BuilderSpec, Phase, Resources


class FakeContainer:
    def __init__(self, chunks: List[bytes], code: int, interrupt: bool = False) -> None:
        self.id = "c0ffee" * 4
        self.chunks, self.code, self.interrupt = chunks, code, interrupt
        self.removed = False

    def start(self) -> None:
        pass

    def logs(self, **_: Any):  # type: ignore[no-untyped-def]
        for chunk in self.chunks:
            yield chunk
        if self.interrupt:
            raise KeyboardInterrupt

    def wait(self) -> dict:
        return {"StatusCode": self.code}

    def remove(self, force: bool = False) -> None:
        assert force
        self.removed = True


class FakeClient:
    def __init__(self, container: FakeContainer) -> None:
        self.container = container
        self.created: dict = {}
        self.containers = SimpleNamespace(create=self.create)

    def create(self, image: str, **kwargs: Any) -> FakeContainer:
        self.created = dict(kwargs, image=image)
        return self.container


def fake_job(lines: List[str]) -> Any:
    recipe = SimpleNamespace(name="demo", platform="linux/aarch64", resources=Resources())
    derivation = SimpleNamespace(recipe=recipe, hash="ab" * 32, name="demo")
    return SimpleNamespace(derivation=derivation, log=lines.append)


@pytest.mark.parametrize("code,interrupt", [(0, False), (3, False), (0, True)])
def test_container_is_removed_on_success_failure_and_ctrl_c(code: int, interrupt: bool) -> None:
    container = FakeContainer([b"one\ntw", b"o\nthree"], code, interrupt)
    client = FakeClient(container)
    lines: List[str] = []
    phase = Phase(name="compile", run="make", network=False)
    env = {"PIFORGE_SRC": "/piforge/src"}
    if interrupt:
        with pytest.raises(KeyboardInterrupt):
            run_phase_container(client, fake_job(lines), "sha256:" + "1" * 64, phase, env, {}, bazel=False)
    elif code:
        with pytest.raises(BuildError, match="phase 'compile' failed with exit code 3"):
            run_phase_container(client, fake_job(lines), "sha256:" + "1" * 64, phase, env, {}, bazel=False)
    else:
        run_phase_container(client, fake_job(lines), "sha256:" + "1" * 64, phase, env, {}, bazel=False)
    assert container.removed
    assert client.created["network_mode"] == "none" and client.created["platform"] == "linux/arm64"
    if not interrupt:
        assert lines[1:] == ["one", "two", "three"]


def test_network_phases_get_the_hosts_network() -> None:
    client = FakeClient(FakeContainer([], 0))
    run_phase_container(client, fake_job([]), "sha256:" + "1" * 64, Phase("fetch", "true", True),
                        {"PIFORGE_SRC": "/s"}, {}, bazel=False)
    assert client.created["network_mode"] == "host"


def test_line_splitter_keeps_partial_lines() -> None:
    splitter = _LineSplitter()
    assert splitter.feed(b"a\nb") == ["a"]
    assert splitter.feed(b"c\r\n") == ["bc"]
    assert splitter.rest() == []
    splitter.feed(b"tail")
    assert splitter.rest() == ["tail"]


def test_missing_binfmt_says_exactly_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(docker_builder, "binfmt_problem",
                        lambda machine: f"no qemu-{machine} binfmt handler is registered")
    job = SimpleNamespace(derivation=SimpleNamespace(recipe=SimpleNamespace(platform="linux/aarch64",
                                                                            resources=Resources()),
                                                     name="demo"), build_dir=tmp_path)
    with pytest.raises(PrerequisiteError) as caught:
        DockerBuilder(BuilderSpec(kind="docker", base="x")).check_prerequisites(job)  # type: ignore[arg-type]
    assert "qemu-aarch64" in str(caught.value)
    assert "apt-get install -y qemu-user-static binfmt-support" in str(caught.value)
    assert "update-binfmts --enable qemu-aarch64" in str(caught.value)


def test_no_engine_is_a_prerequisite_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/piforge-test.sock")
    with pytest.raises(PrerequisiteError) as caught:
        docker_builder.engine_client()
    assert "/nonexistent/piforge-test.sock" in str(caught.value) and "dockerd" in str(caught.value)


def test_build_args_and_identity() -> None:
    assert build_args({"build_args": ["PACKAGES=bazel", "X=a=b"]}) == {"PACKAGES": "bazel", "X": "a=b"}
    identity = DockerBuilder.identity(BuilderSpec(kind="docker", base="r", options={"dockerfile": "Dockerfile.aarch64"}))
    assert len(identity["dockerfile_sha256"]) == 64
    assert "dockerfile_sha256" not in DockerBuilder.identity(BuilderSpec(kind="docker", base="r", options={}))


def test_rootfs_archive_is_a_linux_arm64_image(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as archive:
        info = tarfile.TarInfo("etc/debian_version")
        data = b"11.11\n"
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    image_id = write_rootfs_image_archive(layer, tmp_path / "image.tar", "linux/aarch64", "piforge/t:rootfs")
    with tarfile.open(tmp_path / "image.tar") as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config_bytes = archive.extractfile(manifest[0]["Config"]).read()  # type: ignore[union-attr]
    config = json.loads(config_bytes)
    assert (config["architecture"], config["variant"], config["os"]) == ("arm64", "v8", "linux")
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest()]
    assert image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert manifest[0]["RepoTags"] == ["piforge/t:rootfs"]
    assert docker_platform("linux/aarch64") == "linux/arm64"
    # same rootfs, same image ID: the image is content-addressed
    assert write_rootfs_image_archive(layer, tmp_path / "again.tar", "linux/aarch64", "piforge/t:rootfs") == image_id
