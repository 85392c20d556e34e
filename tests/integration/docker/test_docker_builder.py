"""The docker builder against a real engine: a Debian 11 arm64 rootfs (a store entry)
loaded as a linux/arm64 image, phases in containers under QEMU, offline unless the
phase says otherwise, host CAs passed in, containers removed on failure; and wrapt
built through it compared with the chroot build."""
from __future__ import annotations

import shutil
import textwrap
import zipfile
from pathlib import Path

import pytest

from dockerd_fixture import dockerd, piforge_containers  # noqa: F401  (session fixture)
from docker_helpers import REPO, run_doit, store_path

pytestmark = pytest.mark.slow

def docker_recipe(name: str, body: str) -> str:
    """A recipe run by the docker builder straight in the Debian 11 rootfs."""
    return (f'name = "{name}"\nversion = "1"\nplatform = "linux/aarch64"\n\n'
            '[builder]\nkind = "docker"\nbase = "rootfs-bullseye-arm64"\n\n' + textwrap.dedent(body))


PROBE = docker_recipe("docker-probe", '''\
    [[phases]]
    name = "offline"
    run = """
    uname -m > "$PIFORGE_OUT/machine"
    ldd --version | sed -n 1p > "$PIFORGE_OUT/glibc"   # sed reads it all: no SIGPIPE under pipefail
    ls /sys/class/net > "$PIFORGE_OUT/net-offline"
    grep -c 'BEGIN CERTIFICATE' "$SSL_CERT_FILE" > "$PIFORGE_OUT/ca-count"
    """

    [[phases]]
    name = "online"
    network = true
    run = """
    ls /sys/class/net > "$PIFORGE_OUT/net-online"
    """

    [outputs]
    paths = ["machine", "glibc", "net-offline", "net-online", "ca-count"]
    ''')
FAILING = docker_recipe("docker-fails", '''\
    [[phases]]
    name = "boom"
    run = "echo about to fail; exit 3"
    ''')


@pytest.fixture(scope="module")
def probe_recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real rootfs recipe (same bytes, same hash: the shared store entry) + probes."""
    recipes = tmp_path_factory.mktemp("docker-recipes")
    shutil.copy(REPO / "recipes" / "rootfs-bullseye-arm64.toml", recipes)
    (recipes / "docker-probe.toml").write_text(PROBE)
    (recipes / "docker-fails.toml").write_text(FAILING)
    return recipes


def test_phases_run_in_arm64_containers_offline_unless_marked(dockerd: str, shared_home: Path,  # noqa: F811
                                                              probe_recipes: Path) -> None:
    path = store_path(run_doit("build:docker-probe", home=shared_home, recipes=probe_recipes))
    assert (path / "machine").read_text().strip() == "aarch64"
    assert "2.31" in (path / "glibc").read_text()                       # Ubuntu 20.04's glibc
    assert (path / "net-offline").read_text().split() == ["lo"]          # network_mode none
    # network = true: the host's interfaces (the entry may be older than today's
    # interfaces, so compare what both have besides loopback)
    online = set((path / "net-online").read_text().split())
    host_interfaces = {p.name for p in Path("/sys/class/net").iterdir()}
    assert "lo" in online and (online - {"lo"}) & host_interfaces
    host_cas = Path("/etc/ssl/certs/ca-certificates.crt").read_text().count("BEGIN CERTIFICATE")
    assert int((path / "ca-count").read_text()) == host_cas
    assert piforge_containers(dockerd) == []


def test_a_failing_phase_names_it_and_leaves_no_container(dockerd: str, shared_home: Path,  # noqa: F811
                                                          probe_recipes: Path) -> None:
    result = run_doit("build:docker-fails", home=shared_home, recipes=probe_recipes, check=False)
    assert result.returncode != 0
    assert "phase 'boom' failed with exit code 3" in result.stderr
    assert "about to fail" in result.stderr                              # the log's tail is shown
    assert piforge_containers(dockerd) == []


def test_wrapt_through_docker_matches_the_chroot_build(dockerd: str, shared_home: Path) -> None:  # noqa: F811
    docker_wheel = next(store_path(run_doit("build:wrapt-docker", home=shared_home)).glob("*.whl"))
    chroot_wheel = next(store_path(run_doit("build:wrapt", home=shared_home)).glob("*.whl"))
    assert docker_wheel.name == chroot_wheel.name == "wrapt-1.12.1-cp39-cp39-linux_aarch64.whl"
    with zipfile.ZipFile(docker_wheel) as a, zipfile.ZipFile(chroot_wheel) as b:
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            assert a.read(name) == b.read(name), name
    assert docker_wheel.read_bytes() == chroot_wheel.read_bytes()
    assert piforge_containers(dockerd) == []
