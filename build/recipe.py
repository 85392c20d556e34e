"""Recipes: the declarative description of one build, read from ``recipes/<name>.toml``.

A recipe is data. Everything that can change its output ends up in ``Recipe.content()``,
which the derivation hashes; its formatting, comments, description and mirror URLs do not.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from .builder_kinds import BUILDER_SCHEMAS, type_name
from .errors import PlatformError, RecipeError
from .platform import PLATFORMS, Platform, host
from .paths import recipes_dir
from .tomlfile import TomlDocument, load_toml

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tar.zst", ".tar", ".zip")

TOP_LEVEL_FIELDS = ("name", "version", "description", "platform", "inputs", "builder",
                    "sources", "patches", "env", "phases", "outputs", "resources")
PATCH_FIELDS = ("file", "enabled", "strip", "why")
PATCH_DIR = "patches"
SOURCE_FIELDS = ("urls", "url", "sha256", "filename", "unpack")
PHASE_FIELDS = ("name", "run", "network")
OUTPUT_FIELDS = ("paths",)
RESOURCE_FIELDS = ("ram_gb", "swap_gb", "disk_gb", "cpus")


def host_platform() -> str:
    return host().name


@dataclass(frozen=True)
class Source:
    """A fixed-output input: its bytes are known by sha256 before they are fetched."""

    urls: Tuple[str, ...]
    sha256: str
    filename: str
    unpack: bool

    def content(self) -> Dict[str, Any]:
        # Mirrors are not content: any URL that yields these bytes is the same source.
        return {"sha256": self.sha256, "filename": self.filename, "unpack": self.unpack}


@dataclass(frozen=True)
class Patch:
    """A patch file of the repo (patches/...), applied in order after unpacking. Its
    bytes are hashed like a source's; a disabled patch is listed but neither applied
    nor hashed, so switching it on is one line and changes the derivation."""

    file: str           # as written in the recipe, relative to the repo: patches/...
    path: str           # absolute path read at load time
    sha256: str
    enabled: bool = True
    strip: int = 1

    def content(self) -> Dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "strip": self.strip}


@dataclass(frozen=True)
class Phase:
    name: str
    run: str
    network: bool = False


@dataclass(frozen=True)
class BuilderSpec:
    kind: str
    base: Optional[str] = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resources:
    """What a build needs from the machine; checked by preflight, not part of the hash."""

    ram_gb: Optional[float] = None
    swap_gb: Optional[float] = None
    disk_gb: Optional[float] = None
    cpus: Optional[int] = None


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    description: str
    platform: str
    inputs: Tuple[str, ...]
    builder: BuilderSpec
    sources: Tuple[Source, ...]
    env: Mapping[str, str]
    phases: Tuple[Phase, ...]
    outputs: Tuple[str, ...]
    resources: Resources
    path: str
    patches: Tuple[Patch, ...] = ()

    @property
    def enabled_patches(self) -> Tuple[Patch, ...]:
        return tuple(p for p in self.patches if p.enabled)

    @property
    def dependencies(self) -> Tuple[str, ...]:
        """Input recipe names, including the builder's base, sorted and unique."""
        names = set(self.inputs)
        if self.builder.base:
            names.add(self.builder.base)
        return tuple(sorted(names))

    def content(self) -> Dict[str, Any]:
        """Everything in the recipe that can change its output (hashed by the derivation)."""
        return {
            "name": self.name,
            "version": self.version,
            "platform": self.platform,
            "inputs": sorted(self.inputs),
            "builder": {"kind": self.builder.kind, "base": self.builder.base,
                        "options": dict(self.builder.options)},
            "sources": [source.content() for source in self.sources],
            "env": dict(self.env),
            "phases": [{"name": p.name, "run": p.run, "network": p.network} for p in self.phases],
            "outputs": list(self.outputs),
            # only when there are any: recipes without patches keep their hashes
            **({"patches": [p.content() for p in self.enabled_patches]} if self.enabled_patches else {}),
        }


class _RecipeReader:
    """Validates one parsed recipe file, raising RecipeError at the offending line."""

    def __init__(self, doc: TomlDocument) -> None:
        self.doc = doc

    def fail(self, keys: Tuple[Any, ...], problem: str, hint: Optional[str] = None) -> RecipeError:
        return self.doc.error(RecipeError, tuple(str(k) for k in keys), problem, hint)  # type: ignore[return-value]

    def check_keys(self, table: Mapping[str, Any], allowed: Tuple[str, ...], prefix: Tuple[Any, ...]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(prefix + (key,), f"unknown field (expected one of: {', '.join(allowed)})")

    def string(self, table: Mapping[str, Any], key: str, prefix: Tuple[Any, ...] = (),
               required: bool = False, default: str = "") -> str:
        if key not in table:
            if required:
                raise self.fail(prefix + (key,) if prefix else (key,), "missing (expected a string)")
            return default
        value = table[key]
        if not isinstance(value, str):
            raise self.fail(prefix + (key,), f"expected a string, got {type(value).__name__}")
        return value

    def read(self) -> Recipe:
        data = self.doc.data
        self.check_keys(data, TOP_LEVEL_FIELDS, ())
        name = self.string(data, "name", required=True)
        if not NAME_PATTERN.match(name):
            raise self.fail(("name",), f"'{name}' is not a valid name (lower-case letters, digits, '.', '_', '-')")
        stem = Path(self.doc.path).stem
        if name != stem:
            raise self.fail(("name",), f"'{name}' must match the file name '{stem}.toml'")
        version = self.string(data, "version", required=True)
        if not version:
            raise self.fail(("version",), "must not be empty")
        platform = self.string(data, "platform", default=host_platform())
        try:
            platform = Platform.parse(platform).name
        except PlatformError:
            raise self.fail(("platform",), f"unknown platform '{platform}' (expected one of: "
                            f"{', '.join(PLATFORMS)}, or linux/arm64, linux/amd64)") from None
        return Recipe(
            name=name,
            version=version,
            description=self.string(data, "description"),
            platform=platform,
            inputs=self.read_inputs(data.get("inputs", [])),
            builder=self.read_builder(data.get("builder")),
            sources=self.read_sources(data.get("sources", [])),
            env=self.read_env(data.get("env", {})),
            phases=self.read_phases(data.get("phases")),
            outputs=self.read_outputs(data.get("outputs", {})),
            resources=self.read_resources(data.get("resources", {})),
            path=self.doc.path,
            patches=self.read_patches(data.get("patches", [])),
        )

    def read_patches(self, value: Any) -> Tuple[Patch, ...]:
        """``file`` is relative to the repo (the directory above recipes/) and must be
        under patches/; it is read now, so a missing patch fails at load time."""
        if not isinstance(value, list):
            raise self.fail(("patches",), "expected an array of tables ([[patches]])")
        repo = Path(self.doc.path).resolve().parent.parent
        patches = []
        for index, entry in enumerate(value):
            keys: Tuple[Any, ...] = ("patches", index)
            if not isinstance(entry, dict):
                raise self.fail(keys, "expected a table")
            self.check_keys(entry, PATCH_FIELDS, keys)
            name = self.string(entry, "file", keys, required=True)
            relative = Path(name)
            if relative.is_absolute() or ".." in relative.parts or relative.parts[:1] != (PATCH_DIR,):
                raise self.fail(keys + ("file",), f"expected a path under {PATCH_DIR}/ (e.g. {PATCH_DIR}/<recipe>/fix.patch)")
            path = repo / relative
            if not path.is_file():
                raise self.fail(keys + ("file",), f"{path} does not exist")
            enabled = entry.get("enabled", True)
            if not isinstance(enabled, bool):
                raise self.fail(keys + ("enabled",), "expected true or false")
            strip = entry.get("strip", 1)
            if not isinstance(strip, int) or isinstance(strip, bool) or strip < 0:
                raise self.fail(keys + ("strip",), "expected a number of leading path components (patch -p)")
            self.string(entry, "why", keys)
            patches.append(Patch(file=name, path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                                 enabled=enabled, strip=strip))
        return tuple(patches)

    def read_inputs(self, value: Any) -> Tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(("inputs",), "expected a list of recipe names")
        if len(set(value)) != len(value):
            raise self.fail(("inputs",), "lists a recipe twice")
        return tuple(value)

    def read_builder(self, value: Any) -> BuilderSpec:
        kinds = ", ".join(BUILDER_SCHEMAS)
        if value is None:
            raise self.fail(("builder",), f"missing (expected a table with kind = one of: {kinds})")
        if not isinstance(value, dict):
            raise self.fail(("builder",), "expected a table like [builder] kind = \"native\"")
        kind = self.string(value, "kind", ("builder",), required=True)
        schema = BUILDER_SCHEMAS.get(kind)
        if schema is None:
            raise self.fail(("builder", "kind"), f"unknown builder '{kind}' (expected one of: {kinds})")
        base = value.get("base")
        if base is not None and not isinstance(base, str):
            raise self.fail(("builder", "base"), "expected a recipe name")
        if schema.needs_base and base is None:
            raise self.fail(("builder", "base"), f"the {kind} builder needs a base recipe "
                            "(e.g. base = \"rootfs-bullseye-arm64\")")
        options = {k: v for k, v in value.items() if k not in ("kind", "base")}
        for key, option in options.items():
            allowed = schema.options.get(key)
            if allowed is None:
                known = ", ".join(["kind", "base", *schema.options]) if schema.needs_base else \
                    ", ".join(["kind", *schema.options])
                raise self.fail(("builder", key), f"unknown option for the {kind} builder (allowed: {known})")
            if not isinstance(option, allowed.types) or (bool not in allowed.types and isinstance(option, bool)):
                raise self.fail(("builder", key), f"expected {type_name(allowed.types)} ({allowed.meaning})")
        return BuilderSpec(kind=kind, base=base, options=options)

    def read_sources(self, value: Any) -> Tuple[Source, ...]:
        if not isinstance(value, list):
            raise self.fail(("sources",), "expected an array of tables ([[sources]])")
        sources = []
        filenames = set()
        for index, entry in enumerate(value):
            keys: Tuple[Any, ...] = ("sources", index)
            if not isinstance(entry, dict):
                raise self.fail(keys, "expected a table")
            self.check_keys(entry, SOURCE_FIELDS, keys)
            urls = entry.get("urls", [entry["url"]] if "url" in entry else None)
            if not urls or not isinstance(urls, list) or not all(isinstance(u, str) and u for u in urls):
                raise self.fail(keys + ("urls",), "missing (expected a non-empty list of URLs, tried in order)")
            if "sha256" not in entry:
                raise self.fail(keys + ("sha256",), "missing: every source is pinned by its sha256",
                                hint="fetch it once and run `sha256sum FILE`; never trust an unpinned download")
            sha256 = self.string(entry, "sha256", keys).lower()
            if not SHA256_PATTERN.match(sha256):
                raise self.fail(keys + ("sha256",), "expected 64 hexadecimal digits")
            filename = self.string(entry, "filename", keys, default=_filename_from_url(urls[0]))
            if not filename or "/" in filename or filename in (".", ".."):
                raise self.fail(keys + ("filename",), "expected a plain file name (set filename = \"...\")")
            if filename in filenames:
                raise self.fail(keys + ("filename",), f"'{filename}' is used by two sources")
            filenames.add(filename)
            unpack = entry.get("unpack", filename.endswith(ARCHIVE_SUFFIXES))
            if not isinstance(unpack, bool):
                raise self.fail(keys + ("unpack",), "expected true or false")
            sources.append(Source(urls=tuple(urls), sha256=sha256, filename=filename, unpack=unpack))
        return tuple(sources)

    def read_env(self, value: Any) -> Dict[str, str]:
        if not isinstance(value, dict):
            raise self.fail(("env",), "expected a table of NAME = \"value\"")
        for key, item in value.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise self.fail(("env", key), "not a valid environment variable name")
            if not isinstance(item, str):
                raise self.fail(("env", key), "expected a string value")
        return dict(value)

    def read_phases(self, value: Any) -> Tuple[Phase, ...]:
        if value is None:
            raise self.fail(("phases",), "missing (expected at least one [[phases]] with run = \"...\")")
        if not isinstance(value, list) or not value:
            raise self.fail(("phases",), "expected an array of tables ([[phases]])")
        phases = []
        for index, entry in enumerate(value):
            keys: Tuple[Any, ...] = ("phases", index)
            if not isinstance(entry, dict):
                raise self.fail(keys, "expected a table")
            self.check_keys(entry, PHASE_FIELDS, keys)
            run = self.string(entry, "run", keys, required=True)
            network = entry.get("network", False)
            if not isinstance(network, bool):
                raise self.fail(keys + ("network",), "expected true or false")
            phases.append(Phase(name=self.string(entry, "name", keys, default=f"phase{index + 1}"),
                                run=run, network=network))
        return tuple(phases)

    def read_outputs(self, value: Any) -> Tuple[str, ...]:
        if not isinstance(value, dict):
            raise self.fail(("outputs",), "expected a table like [outputs] paths = [\"*.whl\"]")
        self.check_keys(value, OUTPUT_FIELDS, ("outputs",))
        paths = value.get("paths", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
            raise self.fail(("outputs", "paths"), "expected a list of globs relative to $PIFORGE_OUT")
        for glob in paths:
            if glob.startswith("/") or ".." in Path(glob).parts:
                raise self.fail(("outputs", "paths"), f"'{glob}' must stay inside $PIFORGE_OUT")
        return tuple(paths)

    def read_resources(self, value: Any) -> Resources:
        if not isinstance(value, dict):
            raise self.fail(("resources",), "expected a table")
        self.check_keys(value, RESOURCE_FIELDS, ("resources",))
        numbers: Dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0:
                raise self.fail(("resources", key), "expected a positive number")
            if key == "cpus" and not isinstance(item, int):
                raise self.fail(("resources", key), "expected a whole number")
            numbers[key] = item
        return Resources(**numbers)


def _filename_from_url(url: str) -> str:
    if url.startswith("pypi:"):
        return ""  # resolved at fetch time; recipes with pypi: sources must name the file
    return url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


def load_recipe(path: Path, display: Optional[str] = None) -> Recipe:
    """Parse and validate one recipe file (no cross-recipe checks)."""
    doc = load_toml(Path(path), RecipeError, display=display)
    return _RecipeReader(doc).read()


class RecipeSet(Mapping[str, Recipe]):
    """All recipes of a directory, checked together: inputs exist, no cycles."""

    def __init__(self, recipes: Dict[str, Recipe], directory: Path) -> None:
        self._recipes = recipes
        self.directory = directory

    def __getitem__(self, name: str) -> Recipe:
        return self._recipes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._recipes))

    def __len__(self) -> int:
        return len(self._recipes)

    def get(self, name: str, default: Any = None) -> Recipe:  # type: ignore[override]
        """The recipe called ``name``; a clear error (not None) when there is none."""
        if name in self._recipes:
            return self._recipes[name]
        known = ", ".join(sorted(self._recipes)) or "none"
        raise RecipeError(str(self.directory), None, "", f"no recipe named '{name}' (known: {known})")


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_recipes(directory: Optional[Path] = None) -> RecipeSet:
    """Load every ``*.toml`` recipe in ``directory`` and validate their graph."""
    directory = Path(directory) if directory else recipes_dir()
    if not directory.is_dir():
        raise RecipeError(str(directory), None, "", "recipe directory not found")
    recipes: Dict[str, Recipe] = {}
    docs: Dict[str, TomlDocument] = {}
    for path in sorted(directory.glob("*.toml")):
        display = _display_path(path)
        doc = load_toml(path, RecipeError, display=display)
        recipe = _RecipeReader(doc).read()
        recipes[recipe.name] = recipe
        docs[recipe.name] = doc
    for recipe in recipes.values():
        for dependency in recipe.inputs:
            if dependency not in recipes:
                raise docs[recipe.name].error(RecipeError, ("inputs",), f"unknown recipe '{dependency}'")
        if recipe.builder.base and recipe.builder.base not in recipes:
            raise docs[recipe.name].error(RecipeError, ("builder", "base"), f"unknown recipe '{recipe.builder.base}'")
    _check_cycles(recipes, docs)
    return RecipeSet(recipes, directory)


def _check_cycles(recipes: Mapping[str, Recipe], docs: Mapping[str, TomlDocument]) -> None:
    done: set = set()

    def visit(name: str, trail: List[str]) -> None:
        if name in done:
            return
        if name in trail:
            cycle = trail[trail.index(name):] + [name]
            raise docs[cycle[0]].error(RecipeError, ("inputs",), "dependency cycle: " + " -> ".join(cycle))
        for dependency in recipes[name].dependencies:
            visit(dependency, trail + [name])
        done.add(name)

    for name in sorted(recipes):
        visit(name, [])
