"""One contract, every builder (docs/spine.md "The builder contract").

The same small recipes run through native, chroot (the arm64 rootfs under qemu-user)
and docker (the real engine, tests/integration/docker/dockerd_fixture.py). Each
recipe writes what its phases saw into $PIFORGE_OUT; the assertions are the same for
all three builders:

- the phases of one build share $TMPDIR, $HOME and the source dir;
- every phase gets the same documented environment (PATH, HOME, TMPDIR, LANG, TZ,
  SOURCE_DATE_EPOCH, the CA bundle variables, PIFORGE_*);
- the network is off (only loopback) unless the phase says ``network = true``;
- only $PIFORGE_OUT becomes the output.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docker"))

from docker_helpers import REPO, run_doit, store_path  # noqa: E402
from dockerd_fixture import dockerd  # noqa: E402,F401  (session fixture, used via getfixturevalue)
from prerequisites import require_root, require_tool, unavailable  # noqa: E402

pytestmark = pytest.mark.slow

BUILDERS = ("native", "chroot", "docker")
ROOTFS = "rootfs-bullseye-arm64"
# The documented variables every phase sees, with the value each must have (None: any).
CONTRACT: Dict[str, object] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
    "SOURCE_DATE_EPOCH": "315532800", "PYTHONHASHSEED": "0",
    "HOME": None, "TMPDIR": None, "PIFORGE_SRC": None, "PIFORGE_OUT": None,
    "PIFORGE_SOURCES": None, "PIFORGE_JOBS": None, "PIFORGE_NAME": None, "PIFORGE_VERSION": None,
    "SSL_CERT_FILE": None, "REQUESTS_CA_BUNDLE": None, "PIP_CERT": None, "CURL_CA_BUNDLE": None,
}

# /proc/net/dev lists the interfaces of the phase's own network namespace (sysfs may be
# the host's). Phase 1 leaves a mark in $TMPDIR, $HOME and the source dir, and a stray file outside
# $PIFORGE_OUT; phase 2 (a fresh process, container or chroot) must find the marks.
PHASES = '''\
[[phases]]
name = "first"
run = """
interfaces() { awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/net/dev | LC_ALL=C sort; }
env | LC_ALL=C sort > "$PIFORGE_OUT/env-first"
interfaces > "$PIFORGE_OUT/net-first"
echo tmp > "$TMPDIR/mark"; echo home > "$HOME/mark"; echo src > "$PIFORGE_SRC/mark"
echo stray > "$PIFORGE_SRC/stray-output"
test -s "$SSL_CERT_FILE" && echo yes > "$PIFORGE_OUT/ca-readable"
"""

[[phases]]
name = "second"
network = true
run = """
interfaces() { awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/net/dev | LC_ALL=C sort; }
env | LC_ALL=C sort > "$PIFORGE_OUT/env-second"
interfaces > "$PIFORGE_OUT/net-second"
for where in TMPDIR HOME PIFORGE_SRC; do
  if test -e "${!where}/mark"; then echo "$where yes"; else echo "$where no"; fi
done > "$PIFORGE_OUT/shared"
"""

[outputs]
paths = ["env-first", "env-second", "net-first", "net-second", "shared", "ca-readable"]
'''


def recipe(kind: str) -> str:
    head = f'name = "conformance-{kind}"\nversion = "1"\n'
    if kind == "native":
        head += '\n[builder]\nkind = "native"\n\n'
    else:
        head += f'platform = "linux/aarch64"\n\n[builder]\nkind = "{kind}"\nbase = "{ROOTFS}"\n\n'
    return head + PHASES


@pytest.fixture(scope="module")
def recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("conformance-recipes")
    shutil.copy(REPO / "recipes" / f"{ROOTFS}.toml", where)   # same bytes: the shared entry
    for kind in BUILDERS:
        (where / f"conformance-{kind}.toml").write_text(recipe(kind))
    return where


@pytest.fixture(scope="module", params=BUILDERS)
def built(request: pytest.FixtureRequest, shared_home: Path, recipes: Path) -> Iterator[Path]:
    """The store path of conformance-<kind>, built through doit as a user would."""
    kind = request.param
    if kind != "native":
        require_root()
        for tool in ("unshare", "chroot"):
            require_tool(tool)
        if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
            unavailable("qemu-aarch64 binfmt not registered (run scripts/setup-host.sh)")
    if kind == "docker":
        request.getfixturevalue("dockerd")
    yield store_path(run_doit(f"build:conformance-{kind}", home=shared_home, recipes=recipes))


def environment(path: Path) -> Dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_phases_share_tmp_home_and_source(built: Path) -> None:
    assert (built / "shared").read_text().split("\n")[:3] == ["TMPDIR yes", "HOME yes", "PIFORGE_SRC yes"]


def test_every_phase_gets_the_documented_environment(built: Path) -> None:
    first, second = environment(built / "env-first"), environment(built / "env-second")
    for name, value in CONTRACT.items():
        assert name in first, f"{name} missing from the phase environment"
        if value is not None:
            assert first[name] == value, name
    assert first == second, "phases of one build must see the same environment"
    assert (built / "ca-readable").read_text().strip() == "yes"


def test_network_is_off_unless_the_phase_asks(built: Path) -> None:
    assert (built / "net-first").read_text().split() == ["lo"]
    assert set((built / "net-second").read_text().split()) - {"lo"}


def test_only_piforge_out_becomes_the_output(built: Path) -> None:
    assert sorted(p.name for p in built.iterdir() if p.name != ".piforge") == sorted(   # the store's own
        ["env-first", "env-second", "net-first", "net-second", "shared", "ca-readable"])
