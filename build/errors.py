"""One exception class per kind of failure, each with the exit code the CLI returns.

Every error a user can cause is a PiforgeError: doit tasks catch it and print its
message (no traceback). Anything else escaping is a bug in piforge.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Type


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
        self.problems: List["ConfigError"] = [self]

    @classmethod
    def combine(cls, problems: Sequence["ConfigError"]) -> "ConfigError":
        """One error carrying every problem found in a file, in line order: a user with
        three typos fixes all three after one run, not after three."""
        ordered = sorted(problems, key=lambda p: (p.line or 0))
        if len(ordered) == 1:
            return ordered[0]
        first = ordered[0]
        combined = cls.__new__(type(first))
        PiforgeError.__init__(combined, "\n".join(str(p) for p in ordered))
        combined.path, combined.line, combined.field, combined.problem = (
            first.path, first.line, first.field, first.problem)
        combined.problems = list(ordered)
        return combined


class RecipeError(ConfigError):
    """A recipe in recipes/ is invalid (bad TOML, unknown field, cycle, ...)."""


class ClusterConfigError(ConfigError):
    """cluster.toml (or the file given with cluster=PATH) is invalid."""


class ProfileError(ConfigError):
    """A target profile is unknown or invalid."""


class UsageError(PiforgeError):
    """A command-line variable is unknown or malformed (said before any task starts)."""

    exit_code = 2


class PlatformError(PiforgeError):
    """A platform name (linux/arm64, aarch64, ...) piforge does not know; the recipe
    validator turns it into a RecipeError at the recipe's line."""

    exit_code = 2


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


class PatchError(BuildError):
    """A recipe's patch does not apply: names the patch, the file and the failed hunk."""


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


class CompatError(PiforgeError):
    """A wheel the target cannot install (its tags vs the profile's Python, arch, glibc and
    pip), a wheelhouse without the profile's pip, or a host whose arch is not the profile's."""

    exit_code = 11


class ExportError(PiforgeError):
    """Exporting a trained model to TensorFlow Lite failed (no model, no dataset, converter)."""

    exit_code = 12


class InferenceError(PiforgeError):
    """Benchmarking an exported model on a host failed; the message names the host."""

    exit_code = 13


# What the shell sees after Ctrl-C (128 + SIGINT), as every Unix tool does.
EXIT_INTERRUPTED = 130


def exit_codes() -> List[Tuple[int, str, str]]:
    """(code, class name, meaning) for every failure kind, lowest code first: the table
    docs/spine.md lists and `./piforge exit-codes` prints."""
    rows: Dict[Tuple[int, str], str] = {}

    def visit(kind: Type[PiforgeError]) -> None:
        doc = (kind.__doc__ or "").strip().splitlines()[0]
        rows[(kind.exit_code, kind.__name__)] = doc
        for sub in kind.__subclasses__():
            visit(sub)

    visit(PiforgeError)
    ordered = [(code, name, doc) for (code, name), doc in sorted(rows.items())]
    return ordered + [(EXIT_INTERRUPTED, "KeyboardInterrupt", "Interrupted (Ctrl-C); nothing half-written is kept.")]
