"""Render the Bazel flags piforge adds to a recipe's own (caches, CPU/RAM limits, output).

Recipes write ``bazel $PIFORGE_BAZEL_STARTUP build $PIFORGE_BAZEL_FLAGS <their flags>``:
what depends on the machine (cores, RAM, cache locations) comes from here, so one
recipe (and one derivation hash) serves a 4 GB Pi and a 64-core Docker host alike.
None of these flags changes Bazel's outputs, only how fast and where it works.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

from .caches import BazelCaches

@dataclass(frozen=True)
class BazelSettings:
    caches: BazelCaches
    local_cpu_resources: int
    local_ram_resources_mb: int
    remote_cache: Optional[str] = None

    def startup_flags(self) -> List[str]:
        return [f"--output_user_root={self.caches.output_user_root}",
                f"--output_base={self.caches.output_base}"]

    def command_flags(self) -> List[str]:
        flags = [
            f"--disk_cache={self.caches.disk_cache}",
            f"--repository_cache={self.caches.repository_cache}",
            f"--local_cpu_resources={self.local_cpu_resources}",
            f"--local_ram_resources={self.local_ram_resources_mb}",
            # plain, periodic "[N / M]" lines: the log is a file, the bar is ours
            "--curses=no", "--color=no", "--show_progress_rate_limit=5",
        ]
        if self.remote_cache:
            flags.append(f"--remote_cache={self.remote_cache}")
        return flags

    def environment(self) -> Dict[str, str]:
        """The variables a phase sees (and ``render_script`` expands for the plan)."""
        return {
            "PIFORGE_BAZEL_STARTUP": " ".join(shlex.quote(f) for f in self.startup_flags()),
            "PIFORGE_BAZEL_FLAGS": " ".join(shlex.quote(f) for f in self.command_flags()),
            "PIFORGE_BAZEL_CPUS": str(self.local_cpu_resources),
            "PIFORGE_BAZEL_RAM_MB": str(self.local_ram_resources_mb),
        }


def remote_cache_from_environment(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """A Bazel HTTP cache (the binary-cache server speaks /ac and /cas) if one is
    configured: $PIFORGE_BAZEL_REMOTE_CACHE, else the cache area's config."""
    from ..cache.config import bazel_remote_cache

    return bazel_remote_cache(dict(environ if environ is not None else os.environ))


_VARIABLE = re.compile(r"\$\{(PIFORGE_BAZEL_[A-Z_]+)\}|\$(PIFORGE_BAZEL_[A-Z_]+)")


def render_script(script: str, environment: Mapping[str, str]) -> str:
    """The phase text with the PIFORGE_BAZEL_* variables written out: the exact command
    a build runs, for ``doit plan:`` and for tests that check the user's flags are there."""

    def substitute(match: "re.Match[str]") -> str:
        name = match.group(1) or match.group(2)
        return environment.get(name, match.group(0))

    return _VARIABLE.sub(substitute, script)


def host_environment(recipe: "object", figures: "object" = None) -> Dict[str, str]:
    """PIFORGE_BAZEL_* for a build running directly on this machine (the native builder
    on a Pi): this machine's caches for the recipe+target, its CPU/RAM limits."""
    from .. import preflight
    from ..paths import piforge_home
    from .caches import host_caches

    figures = figures or preflight.measure(piforge_home())
    cpus, ram_mb = preflight.bazel_limits(figures, recipe.resources.cpus)  # type: ignore[attr-defined, arg-type]
    caches = host_caches(recipe.name, recipe.platform)  # type: ignore[attr-defined]
    return BazelSettings(caches, cpus, ram_mb, remote_cache_from_environment()).environment()
