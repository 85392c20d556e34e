"""The proof: wrapt 1.12.1's PyPI sdist -> a linux_aarch64 wheel, built offline in a
debootstrapped arm64 rootfs under qemu-user (chroot builder), reproducibly, via doit.

The rootfs lives in the session-wide shared test home: debootstrapped once per CI run
(and reused across runs on a developer machine), like every content-addressed output.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from build.mounts import mounts_below
from prerequisites import require_root, require_tool
from spine_helpers import REPO, doit_command, last_line, run_doit

pytestmark = pytest.mark.slow

EM_AARCH64 = 183


@pytest.fixture(scope="module")
def arm(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Path, Path]]:
    """(home, recipes): the shared home and a recipes dir holding copies of the real
    rootfs and wrapt recipes (same content, so the same hashes as in recipes/)."""
    require_root()
    for tool in ("debootstrap", "unshare", "chroot"):
        require_tool(tool)
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        from prerequisites import unavailable
        unavailable("qemu-aarch64 binfmt not registered (run scripts/setup-host.sh)")
    recipes = tmp_path_factory.mktemp("arm-recipes")
    for name in ("rootfs-bullseye-arm64", "wrapt", "wrapt-native"):
        shutil.copy(REPO / "recipes" / f"{name}.toml", recipes)
    yield shared_home, recipes
    assert mounts_below(shared_home) == []


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1   # 64-bit little-endian
    return int.from_bytes(data[18:20], "little")


def test_wrapt_builds_as_an_aarch64_wheel_that_imports(arm: Tuple[Path, Path]) -> None:
    home, recipes = arm
    result = run_doit("build:wrapt", home=home, recipes=recipes, timeout=2400)
    path = Path(last_line(result.stdout))
    wheels = list(path.glob("*.whl"))
    assert [w.name for w in wheels] == ["wrapt-1.12.1-cp39-cp39-linux_aarch64.whl"]
    with zipfile.ZipFile(wheels[0]) as wheel:
        (so_name,) = [n for n in wheel.namelist() if n.endswith(".so")]
        assert elf_machine(wheel.read(so_name)) == EM_AARCH64
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in wheel.infolist())
    log = (path / ".piforge" / "build.log").read_text()
    assert "import wrapt ok on aarch64" in log

    # Import it again from a separate derivation that takes the wheel as an input.
    (recipes / "wrapt-import.toml").write_text(textwrap.dedent('''
        name = "wrapt-import"
        version = "1"
        platform = "linux/aarch64"
        inputs = ["wrapt"]
        [builder]
        kind = "chroot"
        base = "rootfs-bullseye-arm64"
        [[phases]]
        name = "import"
        run = """
        python3 -m pip install -q --no-deps --no-index --target /tmp/w "$PIFORGE_INPUT_WRAPT"/*.whl
        PYTHONPATH=/tmp/w python3 -c 'import platform, wrapt; print(wrapt.__version__, platform.machine())' > "$PIFORGE_OUT/import.txt"
        touch "$PIFORGE_INPUT_WRAPT/written" 2>/dev/null && echo writable > "$PIFORGE_OUT/input-writable" || true
        """
        [outputs]
        paths = ["import.txt"]
    '''))
    checked = Path(last_line(run_doit("build:wrapt-import", home=home, recipes=recipes, timeout=1200).stdout))
    assert (checked / "import.txt").read_text().split() == ["1.12.1", "aarch64"]
    assert not (checked / "input-writable").exists() and not (path / "written").exists()


def test_a_second_run_rebuilds_nothing_and_a_comment_changes_nothing(arm: Tuple[Path, Path]) -> None:
    home, recipes = arm
    first = last_line(run_doit("path:wrapt", home=home, recipes=recipes).stdout)
    again = run_doit("build:wrapt", home=home, recipes=recipes)
    assert "-- realise:wrapt" in again.stdout   # up to date: its hash is in the store
    assert "building" not in again.stderr and last_line(again.stdout) == first
    recipe = recipes / "wrapt.toml"
    original = recipe.read_text()
    try:
        recipe.write_text("# a comment that changes nothing\n" + original.replace("\n\n", "\n\n# more\n", 1))
        assert last_line(run_doit("path:wrapt", home=home, recipes=recipes).stdout) == first
        recipe.write_text(original.replace('CFLAGS = "-O2', 'CFLAGS = "-O1'))
        changed = run_doit("path:wrapt", home=home, recipes=recipes, check=False)
        assert changed.returncode != 0 and "not built" in changed.stderr
        assert "== wrapt 1.12.1  [missing" in run_doit("plan:wrapt", home=home, recipes=recipes).stdout
    finally:
        recipe.write_text(original)


def test_changing_a_build_flag_rebuilds(arm: Tuple[Path, Path], tmp_path: Path) -> None:
    """Real rebuild on a flag change (native wrapt: same hashing, seconds not minutes)."""
    _, recipes = arm
    home = tmp_path / "home"
    first = Path(last_line(run_doit("build:wrapt-native", home=home, recipes=recipes).stdout))
    recipe = recipes / "wrapt-native.toml"
    original = recipe.read_text()
    try:
        recipe.write_text(original.replace('CFLAGS = "-O2', 'CFLAGS = "-O1'))
        second = run_doit("build:wrapt-native", home=home, recipes=recipes)
        assert "building with native" in second.stderr
        assert Path(last_line(second.stdout)) != first
    finally:
        recipe.write_text(original)


def test_two_chroot_builds_are_bit_identical(arm: Tuple[Path, Path]) -> None:
    home, recipes = arm
    result = run_doit("check:wrapt", home=home, recipes=recipes, timeout=2400)
    assert "rebuild is bit-identical" in result.stderr


def _processes_rooted_in(directory: Path) -> list:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/root").startswith(str(directory)):
                    found.append(int(pid))
            except OSError:
                pass
    return found


def test_ctrl_c_and_failures_leave_no_mounts_processes_or_entries(arm: Tuple[Path, Path]) -> None:
    home, recipes = arm
    (recipes / "sleeper.toml").write_text(textwrap.dedent('''
        name = "sleeper"
        version = "1"
        platform = "linux/aarch64"
        [builder]
        kind = "chroot"
        base = "rootfs-bullseye-arm64"
        [[phases]]
        name = "nap"
        run = "echo napping; sleep 300"
    '''))
    env = dict(os.environ, PIFORGE_HOME=str(home), PIFORGE_RECIPES=str(recipes), PYTHONPATH=str(REPO))
    process = subprocess.Popen(doit_command("build:sleeper"), cwd=str(REPO), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    build_dirs = home / "build"
    deadline = time.monotonic() + 300
    log = None
    while time.monotonic() < deadline:
        logs = list(build_dirs.glob("*-sleeper-1/build.log"))
        if logs and "napping" in logs[0].read_text():
            log = logs[0]
            break
        time.sleep(0.5)
    try:
        assert log is not None, "the sleeper build never started"
        root = log.parent / "chroot" / "root"
        assert _processes_rooted_in(root), "the phase should be running chrooted"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0 and "interrupted" in err
    assert _processes_rooted_in(root) == []
    assert mounts_below(home) == []
    store = home / "store"
    assert not list(store.glob("*-sleeper-1")) and not list(store.glob(".staging-*sleeper*"))
    assert not (log.parent).exists()

    (recipes / "sleeper.toml").write_text((recipes / "sleeper.toml").read_text()
                                          .replace("sleep 300", "exit 7"))
    failed = run_doit("build:sleeper", home=home, recipes=recipes, check=False)
    assert failed.returncode != 0 and "phase 'nap' failed with exit code 7" in failed.stderr
    assert mounts_below(home) == [] and not list(store.glob("*-sleeper-1"))
