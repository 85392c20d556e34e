"""What the builders demand of the machine, and say when it is missing (no root needed)."""
from __future__ import annotations

from pathlib import Path

import pytest

from build.builders import BUILDER_KINDS
from build.builders import chroot as chroot_module
from build.builders.chroot import ChrootBuilder, binfmt_problem, target_machine
from build.builders.native import isolation_prefix
from build.errors import PrerequisiteError
from build.recipe import BuilderSpec


def test_registry_names_the_builders() -> None:
    assert BUILDER_KINDS["native"].kind == "native" and BUILDER_KINDS["chroot"] is ChrootBuilder


def test_chroot_without_root_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chroot_module.os, "geteuid", lambda: 1000)
    with pytest.raises(PrerequisiteError) as caught:
        ChrootBuilder(BuilderSpec(kind="chroot", base="rootfs")).check_prerequisites()
    assert "needs root" in str(caught.value) and "sudo" in str(caught.value)


def test_binfmt_problems_say_exactly_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert target_machine("linux/arm64") == "aarch64"
    monkeypatch.setattr(chroot_module, "BINFMT_DIR", tmp_path)
    assert "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc" in binfmt_problem("aarch64")
    (tmp_path / "status").write_text("enabled\n")
    assert "apt-get install -y qemu-user-static" in binfmt_problem("aarch64")
    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert "update-binfmts --enable qemu-aarch64" in binfmt_problem("aarch64")
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /x\nflags: P\n")
    assert "F (fix-binary) flag" in binfmt_problem("aarch64")
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /x\nflags: PF\n")
    assert binfmt_problem("aarch64") is None


def test_only_network_phases_get_resolv_conf() -> None:
    paths = [Path("/b"), Path("/u"), Path("/w"), Path("/r")]
    binds = [(Path("/store/x"), "/piforge/inputs/x", True), (Path("/o"), "/piforge/out", False)]
    online = ChrootBuilder._setup_script(*paths, binds, network=True)  # type: ignore[misc, arg-type]  # mypy misreads *paths before a positional
    offline = ChrootBuilder._setup_script(*paths, binds, network=False)  # type: ignore[misc, arg-type]
    assert "mount -o remount,bind,ro '/r''/piforge/inputs/x'" in offline
    assert "remount,bind,ro '/r''/piforge/out'" not in offline
    assert "cp /etc/resolv.conf" in online and "cp /etc/resolv.conf" not in offline
    assert "ip link set lo up" in offline
    assert "ca-certificates.crt" in online and "ca-certificates.crt" in offline


def test_native_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    import build.builders.native as native

    monkeypatch.setattr(native.os, "geteuid", lambda: 0)
    monkeypatch.setattr(native.shutil, "which", lambda tool: "/usr/bin/" + tool)
    assert "--net" in isolation_prefix(network=False) and "--mount" in isolation_prefix(network=False)
    assert "remount,bind,ro '/store/x'" in isolation_prefix(True, [Path("/store/x")])[-2]
    assert "--net" not in isolation_prefix(network=True)
    monkeypatch.setattr(native.os, "geteuid", lambda: 1000)
    assert isolation_prefix(network=False) == []
