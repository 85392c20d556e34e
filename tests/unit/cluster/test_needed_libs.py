"""needed_libs.py on real ELF files: the system's, and small libraries gcc builds here
laid out like an auditwheel-repaired wheel (extension with RPATH $ORIGIN/../pkg.libs,
a grafted library that needs a second grafted one, found only via the inherited RPATH)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from build.cluster import needed_libs
from build.cluster.needed_libs import EXIT_MISSING, Resolver, check_venv, elf_kind, read_elf

EM_X86_64, EM_AARCH64 = 62, 183


def cc(*args: str) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    subprocess.run(["gcc", *args], check=True, capture_output=True)


def lib(path: Path, soname: str, *links: str, module: str = "") -> None:
    """A shared library; with ``module``, a Python extension module (exports PyInit_<module>)."""
    source = path.with_suffix(".c")
    init = f"void *PyInit_{module}(void) {{ return 0; }}\n" if module else ""
    source.write_text(f"int f_{abs(hash(soname)) % 100000}(void) {{ return 1; }}\n{init}")
    cc("-shared", "-fPIC", "-o", str(path), f"-Wl,-soname,{soname}", "-Wl,--no-as-needed", str(source), *links)


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A venv-shaped tree: site-packages/pkg/_ext.so -> pkg.libs/libouter-1a2b.so.1 -> libinner-3c4d.so.2."""
    site = tmp_path / "v" / "lib" / "python3.8" / "site-packages"
    libs = site / "pkg.libs"
    libs.mkdir(parents=True)
    (site / "pkg").mkdir()
    lib(libs / "libinner-3c4d.so.2", "libinner-3c4d.so.2")
    lib(libs / "libouter-1a2b.so.1", "libouter-1a2b.so.1", f"-L{libs}", "-l:libinner-3c4d.so.2")
    lib(site / "pkg" / "_ext.so", "_ext.so", f"-L{libs}", "-l:libouter-1a2b.so.1",
        "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../pkg.libs", module="_ext")
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    (info / "RECORD").write_text("pkg/_ext.so,sha256=x,1\npkg.libs/libouter-1a2b.so.1,,\npkg.libs/libinner-3c4d.so.2,,\n")
    return tmp_path / "v"


def test_reads_needed_and_machine_of_system_binaries() -> None:
    deps = read_elf(str(Path(sys.executable).resolve()))
    assert deps is not None and deps.elf_class == 2
    ls = read_elf(shutil.which("ls") or "/bin/ls")
    assert ls is not None and "libc.so.6" in ls.needed
    assert ls.machine in (EM_X86_64, EM_AARCH64)
    assert read_elf(__file__) is None and elf_kind(__file__) is None


def test_reads_rpath_and_runpath(tmp_path: Path) -> None:
    lib(tmp_path / "a.so", "a.so", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/x:/opt/y")
    lib(tmp_path / "b.so", "b.so", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/z")
    a, b = read_elf(str(tmp_path / "a.so")), read_elf(str(tmp_path / "b.so"))
    assert a is not None and a.rpath == ("$ORIGIN/x", "/opt/y") and a.runpath == ()
    assert b is not None and b.runpath == ("$ORIGIN/z",) and b.rpath == ()


def test_system_libraries_resolve_through_the_ldconfig_cache_and_dirs() -> None:
    ls = shutil.which("ls") or "/bin/ls"
    deps = read_elf(ls)
    assert deps is not None
    resolver = Resolver()
    assert resolver.resolve("libc.so.6", ls, deps) is not None
    assert resolver.resolve("libnot-there-at-all.so.9", ls, deps) is None
    # Without cache and dirs nothing resolves: the lookup really uses them.
    assert Resolver(cache={}, system_dirs=[], ld_library_path="").resolve("libc.so.6", ls, deps) is None


def test_a_repaired_layout_resolves_via_origin_and_inherited_rpath(venv: Path) -> None:
    assert check_venv(str(venv), ["pkg-1.0-cp38-cp38-manylinux_2_31_x86_64.whl"]) == []


def test_a_missing_grafted_library_is_named_with_its_wheel(venv: Path) -> None:
    libs = venv / "lib" / "python3.8" / "site-packages" / "pkg.libs"
    (libs / "libinner-3c4d.so.2").unlink()
    missing = check_venv(str(venv), ["/w/pkg-1.0-cp38-cp38-linux_x86_64.whl", "/w/other-2-py3-none-any.whl"])
    assert [(m.library, m.wheel) for m in missing] == [("libinner-3c4d.so.2", "pkg-1.0-cp38-cp38-linux_x86_64.whl")]
    assert missing[0].needed_by.endswith("pkg.libs/libouter-1a2b.so.1")


def test_an_unrepaired_extension_names_the_system_library_and_exits_11(venv: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    site = venv / "lib" / "python3.8" / "site-packages"
    shutil.rmtree(site / "pkg.libs")
    code = needed_libs.main([str(venv), "pkg-1.0-cp38-cp38-linux_x86_64.whl"])
    out = capsys.readouterr().out
    assert code == EXIT_MISSING
    assert out.strip() == ("missing libouter-1a2b.so.1 needed by lib/python3.8/site-packages/pkg/_ext.so "
                           "(wheel pkg-1.0-cp38-cp38-linux_x86_64.whl)")


def test_runpath_is_not_inherited(tmp_path: Path) -> None:
    """DT_RUNPATH (new dtags) applies to the object itself only, as in ld.so."""
    site = tmp_path / "v" / "lib" / "python3.8" / "site-packages"
    libs = site / "pkg.libs"
    libs.mkdir(parents=True)
    lib(libs / "libinner.so.2", "libinner.so.2")
    lib(libs / "libouter.so.1", "libouter.so.1", f"-L{libs}", "-l:libinner.so.2")
    lib(site / "_ext.so", "_ext.so", f"-L{libs}", "-l:libouter.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/pkg.libs",
        module="_ext")
    missing = check_venv(str(tmp_path / "v"), resolver=Resolver(cache={}, system_dirs=[], ld_library_path=""))
    assert ("libinner.so.2", "lib/python3.8/site-packages/pkg.libs/libouter.so.1") in \
        [(m.library, m.needed_by) for m in missing]


def test_a_plugin_no_extension_loads_is_not_required(venv: Path) -> None:
    """ai-edge-litert ships vendor plugins (OpenVINO, Qualcomm) that it dlopens only on
    that hardware: their missing SDK libraries do not stop `import`, so not deploy either.
    The same library missing under an extension module is still named."""
    site = venv / "lib" / "python3.8" / "site-packages"
    plugins = site / "pkg" / "vendors"
    plugins.mkdir()
    lib(plugins / "libvendor_sdk.so.7", "libvendor_sdk.so.7")
    lib(plugins / "libPlugin_Vendor.so", "libPlugin_Vendor.so", f"-L{plugins}", "-l:libvendor_sdk.so.7")
    (plugins / "libvendor_sdk.so.7").unlink()   # the SDK is not on this host
    ext = read_elf(str(site / "pkg" / "_ext.so"))
    plugin = read_elf(str(plugins / "libPlugin_Vendor.so"))
    assert ext is not None and ext.python_module and plugin is not None and not plugin.python_module
    assert check_venv(str(venv)) == []
    lib(site / "pkg" / "_vendor_ext.so", "_vendor_ext.so", f"-L{plugins}", "-l:libPlugin_Vendor.so",
        "-Wl,--disable-new-dtags,-rpath,$ORIGIN/vendors", module="_vendor_ext")
    assert [(m.library, m.needed_by) for m in check_venv(str(venv))] == \
        [("libvendor_sdk.so.7", "lib/python3.8/site-packages/pkg/vendors/libPlugin_Vendor.so")]
