"""One project context per run: the Options, and every file they point at, loaded once.

Task areas used to load recipes, profiles and the cluster file each in their own way (one
``doit list`` read the recipes twice and cluster.toml three times). A ``Project`` loads
each piece lazily, at most once, and remembers a broken file's error so that every task
that needs the file reports the same ``file:LINE: field: problem`` lines.
"""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Generic, List, Optional, TypeVar

from .errors import PiforgeError
from .options import Options

T = TypeVar("T")


class _Once(Generic[T]):
    """A value computed on first use; an expected error is kept and raised again each time."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._done = False
        self._value: Optional[T] = None
        self._error: Optional[PiforgeError] = None

    def get(self) -> T:
        if not self._done:
            try:
                self._value = self._load()
            except PiforgeError as error:
                self._error = error
            self._done = True
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def error(self) -> Optional[PiforgeError]:
        try:
            self.get()
        except PiforgeError as error:
            return error
        return None


_JOB_HEADER = re.compile(r"^\s*\[\s*jobs\s*\.\s*([A-Za-z0-9_.-]+)\s*\]", re.MULTILINE)
# The proof recipe `wheel` builds when a profile's TensorFlow wheel recipe is not here.
DEFAULT_WHEEL_RECIPE = "wrapt"


class Project:
    """What one run of piforge works on; every task area gets the same instance."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._recipes = _Once(self._load_recipes)
        self._derivations = _Once(self._derive_all)
        self._store = _Once(self._open_store)
        self._cache_config = _Once(self._load_cache_config)
        self._cluster = _Once(self._load_cluster)
        self._profiles: Dict[str, _Once[Any]] = {}

    # -- recipes and derivations ----------------------------------------------------------
    def _load_recipes(self) -> Any:
        from .recipe import load_recipes
        return load_recipes()

    def _derive_all(self) -> Dict[str, Any]:
        from .derivation import derive
        recipes = self._recipes.get()
        memo: Dict[str, Any] = {}   # shared: each recipe (and its builder identity) once
        return {name: derive(recipes, name, memo) for name in recipes}

    @property
    def recipes(self) -> Any:
        return self._recipes.get()

    @property
    def derivations(self) -> Dict[str, Any]:
        return self._derivations.get()

    def recipe_error(self) -> Optional[PiforgeError]:
        return self._derivations.error()

    def recipe_names(self) -> List[str]:
        """Names to make per-recipe tasks for. With a broken recipe: every recipe file's
        stem, so the tasks exist and report the recipe error when run."""
        error = self.recipe_error()
        if error is None:
            return list(self.derivations)
        if not getattr(error, "reported", False):
            # Said once, when the tasks are made (so `list` shows it too); the tasks that
            # then fail on it only exit with its code (friendly() does not repeat it).
            print(f"piforge: error: {error}", file=sys.stderr, flush=True)
            error.reported = True  # type: ignore[attr-defined]
        from .paths import recipes_dir
        return sorted(path.stem for path in recipes_dir().glob("*.toml"))

    def has_recipe(self, name: Optional[str]) -> bool:
        return bool(name) and name in self.recipe_names()

    def derivation(self, name: str) -> Any:
        """The derivation of recipe ``name``; the one "no recipe named" error otherwise."""
        derivations = self.derivations
        if name not in derivations:
            self.recipes.get(name)   # RecipeError naming the known recipes
        return derivations[name]

    @property
    def store(self) -> Any:
        return self._store.get()

    def _open_store(self) -> Any:
        from .store import Store
        return Store.default()

    # -- binary cache ----------------------------------------------------------------------
    def _load_cache_config(self) -> Any:
        from .cache.config import load_cache_config
        return load_cache_config()

    @property
    def cache_config(self) -> Any:
        return self._cache_config.get()

    def substituters(self, log: Callable[[str], None]) -> List[Any]:
        """Binary caches from the cache config (``piforge.toml [cache] urls``), if any."""
        from .cache.substitute import Substituter
        config = self.cache_config
        return [Substituter.from_config(config, log=log)] if config.urls else []

    # -- profiles --------------------------------------------------------------------------
    def profile(self, name: Optional[str] = None) -> Any:
        """Profile ``name`` (default: ``profile=``, else $PIFORGE_PROFILE, else the default)."""
        from .profiles import load_profile
        chosen = name or self.options.get("profile")
        key = chosen or ""
        if key not in self._profiles:
            self._profiles[key] = _Once(lambda: load_profile(chosen))
        return self._profiles[key].get()

    def cluster_profile(self) -> Any:
        """The profile deploy, train and cluster:check use: ``profile=`` over the cluster file's."""
        return self.profile(self.options.get("profile") or self.cluster.profile)

    def wheel_recipe(self) -> str:
        """``recipe=NAME``, else the profile's wheel recipe if this checkout has it, else the
        proof recipe until the TensorFlow recipes can be built here."""
        import os
        chosen = self.options.get("recipe") or os.environ.get("PIFORGE_WHEEL_RECIPE")
        if chosen:
            return str(chosen)
        try:
            wheel = self.profile().wheel
        except PiforgeError:
            return DEFAULT_WHEEL_RECIPE
        return wheel if wheel and self.has_recipe(wheel) else DEFAULT_WHEEL_RECIPE

    # -- the cluster file ------------------------------------------------------------------
    @property
    def cluster_path(self) -> Path:
        from .cluster.config import cluster_file
        return cluster_file(self.options.get("cluster"))

    def _load_cluster(self) -> Any:
        from .cluster.config import load_cluster
        cluster = load_cluster(self.cluster_path)
        chosen = self.options.get("profile")
        return dataclasses.replace(cluster, profile=chosen) if chosen else cluster

    @property
    def cluster(self) -> Any:
        return self._cluster.get()

    def cluster_error(self) -> Optional[PiforgeError]:
        return self._cluster.error()

    def job_names(self) -> List[str]:
        """Jobs to make per-job tasks for. With a broken file: the ``[jobs.NAME]`` headers
        it has and the ones asked for, so ``train:mnist`` still exists and says why not."""
        if self.cluster_error() is None:
            return sorted(self.cluster.jobs)
        names = set(self.options.subtasks("train")) | set(self.options.subtasks("tfconfig"))
        try:
            headers = _JOB_HEADER.findall(self.cluster_path.read_text(encoding="utf-8"))
            names |= {re.sub(r"\.(params|roles)$", "", name) for name in headers}
        except OSError:
            pass
        return sorted(names)

    def selected_hosts(self) -> Optional[List[str]]:
        """``hosts=a,b``, each checked against the cluster file; None: every host."""
        names = self.options.get("hosts")
        if not names:
            return None
        for name in names:
            self.cluster.host(name)
        return list(names)

    # -- training --------------------------------------------------------------------------
    def check_variables(self) -> None:
        """Refuse, before any task starts, a variable that neither the options table nor
        every requested ``train:<job>`` declares (``epoch=3``, ``profle=local``)."""
        if not self.options.extra:
            return
        jobs = self.options.subtasks("train")
        if not jobs or self.cluster_error() is not None:
            self.options.refuse_extra()
            return
        from .train.jobs import accepted_params
        accepted: Optional[set] = None
        for job in jobs:
            if job not in self.cluster.jobs:
                continue   # the task itself says "no job named"
            names = accepted_params(self.cluster, job)
            if names is None:   # the job passes everything through to its script
                continue
            accepted = set(names) if accepted is None else accepted & set(names)
        if accepted is not None:
            self.options.refuse_extra(accepted, whose=" and ".join(f"train:{job}" for job in jobs))

    def hyperparameters(self) -> Dict[str, str]:
        """The job's own variables of this run (checked by check_variables)."""
        return dict(self.options.extra)

    def wheelhouse(self, profile: Any, *, build: bool = True) -> Any:
        """The profile's wheelhouse as deploy sees it; built (or substituted) first unless
        ``build`` is False, in which case it must already be in the store."""
        from .cluster.wheelhouse import load_wheelhouse
        drv = self.derivation(profile.wheelhouse)
        if build:
            from .realise import realise, report_stderr
            path = realise(drv, self.store, substituters=self.substituters(report_stderr))
        else:
            path = self.store.require(drv)
        return load_wheelhouse(path, self.store)


def wheelhouse_recipe(project: Project) -> Optional[str]:
    """The recipe ``deploy`` depends on; None when it cannot be known yet (the action says why)."""
    try:
        name = str(project.cluster_profile().wheelhouse)
    except PiforgeError:
        return None
    return name if project.has_recipe(name) else None

