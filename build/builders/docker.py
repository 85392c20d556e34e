"""Run phases in containers of an arm64 image, through the Docker SDK (no CLI).

The base (``builder.base``) is either an image recipe's output (``image.tar`` +
``image.json``) or a root filesystem recipe's output (a debootstrapped tree), loaded
into the engine as a linux/arm64 image when the engine lacks it. With the option
``dockerfile``, the derivation *is* an image: the Dockerfile is built on the base and
saved into the output, then the phases run in it (a smoke test, a package list).

Each phase runs in a fresh container with the source, a temp output dir, the fetched
sources and the input store paths mounted, the host's CA bundle passed in (intercepting
proxies), no network unless the phase says ``network = true`` (then the host's), its
output streamed into the build log line by line, and the container removed on success,
failure and Ctrl-C alike. Option ``bazel = true`` mounts the persistent Bazel caches of
this recipe+target and renders Bazel's machine-dependent flags (build/bazel/).
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from ..builder_kinds import dockerfile_path
from ..bazel.caches import container_caches, container_mounts, host_caches
from ..bazel.flags import BazelSettings
from ..bazel.progress import ProgressMeter
from ..errors import BuildError, PrerequisiteError
from ..paths import REPO_ROOT
from .. import preflight
from .base import Builder, BuildJob, phase_script
from .rooted import CA_INSIDE, HOST_CA_BUNDLE, binds, rooted_environment, scratch_dirs
from .chroot import binfmt_problem, target_machine
from .docker_image import docker_platform, ensure_base_image, save_image

LABEL = "piforge.derivation"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ENGINE_HINT = ("start a Docker engine (e.g. `sudo systemctl start docker`, or "
               "`sudo dockerd --iptables=false --bridge=none &`) or point DOCKER_HOST at one "
               "(DOCKER_HOST=unix:///run/piforge-dockerd.sock)")
BINFMT_HINT = ("sudo apt-get install -y qemu-user-static binfmt-support && "
               "sudo update-binfmts --enable qemu-aarch64   # flags must include F")


def engine_client() -> Any:
    """A client for $DOCKER_HOST (or the default socket); PrerequisiteError if none answers."""
    try:
        import docker
        import docker.errors
    except ImportError:
        raise PrerequisiteError("the docker builder needs the Docker SDK for Python",
                                hint="./piforge installs it (requirements/controller.in: docker)") from None
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as error:
        raise PrerequisiteError(f"no Docker engine answers at {where}: {error}", hint=ENGINE_HINT) from None
    return client


def build_args(spec_options: Dict[str, Any]) -> Dict[str, str]:
    """``build_args = ["PACKAGES=bazel"]`` -> {"PACKAGES": "bazel"}."""
    args: Dict[str, str] = {}
    for item in spec_options.get("build_args", []) or []:
        key, _, value = str(item).partition("=")
        args[key] = value
    return args


class DockerBuilder(Builder):
    """Phases run in containers of ``builder.base``'s image, emulated by QEMU if foreign."""

    kind: ClassVar[str] = "docker"

    @classmethod
    def plan_environment(cls, recipe: Any, figures: Optional[preflight.MachineFigures] = None,
                         remote_cache: Optional[str] = None) -> Dict[str, str]:
        """The variables this builder adds for ``recipe`` on this machine (the Bazel
        flags), so a plan can show the exact commands: see build.bazel.flags.render_script."""
        if not dict(recipe.builder.options).get("bazel"):
            return {}
        figures = figures or preflight.measure(REPO_ROOT)
        cpus, ram_mb = preflight.bazel_limits(figures, recipe.resources.cpus)
        return BazelSettings(container_caches(), cpus, ram_mb, remote_cache).environment()

    def check_prerequisites(self, job: Optional[BuildJob] = None) -> None:
        path = dockerfile_path(dict(self.spec.options))
        if path is not None and not path.is_file():
            raise PrerequisiteError(f"builder.dockerfile: {path} does not exist")
        if job is not None:
            plat = job.derivation.recipe.platform
            problem = binfmt_problem(target_machine(plat))
            if problem:
                raise PrerequisiteError(f"cannot run {plat} containers on this {platform.machine()} host: {problem}",
                                        hint=BINFMT_HINT)
            resources = job.derivation.recipe.resources
            if any(v is not None for v in (resources.ram_gb, resources.swap_gb, resources.disk_gb)):
                preflight.check(resources, preflight.measure(job.build_dir), job.derivation.name)
        engine_client()

    def run(self, job: BuildJob) -> None:
        self.check_prerequisites(job)
        client = engine_client()
        recipe = job.derivation.recipe
        if job.base is None:
            raise BuildError(f"{recipe.name}: the docker builder needs builder.base built first")
        scratch = job.build_dir / "docker"
        scratch.mkdir(parents=True, exist_ok=True)
        image_id = ensure_base_image(client, job.base, recipe.platform, scratch, job.log)
        options = dict(self.spec.options)
        if options.get("dockerfile"):
            image_id = self.build_image(client, job, image_id, scratch)
        env, volumes = self.container_setup(job)
        for phase in recipe.phases:
            run_phase_container(client, job, image_id, phase, env, volumes,
                                bazel=bool(options.get("bazel")))

    def build_image(self, client: Any, job: BuildJob, base_id: str, scratch: Path) -> str:
        """Build the Dockerfile FROM the base (passed as build arg BASE), save it to the output."""
        options = dict(self.spec.options)
        path = dockerfile_path(options)
        assert path is not None
        context = scratch / "context"   # only the Dockerfile: nothing else can leak in
        context.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, context / "Dockerfile")
        base_tag = f"piforge/{job.base.name[:32] if job.base else 'base'}:base"
        repository, _, tag = base_tag.partition(":")
        client.images.get(base_id).tag(repository, tag)
        args = dict(build_args(options), BASE=base_tag)
        network = "host" if options.get("build_network") else "none"
        out_tag = f"piforge/{job.derivation.store_name[:32]}:{job.derivation.name}"
        job.log(f"--- docker build {path.name} FROM {base_tag} args {args} network {network}")
        image_id = None
        stream = client.api.build(path=str(context), dockerfile="Dockerfile", buildargs=args,
                                  platform=docker_platform(job.derivation.recipe.platform),
                                  rm=True, forcerm=True, pull=False, decode=True,
                                  network_mode=network, tag=out_tag,
                                  labels={LABEL: job.derivation.hash})
        splitter = _LineSplitter()
        for chunk in stream:
            if "stream" in chunk:   # stderr arrives colour-coded and cut mid-line
                for line in splitter.feed(ANSI.sub("", str(chunk["stream"])).encode()):
                    if line.strip():
                        job.log(line)
                        if line.startswith("Successfully built "):
                            image_id = line.split()[-1]
            if "error" in chunk:
                raise BuildError(f"{job.derivation.name}: docker build failed: {str(chunk['error']).strip()}")
            aux = chunk.get("aux") or {}
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
        if not image_id:
            raise BuildError(f"{job.derivation.name}: docker build reported no image")
        image_id = str(client.images.get(image_id).id)
        job.log(f"--- image {image_id}; saving it to $PIFORGE_OUT/image.tar")
        save_image(client, image_id, job.out_dir, {"dockerfile": path.name, "build_args": args,
                                                   "base": base_id, "tag": out_tag})
        return str(image_id)

    def container_setup(self, job: BuildJob) -> Tuple[Dict[str, str], Dict[str, Dict[str, str]]]:
        """The phase environment and the volumes (host path -> bind) every phase gets."""
        scratch_dirs(job)
        env = rooted_environment(job)
        volumes: Dict[str, Dict[str, str]] = {
            str(bind.host): {"bind": bind.inner, "mode": "ro" if bind.read_only else "rw"} for bind in binds(job)}
        if HOST_CA_BUNDLE.is_file():   # the host's CAs, incl. an intercepting proxy's
            volumes[str(HOST_CA_BUNDLE)] = {"bind": CA_INSIDE, "mode": "ro"}
        if dict(self.spec.options).get("bazel"):
            recipe = job.derivation.recipe
            caches = host_caches(recipe.name, recipe.platform)
            for host, inner in container_mounts(caches).items():
                volumes[host] = {"bind": inner, "mode": "rw"}
            bazel_env = self.plan_environment(recipe, preflight.measure(job.build_dir), job.bazel_remote_cache)
            env.update(bazel_env)
            job.log(f"--- bazel caches {caches.output_base} (resumable); flags {bazel_env['PIFORGE_BAZEL_FLAGS']}")
        return env, volumes


class _LineSplitter:
    """Container log chunks are arbitrary byte runs; the build log wants lines."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> List[str]:
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]

    def rest(self) -> List[str]:
        return [self.pending.decode("utf-8", "replace")] if self.pending else []


class _ProgressPrinter:
    """Bazel's [N / M] lines as a bar on stderr: redrawn in place on a terminal,
    one line every 30 s otherwise (CI logs)."""

    def __init__(self, label: str) -> None:
        self.meter = ProgressMeter(label=label)
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0

    def feed(self, line: str) -> None:
        now = time.monotonic()
        bar = self.meter.feed(line, now)
        if bar is None:
            return
        if self.tty:
            print(f"\r{bar}", end="", file=sys.stderr, flush=True)
        elif now - self.last_print >= 30:
            print(bar, file=sys.stderr, flush=True)
            self.last_print = now

    def close(self) -> None:
        if self.tty and self.meter.last is not None:
            print(file=sys.stderr, flush=True)


def run_phase_container(client: Any, job: BuildJob, image_id: str, phase: Any,
                        env: Dict[str, str], volumes: Dict[str, Dict[str, str]], *, bazel: bool) -> None:
    """One phase, one container; removed whatever happens (success, failure, Ctrl-C)."""
    recipe = job.derivation.recipe
    network = "host" if phase.network else "none"
    job.log(f"--- phase {phase.name} ({'network' if phase.network else 'offline'}) in container of {image_id[:19]}")
    container = client.containers.create(
        image_id, command=["/bin/bash", "-c", phase_script(phase, env["PIFORGE_SRC"])],
        environment=env, working_dir="/", volumes=volumes, network_mode=network,
        platform=docker_platform(recipe.platform), user="0:0", hostname="piforge-build",
        init=True,   # a reaping PID 1: daemons such as Bazel's server exit cleanly
        labels={LABEL: job.derivation.hash, "piforge.phase": phase.name}, detach=True)
    progress = _ProgressPrinter(recipe.name) if bazel else None
    try:
        container.start()
        splitter = _LineSplitter()
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
            for line in splitter.feed(chunk):
                job.log(line)
                if progress:
                    progress.feed(line)
        for line in splitter.rest():
            job.log(line)
        code = int(container.wait().get("StatusCode", 1))
    finally:
        if progress:
            progress.close()
        remove_container(container)
    if code != 0:
        raise BuildError(f"{recipe.name}: phase '{phase.name}' failed with exit code {code} (in a {docker_platform(recipe.platform)} container)")


def remove_container(container: Any) -> None:
    """Kill and remove; an engine hiccup here must not hide the build's own error."""
    import docker.errors

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as error:
        print(f"piforge: warning: could not remove container {container.id[:12]}: {error}",
              file=sys.stderr, flush=True)
