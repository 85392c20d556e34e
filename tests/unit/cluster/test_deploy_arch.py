"""The deploy-time architecture check (the real path: tests/integration/arm64/test_arm64_mismatch.py)."""
from __future__ import annotations

from build.cluster.deploy import arch_mismatch
from build.profiles import Profile


def _profile(platform: str) -> Profile:
    return Profile(name="p", description="", os="debian-12", platform=platform, python="3.11", tensorflow="none",
                   wheelhouse="w", host_python="python3", check_import="six", job_env={})


def test_matching_arches_pass() -> None:
    assert arch_mismatch("aarch64", _profile("linux/aarch64")) is None
    assert arch_mismatch("aarch64", _profile("linux/arm64")) is None
    assert arch_mismatch("x86_64", _profile("linux/x86_64")) is None


def test_mismatch_names_arch_and_profile() -> None:
    why = arch_mismatch("aarch64", _profile("linux/x86_64"))
    assert why is not None and "aarch64" in why and "profile p" in why and "linux/x86_64" in why
    assert arch_mismatch("x86_64", _profile("linux/aarch64")) is not None


def test_unknown_arch_is_not_refused_here() -> None:
    assert arch_mismatch("", _profile("linux/aarch64")) is None
