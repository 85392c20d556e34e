"""build/platform.py: every spelling of an architecture -> one Platform."""
from __future__ import annotations

import pytest

from build.errors import PlatformError
from build.platform import Platform


@pytest.mark.parametrize("text", ["linux/arm64", "linux/aarch64", "aarch64", "arm64", "linux/arm64/v8", " ARM64 "])
def test_arm64_spellings(text: str) -> None:
    platform = Platform.parse(text)
    assert platform == Platform("aarch64")
    assert platform.name == "linux/aarch64"
    assert platform.docker_platform == "linux/arm64"
    assert platform.debian_arch == "arm64"
    assert platform.uname_machine == "aarch64"
    assert platform.oci_variant == "v8"


@pytest.mark.parametrize("text", ["x86_64", "amd64", "linux/amd64", "linux/x86_64"])
def test_x86_64_spellings(text: str) -> None:
    platform = Platform.parse(text)
    assert (platform.name, platform.docker_platform, platform.debian_arch, platform.oci_variant) == (
        "linux/x86_64", "linux/amd64", "amd64", None)


def test_unknown_platform_names_what_is_known() -> None:
    with pytest.raises(PlatformError) as caught:
        Platform.parse("linux/riscv64")
    assert "riscv64" in str(caught.value) and "aarch64" in str(caught.value)
