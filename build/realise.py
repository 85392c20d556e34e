"""The build engine: make a derivation's store path exist, dependencies first.

For each derivation of the closure: already in the store? done. Else, under its lock
(a concurrent build of the same derivation waits here, then reuses the result): ask the
substituters (binary caches), else fetch its sources, unpack them, run its builder,
check the output globs and install the staging dir into the store atomically. A build
that fails or is killed leaves no entry; its staging dir is removed (or, if the process
died, by the next build). Each build's log ends up in the store entry (or, on failure,
in ``piforge_home()/logs``).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence

from .bazel.flags import remote_cache_from_environment as configured_bazel_remote_cache
from .builders import BUILDER_KINDS, BuildJob
from .compat import check_built_wheelhouse, check_pinned_wheelhouse
from .derivation import Derivation
from .errors import BuildError
from .fetch import fetch
from .mounts import unmount_below
from .patching import apply_patches
from .paths import piforge_home
from .store import Store
from .unpack import unpack

Report = Callable[[str], None]
LOG_TAIL = 25
PROGRESS_EVERY = 20.0   # seconds between progress lines of a quiet (non-echo) build
DEFAULT: Any = object()   # "not given": fall back to today's configured Bazel cache


class Substituter(Protocol):
    """A binary cache: put ``drv``'s verified entry into ``store`` and return True, or False."""

    def substitute(self, drv: Derivation, store: Store) -> bool: ...


def report_stderr(line: str) -> None:
    print(f"piforge: {line}", file=sys.stderr, flush=True)


def build_dir_of(drv: Derivation) -> Path:
    """Scratch dir of a build: a fixed path per derivation (taken under its lock), so
    paths compilers record (debug info, __FILE__) are the same on every rebuild."""
    return piforge_home() / "build" / drv.store_name


def failed_log_of(drv: Derivation) -> Path:
    return piforge_home() / "logs" / f"{drv.store_name}.failed.log"


def realise(drv: Derivation, store: Optional[Store] = None, *,
            substituters: Sequence[Substituter] = (), report: Report = report_stderr,
            echo: Optional[bool] = None) -> Path:
    """Return ``drv``'s store path, building (or substituting) whatever is missing.

    ``echo`` streams build logs to stderr too (default: $PIFORGE_VERBOSE set).
    """
    store = store or Store.default()
    echo = bool(os.environ.get("PIFORGE_VERBOSE")) if echo is None else echo
    store.remove_stale_staging()
    todo = to_build(drv, store, substituters, report) if substituters else \
        [d for d in drv.closure() if not store.is_valid(d)]
    for node in todo:   # a misfit wheelhouse pin fails now, not after a 20-hour TensorFlow build
        check_pinned_wheelhouse(node.recipe)
    for index, node in enumerate(todo, start=1):   # caches were asked already: build
        realise_one(node, store, report=report, echo=echo, step=f"[{index}/{len(todo)}] ")
    return store.require(drv)


def to_build(drv: Derivation, store: Store, substituters: Sequence[Substituter],
             report: Report = report_stderr) -> List[Derivation]:
    """Substitute top-down, like Nix: what a cache supplies needs none of its inputs
    (a pulled wheel does not need the rootfs it was built in). Returns, deps first,
    what is left to build."""
    order: List[Derivation] = []
    seen: set = set()

    def visit(node: Derivation) -> None:
        if node.hash in seen:
            return
        seen.add(node.hash)
        if store.is_valid(node):
            return
        with store.lock(node):
            if store.is_valid(node) or any(s.substitute(node, store) and store.is_valid(node) for s in substituters):
                report(f"{node.name} {node.version}: substituted ({node.store_name})")
                return
        for dependency in node.inputs:
            visit(dependency)
        order.append(node)

    visit(drv)
    return order


def realise_one(drv: Derivation, store: Store, *, substituters: Sequence[Substituter] = (),
                report: Report = report_stderr, echo: bool = False, step: str = "") -> Path:
    """Make one derivation valid, assuming its inputs are; safe against concurrent callers."""
    if store.is_valid(drv):
        return store.path_of(drv)
    with store.lock(drv):
        if store.is_valid(drv):   # built by whoever held the lock before us
            report(f"{step}{drv.name} {drv.version}: built meanwhile by another process, reusing it")
            return store.path_of(drv)
        for substituter in substituters:
            if substituter.substitute(drv, store) and store.is_valid(drv):
                report(f"{step}{drv.name} {drv.version}: substituted from {type(substituter).__name__}")
                return store.path_of(drv)
        return build(drv, store, report=report, echo=echo, step=step)


def build(drv: Derivation, store: Store, *, report: Report = report_stderr, echo: bool = False,
          step: str = "", input_store: Optional[Store] = None,
          bazel_remote_cache: Any = DEFAULT) -> Path:
    """Build ``drv`` into ``store``; its inputs come from ``input_store`` (default: the
    same store). The caller holds the lock of ``drv`` in the store it builds for.
    ``bazel_remote_cache``: the Bazel HTTP cache URL for bazel builds (None: none);
    left out, today's configuration ($PIFORGE_BAZEL_REMOTE_CACHE, else the cache config)."""
    recipe = drv.recipe
    inputs_from = input_store or store
    check_pinned_wheelhouse(recipe)   # a profile's wheelhouse: refuse misfit pins before fetching
    builder = BUILDER_KINDS[recipe.builder.kind](recipe.builder)
    build_dir = build_dir_of(drv)
    unmount_below(build_dir)
    shutil.rmtree(build_dir, ignore_errors=True)   # left by a killed build: we hold the lock
    (build_dir / "src").mkdir(parents=True)
    log_path = build_dir / "build.log"
    staging: Optional[Path] = None
    started = time.monotonic()
    report(f"{step}{drv.name} {drv.version}: building with {recipe.builder.kind} ({drv.hash[:12]})")
    next_progress = [started + PROGRESS_EVERY]
    with open(log_path, "w", encoding="utf-8") as log_file:
        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()
            if echo:
                print(f"  {drv.name}| {line}", file=sys.stderr, flush=True)
            elif time.monotonic() >= next_progress[0]:   # long builds show they are alive
                next_progress[0] = time.monotonic() + PROGRESS_EVERY
                report(f"{step}{drv.name}: {time.monotonic() - started:.0f} s ... {line.strip()[:100]}")

        try:
            staging = store.new_staging(drv)
            job = BuildJob(derivation=drv, build_dir=build_dir, src_dir=build_dir / "src",
                           out_dir=staging, sources_dir=build_dir / "sources",
                           inputs={d.name: inputs_from.require(d) for d in drv.inputs
                                   if d.name != recipe.builder.base},
                           base=inputs_from.require(drv.base) if drv.base is not None else None,
                           env=dict(recipe.env), log=log,
                           bazel_remote_cache=(configured_bazel_remote_cache()
                                               if bazel_remote_cache is DEFAULT else bazel_remote_cache))
            builder.check_prerequisites(job)   # before the slow fetch/unpack
            job = replace(job, src_dir=prepare_sources(drv, build_dir, log, report))
            builder.run(job)
            check_outputs(drv, staging)
            check_built_wheelhouse(recipe, staging)   # what its hosts cannot install never enters the store
            log(f"--- built in {time.monotonic() - started:.1f} s")
            log_file.flush()
            path = store.install(drv, staging, log_path)
            staging = None
        except BuildError as error:
            kept = _keep_failed_log(drv, log_path, report)
            raise BuildError(f"{error.message} (full log: {kept})", hint=error.hint) from None
        finally:
            for leftover in (staging, build_dir):
                if leftover is not None:
                    unmount_below(leftover)   # never delete through a mount
            if staging is not None:
                store.discard(staging)
            shutil.rmtree(build_dir, ignore_errors=True)
    report(f"{step}{drv.name} {drv.version}: done in {time.monotonic() - started:.0f} s -> {path}")
    return path


def prepare_sources(drv: Derivation, build_dir: Path, log: Callable[[str], None],
                    report: Report) -> Path:
    """Fetch every source, link it into ``sources/``, unpack archives into ``src/``.

    Returns the phases' working directory: the single top-level directory of the one
    unpacked archive if there is exactly one, else ``src/`` itself.
    """
    sources = build_dir / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    src = build_dir / "src"
    roots = []
    recipe_dir = Path(drv.recipe.path).resolve().parent
    for source in drv.recipe.sources:
        cached = fetch(source, base_dir=recipe_dir, progress=report)
        log(f"--- source {source.filename} sha256 {source.sha256}")
        _link_or_copy(cached, sources / source.filename)
        if source.unpack and cached.is_dir():   # a local tree: "unpacking" is a copy
            _link_or_copy(cached, src / source.filename)
            roots.append(src / source.filename)
        elif source.unpack:
            roots.append(unpack(cached, src))
    root = roots[0] if len(roots) == 1 else src
    apply_patches(drv.recipe.patches, root, log)
    return root


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard links: instant, no extra space, and visible inside a chroot (symlinks are not)."""
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, copy_function=_link_file)
    else:
        _link_file(str(source), str(target))


def _link_file(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def check_outputs(drv: Derivation, out_dir: Path) -> None:
    for pattern in drv.recipe.outputs:
        if not any(out_dir.glob(pattern)):
            present = sorted(str(p.relative_to(out_dir)) for p in out_dir.iterdir())[:20]
            raise BuildError(f"{drv.name}: output '{pattern}' matched nothing in $PIFORGE_OUT "
                             f"(it holds: {', '.join(present) or 'nothing'})")


def _keep_failed_log(drv: Derivation, log_path: Path, report: Report) -> Path:
    kept = failed_log_of(drv)
    kept.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(log_path, kept)
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL:]
    except OSError:
        return kept
    report(f"{drv.name}: build failed; last {len(tail)} log lines (full log: {kept}):")
    for line in tail:
        print(f"  | {line}", file=sys.stderr, flush=True)
    return kept


def built_paths(drvs: Sequence[Derivation], store: Store) -> Dict[str, Optional[Path]]:
    return {d.name: store.path_of(d) if store.is_valid(d) else None for d in drvs}
