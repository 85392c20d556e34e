"""One exception class per kind of failure, each with the exit code the CLI returns.

Every error a user can cause is a PiforgeError: doit tasks catch it and print its
message (no traceback). Anything else escaping is a bug in piforge.
"""
from __future__ import annotations

from typing import Optional


class PiforgeError(Exception):
    """Base of every expected failure; ``str(err)`` is the whole user-facing message."""

    exit_code = 1

    def __init__(self, message: str, *, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(PiforgeError):
    """A user file (recipe, cluster.toml, profile) is malformed: ``file:LINE: field: problem``."""

    exit_code = 2

    def __init__(self, path: str, line: Optional[int], field: str, problem: str,
                 *, hint: Optional[str] = None) -> None:
        self.path, self.line, self.field, self.problem = path, line, field, problem
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}", hint=hint)


class RecipeError(ConfigError):
    """A recipe in recipes/ is invalid (bad TOML, unknown field, cycle, ...)."""


class ClusterConfigError(ConfigError):
    """cluster.toml (or the file given with cluster=PATH) is invalid."""


class ProfileError(ConfigError):
    """A target profile is unknown or invalid."""


class FetchError(PiforgeError):
    """No source/mirror could be fetched; the message names every URL tried."""

    exit_code = 3


class HashMismatchError(FetchError):
    """Fetched bytes do not match the pinned sha256 (nothing enters the cache)."""


class UnsafeArchiveError(PiforgeError):
    """An archive member would escape the extraction directory."""

    exit_code = 3


class StoreError(PiforgeError):
    """The store is missing an entry or an entry failed verification."""

    exit_code = 4


class BuildError(PiforgeError):
    """A build phase failed; the message names the phase and the log file."""

    exit_code = 5


class PrerequisiteError(PiforgeError):
    """A tool or privilege the requested builder needs is missing; the hint says what to run."""

    exit_code = 6


class ResourceError(PiforgeError):
    """The machine has too little RAM + swap, disk or CPUs for a build (preflight refusal)."""

    exit_code = 6


class CacheError(PiforgeError):
    """A binary cache could not be reached or refused an operation."""

    exit_code = 7


class ArtifactRejectedError(CacheError):
    """A pulled artifact failed verification (signature, key, hash, truncation)."""


class HostError(PiforgeError):
    """A cluster host could not be reached or a command on it failed or timed out."""

    exit_code = 8


class DeployError(PiforgeError):
    """Deploying to one or more hosts failed; the message names them."""

    exit_code = 9


class TrainingError(PiforgeError):
    """A training job failed; the message names the host and the cause."""

    exit_code = 10


class SimError(PiforgeError):
    """A simulated cluster (sim:up / sim:down) could not be started, found or stopped."""

    exit_code = 2
