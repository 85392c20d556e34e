"""What the two builders that run phases inside another root (chroot, docker) share:
where the build's directories appear inside, the bind mounts, the CA bundle, PATH and
the phase environment. Spelt once so the two cannot drift apart (they did: docker's
$TMPDIR was each container's own /tmp, so phases did not share it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, NamedTuple

from .base import BuildJob, inner_src, phase_environment

ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
CA_INSIDE = "/etc/ssl/certs/ca-certificates.crt"
# Every tool's own name for "trust this bundle" (Python ssl, requests, pip, curl).
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE")

# Where the build's directories appear inside the root.
IN_SRC = "/piforge/src"
IN_OUT = "/piforge/out"
IN_SOURCES = "/piforge/sources"
IN_INPUTS = "/piforge/inputs"
IN_HOME = "/piforge/home"
IN_TMP = "/piforge/tmp"


class Bind(NamedTuple):
    host: Path
    inner: str
    read_only: bool


def ca_environment(bundle: str) -> Dict[str, str]:
    return {variable: bundle for variable in CA_VARIABLES}


def scratch_dirs(job: BuildJob) -> None:
    """$HOME and $TMPDIR live in the build dir: one per build, shared by its phases."""
    for name in ("home", "tmp"):
        (job.build_dir / name).mkdir(parents=True, exist_ok=True)
    (job.build_dir / "tmp").chmod(0o1777)
    job.sources_dir.mkdir(parents=True, exist_ok=True)


def inner_inputs(job: BuildJob) -> Dict[str, str]:
    return {name: f"{IN_INPUTS}/{name}" for name in job.inputs}


def rooted_environment(job: BuildJob) -> Dict[str, str]:
    """The phase environment as seen inside the root (docs/spine.md, builder contract)."""
    env = phase_environment(job, src=inner_src(job, IN_SRC), out=IN_OUT, sources=IN_SOURCES,
                            inputs=inner_inputs(job), home=IN_HOME, tmp=IN_TMP, path=ROOT_PATH)
    for variable, value in ca_environment(CA_INSIDE).items():
        env.setdefault(variable, value)
    return env


def binds(job: BuildJob) -> List[Bind]:
    """Sources are hard links into the source cache and inputs are store entries, so a
    build must not be able to write them: read-only."""
    inputs = inner_inputs(job)
    result = [Bind(job.build_dir / "src", IN_SRC, False), Bind(job.out_dir, IN_OUT, False),
              Bind(job.sources_dir, IN_SOURCES, True), Bind(job.build_dir / "home", IN_HOME, False),
              Bind(job.build_dir / "tmp", IN_TMP, False)]
    result += [Bind(path, inputs[name], True) for name, path in job.inputs.items()]
    return result
