"""One Platform type: every spelling of an architecture piforge meets (recipes, Docker,
Debian, uname, OCI) parsed once and written out by property, instead of a conversion
table in each module."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .errors import PlatformError

# uname machine -> (Debian arch / Docker arch, OCI variant)
_MACHINES: Dict[str, Tuple[str, Optional[str]]] = {
    "aarch64": ("arm64", "v8"),
    "x86_64": ("amd64", None),
}
_ALIASES = {"arm64": "aarch64", "arm64/v8": "aarch64", "aarch64/v8": "aarch64", "amd64": "x86_64"}


@dataclass(frozen=True)
class Platform:
    """``machine`` is the uname spelling (aarch64, x86_64), piforge's canonical one."""

    machine: str
    os: str = "linux"

    @classmethod
    def parse(cls, text: str) -> "Platform":
        """'linux/arm64', 'linux/aarch64', 'aarch64', 'arm64', 'x86_64', 'amd64', 'linux/arm64/v8'."""
        name = text.strip().lower()
        os_name = "linux"
        if name.startswith("linux/"):
            name = name[len("linux/"):]
        machine = _ALIASES.get(name, name)
        if machine not in _MACHINES:
            known = ", ".join(sorted({*_MACHINES, *_ALIASES}))
            raise PlatformError(f"unknown platform '{text}' (expected linux/<arch>, arch one of: {known})")
        return cls(machine=machine, os=os_name)

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """piforge's spelling in recipes and derivations: ``linux/aarch64``."""
        return f"{self.os}/{self.machine}"

    @property
    def uname_machine(self) -> str:
        return self.machine

    @property
    def debian_arch(self) -> str:
        return _MACHINES[self.machine][0]

    @property
    def docker_arch(self) -> str:
        return _MACHINES[self.machine][0]

    @property
    def docker_platform(self) -> str:
        """``linux/arm64``: what the Docker engine and registries call it."""
        return f"{self.os}/{self.docker_arch}"

    @property
    def oci_variant(self) -> Optional[str]:
        return _MACHINES[self.machine][1]


def host() -> Platform:
    import platform as _platform

    return Platform.parse(_platform.machine())


PLATFORMS = tuple(Platform(machine).name for machine in _MACHINES)
