"""Wheels checked against their target: can the profile's hosts install this wheel?

A profile says what its hosts' installer accepts: CPython ``python`` (its ABI is cpXY),
the ``platform`` architecture, the hosts' ``glibc`` and the ``pip`` that installs (the
pip wheel every wheelhouse ships; deploy runs it from the wheel with
``venv --without-pip``, so a distro's old pip never decides). From those we compute the
set of tags that pip accepts there, with the ``packaging`` library's own generators
(packaging.tags.cpython_tags / compatible_tags) and read each wheel's tags with
packaging.utils.parse_wheel_filename. Only the platform list is ours, because
packaging can only describe the running machine, not a target: it is what pip's
vendored packaging yields on such a host.

pip < 20.3 predates PEP 600 (pypa/pip#9077): it knows only the legacy aliases
manylinux1 (pip 8.1), manylinux2010 (pip 19.0) and manylinux2014 (pip 19.3), never
``manylinux_2_X``; Ubuntu 20.04's own pip is 20.0.2.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .errors import CompatError

PEP600_PIP = Version("20.3")   # first pip that understands manylinux_2_X (pypa/pip#9077)
# Legacy alias -> (glibc it stands for, first pip that knows it, architectures it exists for).
LEGACY_MANYLINUX = (
    ("manylinux2014", (2, 17), Version("19.3"),
     ("x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x")),
    ("manylinux2010", (2, 12), Version("19.0"), ("x86_64", "i686")),
    ("manylinux1", (2, 5), Version("8.1"), ("x86_64", "i686")),
)
# The oldest glibc any manylinux wheel of the arch claims (as packaging's _manylinux).
OLDEST_GLIBC = {"x86_64": (2, 5), "i686": (2, 5)}
DEFAULT_OLDEST_GLIBC = (2, 17)
ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64"}
_PEP600 = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")


def normalize_arch(arch: str) -> str:
    """``uname -m`` / Docker spelling -> the one wheel tags use (arm64 -> aarch64)."""
    return ARCH_ALIASES.get(arch.strip(), arch.strip())


@dataclass(frozen=True)
class Target:
    """What one profile's hosts accept."""

    profile: str
    python: Tuple[int, int]
    arch: str
    glibc: Tuple[int, int]
    pip: Version

    @property
    def interpreter(self) -> str:
        return f"cp{self.python[0]}{self.python[1]}"

    def platforms(self) -> List[str]:
        """Platform tags pip accepts on the target, most specific first (like pip)."""
        found: List[str] = []
        oldest = OLDEST_GLIBC.get(self.arch, DEFAULT_OLDEST_GLIBC)
        legacy = {glibc: (alias, since, archs) for alias, glibc, since, archs in LEGACY_MANYLINUX}
        for minor in range(self.glibc[1], oldest[1] - 1, -1):
            if self.glibc[0] != 2:
                break
            if self.pip >= PEP600_PIP:
                found.append(f"manylinux_2_{minor}_{self.arch}")
            if (2, minor) in legacy:
                alias, since, archs = legacy[(2, minor)]
                if self.pip >= since and self.arch in archs:
                    found.append(f"{alias}_{self.arch}")
        found.append(f"linux_{self.arch}")
        return found

    @property
    def tags(self) -> FrozenSet[Tag]:
        return _tags_of(self)

    def describe(self) -> str:
        """What the target accepts, in one line (for error messages and the table)."""
        platforms = self.platforms()
        pep600 = [p for p in platforms if _PEP600.match(p)]
        shown = [p for p in platforms if p not in pep600]
        if pep600:   # manylinux_2_17_aarch64 .. manylinux_2_31_aarch64 as one range
            low, high = _PEP600.match(pep600[-1]), _PEP600.match(pep600[0])
            assert low and high
            shown.insert(0, f"manylinux_2_{low.group(2)}..2_{high.group(2)}_{self.arch}")
        return (f"{self.profile}: CPython {self.python[0]}.{self.python[1]} ({self.interpreter}, abi3, none), "
                f"{self.arch}, glibc {self.glibc[0]}.{self.glibc[1]}, pip {self.pip}: "
                f"platforms {', '.join(shown)}, any")


@lru_cache(maxsize=64)
def _tags_of(target: Target) -> FrozenSet[Tag]:
    platforms = target.platforms()
    tags = set(cpython_tags(target.python, [target.interpreter], platforms))
    tags.update(compatible_tags(target.python, target.interpreter, platforms))
    return frozenset(tags)


def _version_tuple(text: str, field: str, profile: str) -> Tuple[int, int]:
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise CompatError(f"profile {profile}: {field} '{text}' is not MAJOR.MINOR")
    return int(parts[0]), int(parts[1])


def target_of(profile: object) -> Target:
    """The Target of a build.profiles.Profile (loaded profiles always state glibc and pip)."""
    name = str(getattr(profile, "name"))
    glibc, pip = str(getattr(profile, "glibc", "") or ""), str(getattr(profile, "pip", "") or "")
    if not glibc or not pip:
        raise CompatError(f"profile {name}: states no {'glibc' if not glibc else 'pip'}; "
                          "the target check cannot know what its hosts accept")
    try:
        pip_version = Version(pip)
    except InvalidVersion:
        raise CompatError(f"profile {name}: pip '{pip}' is not a version") from None
    arch = normalize_arch(str(getattr(profile, "platform")).split("/", 1)[-1])
    return Target(profile=name, python=_version_tuple(str(getattr(profile, "python")), "python", name),
                  arch=arch, glibc=_version_tuple(glibc, "glibc", name), pip=pip_version)


@dataclass(frozen=True)
class Verdict:
    """One wheel against one target."""

    wheel: str
    tags: Tuple[str, ...]
    fits: bool
    why: str = ""

    @property
    def tag_text(self) -> str:
        return ".".join(self.tags) if self.tags else "-"


def wheel_tags(filename: str) -> FrozenSet[Tag]:
    """The tags a wheel's file name claims (InvalidWheelFilename if it is no wheel name)."""
    return parse_wheel_filename(filename)[3]


def check_wheel(filename: str, target: Target) -> Verdict:
    try:
        tags = wheel_tags(filename)
    except InvalidWheelFilename as error:
        return Verdict(filename, (), False, f"not a valid wheel file name ({error})")
    shown = tuple(sorted(str(t) for t in tags))
    if tags & target.tags:
        return Verdict(filename, shown, True)
    return Verdict(filename, shown, False, _why_not(tags, target))


def _why_not(tags: FrozenSet[Tag], target: Target) -> str:
    """The most telling reason none of ``tags`` fits (first tag's view, then the rest)."""
    reasons: List[str] = []
    for tag in sorted(tags, key=str):
        reasons.append(_tag_reason(tag, target))
    unique = list(dict.fromkeys(r for r in reasons if r))
    return "; ".join(unique) or "no tag in the accepted set"


def _tag_reason(tag: Tag, target: Target) -> str:
    if not any(t.interpreter == tag.interpreter and t.abi == tag.abi for t in target.tags):
        return f"{tag.interpreter}-{tag.abi} is not for CPython {target.python[0]}.{target.python[1]}"
    platform = tag.platform
    if platform != "any" and not platform.endswith("_" + target.arch):
        return f"platform {platform} is not {target.arch}"
    pep600 = _PEP600.match(platform)
    if pep600:
        needs = (int(pep600.group(1)), int(pep600.group(2)))
        if needs > target.glibc:
            return f"{platform} needs glibc {needs[0]}.{needs[1]}, the target has {target.glibc[0]}.{target.glibc[1]}"
        if target.pip < PEP600_PIP:
            return (f"pip {target.pip} does not understand manylinux_2_X tags like {platform} "
                    f"(PEP 600 support came in pip 20.3: pypa/pip#9077)")
    for alias, glibc, since, archs in LEGACY_MANYLINUX:
        if platform.startswith(alias + "_"):
            if glibc > target.glibc:
                return f"{platform} needs glibc {glibc[0]}.{glibc[1]}, the target has {target.glibc[0]}.{target.glibc[1]}"
            if target.pip < since:
                return f"pip {target.pip} does not know {alias} (pip {since}+)"
    return f"{tag} is not accepted"


def check_wheels(filenames: Iterable[str], target: Target) -> List[Verdict]:
    return [check_wheel(name, target) for name in sorted(filenames)]


def pip_problem(filenames: Iterable[str], target: Target) -> Optional[str]:
    """None if the wheel set ships the profile's pip, else what is wrong."""
    pips = []
    for name in filenames:
        try:
            project, version, _, _ = parse_wheel_filename(name)
        except InvalidWheelFilename:
            continue
        if project == "pip":
            pips.append(version)
    if Version(str(target.pip)) in pips:
        return None
    shipped = ", ".join(f"pip {v}" for v in pips) or "no pip wheel"
    return (f"profile {target.profile} installs with pip {target.pip}, but the wheelhouse ships {shipped} "
            f"(without it the hosts' own pip would decide which tags it accepts)")


def misfit_message(verdicts: Sequence[Verdict], target: Target, where: str) -> str:
    bad = [v for v in verdicts if not v.fits]
    lines = [f"{where}: {len(bad)} of {len(verdicts)} wheels cannot be installed by {target.profile}'s hosts:"]
    for verdict in bad:
        lines.append(f"  {verdict.wheel}: tags {verdict.tag_text}: {verdict.why}")
    lines.append(f"  the target accepts {target.describe()}")
    return "\n".join(lines)


def require_fit(filenames: Sequence[str], target: Target, where: str, *, need_pip: bool = True) -> None:
    """CompatError naming every wheel the target cannot install (and a missing pip)."""
    verdicts = check_wheels(filenames, target)
    problems: List[str] = []
    if any(not v.fits for v in verdicts):
        problems.append(misfit_message(verdicts, target, where))
    if need_pip:
        missing = pip_problem(filenames, target)
        if missing:
            problems.append(f"{where}: {missing}")
    if problems:
        raise CompatError("\n".join(problems),
                          hint=f"pick wheels with a tag the target accepts, or fix profiles/{target.profile}.toml "
                               "if its python/platform/glibc/pip are wrong (see docs/cluster.md)")


# -- wheelhouse recipes: which profiles ship them, and their checks around a build ----------
def profiles_shipping(recipe_name: str) -> List[Any]:
    """Every loadable profile whose ``wheelhouse`` is ``recipe_name`` (a broken profile is
    skipped here: its own tasks report it, and it cannot deploy anything)."""
    from .errors import ProfileError
    from .profiles import list_profiles, load_profile

    found = []
    for name in list_profiles():
        try:
            profile = load_profile(name)
        except ProfileError:
            continue
        if profile.wheelhouse == recipe_name:
            found.append(profile)
    return found


def pinned_wheels(recipe: object) -> List[str]:
    """File names of the wheels a recipe pins as sources (what it ships as fetched)."""
    return [s.filename for s in getattr(recipe, "sources") if str(s.filename).endswith(".whl")]


def check_pinned_wheelhouse(recipe: object) -> None:
    """Before fetching: every pinned wheel of a profile's wheelhouse must fit that profile."""
    wheels = pinned_wheels(recipe)
    for profile in profiles_shipping(str(getattr(recipe, "name"))):
        require_fit(wheels, target_of(profile), f"recipes/{getattr(recipe, 'name')}.toml (pinned wheels)",
                    need_pip=False)


def check_built_wheelhouse(recipe: object, out_dir: Path) -> None:
    """After the build, before it enters the store: every wheel in the output fits, and
    the profile's pip is among them."""
    wheels = sorted(p.name for p in out_dir.glob("*.whl"))
    for profile in profiles_shipping(str(getattr(recipe, "name"))):
        require_fit(wheels, target_of(profile), f"{getattr(recipe, 'name')} (built wheelhouse)")


# The TFLite runtimes infer: looks for, in jobs/bench_tflite.py's order (wheel name prefix).
EDGE_RUNTIMES = (("ai_edge_litert-", "ai-edge-litert"), ("tflite_runtime-", "tflite-runtime"))


def edge_runtime(wheels: Iterable[str]) -> str:
    """Which TFLite interpreter a wheelhouse's hosts run infer: with: a runtime wheel it
    ships (checked above like every other wheel), else TensorFlow's own tf.lite."""
    names = sorted(wheels)
    for prefix, label in EDGE_RUNTIMES:
        for wheel in names:
            if wheel.startswith(prefix):
                return f"{label} {wheel[len(prefix):].split('-', 1)[0]} ({wheel})"
    return "TensorFlow's own tf.lite.Interpreter (no separate TFLite runtime in the wheelhouse)"
