"""The target check's tag logic: which wheels a profile's hosts can install."""
from __future__ import annotations

import pytest
from packaging.version import Version

from build.compat import Target, check_wheel, pip_problem, require_fit, target_of
from build.errors import CompatError
from build.profiles import load_profile

PI = Target("pi", (3, 8), "aarch64", (2, 31), Version("24.3.1"))
OLD_PIP = Target("old-pip", (3, 8), "aarch64", (2, 31), Version("20.0.2"))
GLIBC_226 = Target("glibc226", (3, 8), "aarch64", (2, 26), Version("24.3.1"))
X86 = Target("x86", (3, 8), "x86_64", (2, 36), Version("24.3.1"))
# The real file names on PyPI.
GRPCIO = "grpcio-1.70.0-cp38-cp38-manylinux_2_17_aarch64.whl"
WRAPT = "wrapt-1.14.1-cp38-cp38-manylinux_2_5_aarch64.manylinux1_aarch64.manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
MARKUPSAFE = "MarkupSafe-2.1.5-cp38-cp38-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"


def fits(wheel: str, target: Target) -> bool:
    return check_wheel(wheel, target).fits


@pytest.mark.parametrize("minor, ok", [(17, True), (27, True), (31, True), (32, False), (35, False)])
def test_manylinux_2_x_needs_that_glibc(minor: int, ok: bool) -> None:
    assert fits(f"x-1.0-cp38-cp38-manylinux_2_{minor}_aarch64.whl", PI) is ok


def test_manylinux_2_27_refused_for_glibc_2_26_naming_why() -> None:
    verdict = check_wheel("ml_dtypes-0.2.0-cp38-cp38-manylinux_2_27_aarch64.whl", GLIBC_226)
    assert not verdict.fits
    assert verdict.why == "manylinux_2_27_aarch64 needs glibc 2.27, the target has 2.26"
    assert fits("ml_dtypes-0.2.0-cp38-cp38-manylinux_2_26_aarch64.whl", GLIBC_226)


def test_manylinux2014_is_glibc_2_17_and_known_to_old_pip() -> None:
    assert fits("x-1.0-cp38-cp38-manylinux2014_aarch64.whl", PI)
    assert fits("x-1.0-cp38-cp38-manylinux2014_aarch64.whl", OLD_PIP)
    assert not fits("x-1.0-cp38-cp38-manylinux2014_aarch64.whl",
                    Target("t", (3, 8), "aarch64", (2, 16), Version("24.3.1")))
    assert fits(MARKUPSAFE, OLD_PIP) and fits(WRAPT, OLD_PIP)


def test_pip_before_20_3_refuses_grpcio_1_70_0() -> None:
    verdict = check_wheel(GRPCIO, OLD_PIP)
    assert not verdict.fits and verdict.tags == ("cp38-cp38-manylinux_2_17_aarch64",)
    assert "pip 20.0.2 does not understand manylinux_2_X" in verdict.why and "pypa/pip#9077" in verdict.why
    assert fits(GRPCIO, PI)
    assert fits(GRPCIO, Target("t", (3, 8), "aarch64", (2, 31), Version("20.3")))


def test_legacy_aliases_of_x86_64() -> None:
    assert fits("x-1.0-cp38-cp38-manylinux1_x86_64.whl", X86)
    assert fits("x-1.0-cp38-cp38-manylinux2010_x86_64.whl", X86)
    assert not fits("x-1.0-cp38-cp38-manylinux2010_x86_64.whl", Target("t", (3, 8), "x86_64", (2, 36), Version("18.1")))


def test_abi3_fits_newer_pythons_not_older() -> None:
    assert fits("protobuf-4.0-cp37-abi3-manylinux2014_aarch64.whl", PI)
    verdict = check_wheel("protobuf-7.36.2-cp310-abi3-manylinux2014_aarch64.whl", PI)
    assert not verdict.fits and verdict.why == "cp310-abi3 is not for CPython 3.8"


def test_pure_python_fits_everything() -> None:
    for target in (PI, OLD_PIP, GLIBC_226, X86):
        assert fits("six-1.17.0-py2.py3-none-any.whl", target)
        assert fits("absl_py-2.3.1-py3-none-any.whl", target)
    assert not fits("futures-3.4.0-py2-none-any.whl", PI)


def test_cp38_vs_cp39() -> None:
    assert fits("x-1.0-cp38-cp38-manylinux2014_aarch64.whl", PI)
    verdict = check_wheel("x-1.0-cp39-cp39-manylinux2014_aarch64.whl", PI)
    assert not verdict.fits and "cp39-cp39 is not for CPython 3.8" in verdict.why


def test_aarch64_vs_x86_64() -> None:
    verdict = check_wheel("x-1.0-cp38-cp38-manylinux2014_x86_64.whl", PI)
    assert not verdict.fits and verdict.why == "platform manylinux2014_x86_64 is not aarch64"
    assert not fits("x-1.0-cp38-cp38-manylinux2014_aarch64.whl", X86)
    assert fits("tensorflow-2.2.0-cp38-cp38-linux_aarch64.whl", PI)   # a local build's plain tag


def test_require_fit_names_wheel_tags_and_what_is_accepted() -> None:
    with pytest.raises(CompatError) as error:
        require_fit([GRPCIO, "pip-24.3.1-py3-none-any.whl"], OLD_PIP, "recipes/w.toml")
    text = str(error.value)
    assert GRPCIO in text and "tags cp38-cp38-manylinux_2_17_aarch64" in text
    assert "the target accepts old-pip: CPython 3.8 (cp38, abi3, none), aarch64, glibc 2.31, pip 20.0.2: " \
           "platforms manylinux2014_aarch64, linux_aarch64, any" in text
    assert CompatError.exit_code == 11


def test_the_profile_pip_must_be_shipped() -> None:
    assert pip_problem(["pip-24.3.1-py3-none-any.whl", "six-1.17.0-py2.py3-none-any.whl"], PI) is None
    assert "ships pip 26.3" in str(pip_problem(["pip-26.3-py3-none-any.whl"], PI))
    assert "ships no pip wheel" in str(pip_problem(["six-1.17.0-py2.py3-none-any.whl"], PI))


def test_target_of_a_shipped_profile() -> None:
    target = target_of(load_profile("pi4-ubuntu2004-py38-tf2.2"))
    assert (target.python, target.arch, target.glibc, str(target.pip)) == ((3, 8), "aarch64", (2, 31), "24.3.1")
    assert target.platforms()[0] == "manylinux_2_31_aarch64" and target.platforms()[-1] == "linux_aarch64"


def test_tflite_runtime_2_13_fits_the_pi_and_2_14_does_not() -> None:
    """2.13.0 is the last tflite-runtime a Pi on Ubuntu 20.04 (glibc 2.31) installs."""
    assert fits("tflite_runtime-2.13.0-cp38-cp38-manylinux2014_aarch64.whl", PI)
    verdict = check_wheel("tflite_runtime-2.14.0-cp38-cp38-manylinux_2_34_aarch64.whl", PI)
    assert not verdict.fits and verdict.why == "manylinux_2_34_aarch64 needs glibc 2.34, the target has 2.31"


def test_edge_runtime_named_from_the_wheels() -> None:
    from build.compat import edge_runtime

    assert edge_runtime(["numpy-1.24.3-cp38-cp38-manylinux2014_aarch64.whl",
                         "tflite_runtime-2.13.0-cp38-cp38-manylinux2014_aarch64.whl"]).startswith("tflite-runtime 2.13.0")
    assert edge_runtime(["tensorflow-2.2.0-cp38-cp38-linux_aarch64.whl"]).startswith("TensorFlow's own")
