"""From a job of cluster.toml plus command-line overrides to what the launcher runs.

A job names a script (built-in jobs have one in jobs/), a dataset, extra files to ship,
and hyperparameters. cluster.toml's ``[jobs.NAME.params]`` holds all of them; these keys
are the launcher's, the rest go to the script as ``key=value`` arguments:

    script   path of the job script (relative to the cluster file); built-in jobs: jobs/<name>.py
    dataset  a dataset name (see build.train.datasets) or a path to a data file; "" = none
    files    extra files to ship beside the script
    workers  use only the first N hosts of the job (1 = the single-host baseline)

A job accepts on the command line only the parameters it declares: a built-in job (or any
script using the jobkit) its script's ``DEFAULTS``, a custom job what its ``params`` table
sets plus ``accepts = [...]`` (``accepts = "*"`` passes everything through).
"""
from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Tuple

from ..errors import TrainingError, UsageError
from ..paths import REPO_ROOT
from .elastic import POLICY_KEYS, ElasticPolicy, check_policy, policy_for

JOBS_DIR = REPO_ROOT / "jobs"
JOBKIT = JOBS_DIR / "piforge_jobkit.py"

# The jobs that come with piforge: script and default dataset.
BUILTIN_JOBS: Dict[str, Tuple[str, str]] = {
    "mnist": ("mnist.py", "mnist"),
    "catsdogs": ("catsdogs.py", "cats_vs_dogs"),
}
LAUNCHER_KEYS = ("script", "dataset", "files", "workers")
# Longer names cluster.toml uses for the built-in scripts' parameters (the same table as
# ALIASES in jobs/piforge_jobkit.py, which must stay importable without piforge).
BUILTIN_ALIASES = {"per_worker_batch": "batch", "steps_per_epoch": "steps", "learning_rate": "lr"}
# Command-line variables that steer piforge itself, never passed to a script.
CONTROL_KEYS = ("python", "startup_timeout") + POLICY_KEYS


@dataclass(frozen=True)
class TrainingJob:
    name: str
    script: Path
    files: Tuple[Path, ...]        # shipped beside the script (the jobkit always is)
    dataset: Optional[str]         # name or path; None: the script brings its own data
    hosts: Tuple[str, ...]         # host names in TF index order (already cut to ``workers``)
    params: Dict[str, Any]         # passed to the script as key=value, in this order
    policy: ElasticPolicy = ElasticPolicy()        # restarts on the survivors (elastic.py)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the script's DEFAULTS

    @property
    def workers(self) -> int:
        return len(self.hosts)

    def script_argv(self) -> List[str]:
        return [f"{key}={_format(value)}" for key, value in self.params.items()]


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def script_defaults(script: Path) -> Optional[Dict[str, Any]]:
    """A job script's top-level ``DEFAULTS = {...}`` (the jobkit's pattern), read without
    running the script: key -> default value (None where it is not a literal); None if
    the script has no such dict."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                isinstance(t, ast.Name) and t.id == "DEFAULTS" for t in node.targets):
            defaults: Dict[str, Any] = {}
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    try:
                        defaults[key.value] = ast.literal_eval(value)
                    except ValueError:
                        defaults[key.value] = None
            return defaults
    return None


def _check_type(job: str, key: str, text: str, default: Any) -> None:
    """The jobkit types a value like its default; say a mismatch here, before the deploy."""
    if isinstance(default, bool) or default is None or isinstance(default, str):
        return
    try:
        type(default)(text)
    except ValueError:
        raise UsageError(f"{key}={text}: job {job!r} expects {type(default).__name__} "
                         f"(default {default!r})") from None


def _script_of(cluster: Any, name: str) -> Optional[Path]:
    script = cluster.job(name).params.get("script")
    if isinstance(script, str) and script:
        path = Path(script).expanduser()
        return path if path.is_absolute() else Path(cluster.path).resolve().parent / path
    builtin = BUILTIN_JOBS.get(name)
    return JOBS_DIR / builtin[0] if builtin else None


def accepted_params(cluster: Any, name: str) -> Optional[FrozenSet[str]]:
    """Every ``key=value`` job ``name`` takes on the command line; None: all (pass-through)."""
    spec = cluster.job(name)
    if spec.passthrough:
        return None
    names = set(LAUNCHER_KEYS) | set(CONTROL_KEYS) | set(spec.params) | set(spec.accepts)
    script = _script_of(cluster, name)
    declared = script_defaults(script) if script is not None and script.is_file() else None
    if declared:
        names |= set(declared)
        names |= {alias for alias, key in BUILTIN_ALIASES.items() if key in declared}
    return frozenset(names)


def resolve_job(cluster: Any, name: str, overrides: Mapping[str, str]) -> TrainingJob:
    """The job ``name`` of ``cluster`` (a ClusterConfig) with command-line ``overrides``."""
    spec = cluster.job(name)
    where = f"{cluster.path}: jobs.{name}.params"
    builtin = BUILTIN_JOBS.get(name)
    aliases = BUILTIN_ALIASES if builtin else {}
    accepted = accepted_params(cluster, name)
    unknown = sorted(k for k in overrides if accepted is not None and k not in accepted)
    if unknown:
        shown = ", ".join(f"{k}={overrides[k]}" for k in unknown)
        raise UsageError(f"job {name!r} does not take {shown}: it takes {', '.join(sorted(accepted or ()))}",
                         hint=f"a custom job declares more in cluster.toml: [jobs.{name}] accepts = [...] "
                              "(or \"*\" to pass everything to its script)")
    script = _script_of(cluster, name)
    defaults = (script_defaults(script) if script is not None and script.is_file() else None) or {}
    for key, text in overrides.items():
        real = BUILTIN_ALIASES.get(key, key)
        if real in defaults:
            _check_type(name, key, str(text), defaults[real])
    params: Dict[str, Any] = {}
    for key, value in list(spec.params.items()) + [(k, v) for k, v in overrides.items() if k not in CONTROL_KEYS]:
        key = aliases.get(key, key)
        params.pop(key, None)  # the later value wins, and keeps the order readable
        params[key] = value
    launcher = {key: params.pop(key) for key in LAUNCHER_KEYS if key in params}
    base = Path(cluster.path).resolve().parent

    script_value = launcher.get("script")
    if script_value is not None:
        script = _existing_file(base, script_value, f"{where}.script")
    elif builtin is not None:
        script = JOBS_DIR / builtin[0]
    else:
        raise TrainingError(f"{where}: script: missing: job {name!r} is not built in "
                            f"({', '.join(BUILTIN_JOBS)}), so it must name its script",
                            hint='e.g. [jobs.%s.params] script = "jobs/vgg16.py"' % name)

    files_value = launcher.get("files", [])
    if isinstance(files_value, str):
        files_value = [f for f in files_value.split(",") if f]
    if not isinstance(files_value, list):
        raise TrainingError(f"{where}.files: expected a list of paths, got {files_value!r}")
    files = tuple(_existing_file(base, f, f"{where}.files") for f in files_value)

    dataset = launcher.get("dataset", builtin[1] if builtin else None)
    dataset = str(dataset) if dataset not in (None, "") else None

    hosts = tuple(spec.hosts)
    if "workers" in launcher:
        try:
            count = int(launcher["workers"])
        except (TypeError, ValueError):
            raise TrainingError(f"workers={launcher['workers']!r}: expected a whole number") from None
        if not 1 <= count <= len(hosts):
            raise TrainingError(f"workers={count}: job {name!r} has {len(hosts)} host(s) "
                                f"({', '.join(hosts)}); expected 1..{len(hosts)}")
        hosts = hosts[:count]
    policy = policy_for(cluster, name, overrides)
    check_policy(policy, name, hosts, params, defaults)
    return TrainingJob(name=name, script=script, files=(JOBKIT,) + files, dataset=dataset,
                       hosts=hosts, params=params, policy=policy, defaults=defaults)


def cluster_for(cluster: Any, job: TrainingJob) -> Any:
    """The cluster with ``job`` cut to the hosts it runs on, for TF_CONFIG rendering."""
    spec = cluster.job(job.name)
    if tuple(spec.hosts) == job.hosts:
        return cluster
    jobs = dict(cluster.jobs)
    jobs[job.name] = dataclasses.replace(spec, hosts=job.hosts)
    return dataclasses.replace(cluster, jobs=jobs)


def _existing_file(base: Path, value: Any, field: str) -> Path:
    if not isinstance(value, str) or not value:
        raise TrainingError(f"{field}: expected a path, got {value!r}")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise TrainingError(f"{field}: no such file: {path}")
    return path
