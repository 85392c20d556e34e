"""Every command-line variable piforge understands, in one table, parsed once per run.

doit hands tasks loose ``key=value`` strings; each task area used to read its own with
``get_var`` at its own time, so a typo (``profle=local``) was ignored and a bad value
(``workers=two``) failed deep inside a deploy. Here every variable has one entry (name,
type, what it does, which tasks read it), ``parse_options`` checks all of them before
any task starts, and ``Options`` is the frozen result the rest of piforge reads.

Hyperparameters of a training job (``epochs=3``) are not in the table: the chosen job
declares them, so they are checked against the job (build.train.jobs), not here.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence, Tuple

from .errors import UsageError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected 1/0, true/false or yes/no")


def _whole(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError("expected a whole number")
    return int(text)


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("expected a positive number of seconds")
    return value


def _names(text: str) -> Tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError("expected one or more names separated by commas")
    return names


def _text(text: str) -> str:
    if not text:
        raise ValueError("expected a value")
    return text


@dataclass(frozen=True)
class OptionSpec:
    name: str
    parse: Callable[[str], Any]
    kind: str            # what the help table shows: "name", "N", "1/0", "a,b", ...
    help: str
    tasks: str           # which tasks read it, for the help table


OPTIONS: Dict[str, OptionSpec] = {}


def register(*specs: OptionSpec) -> None:
    """Add variables to the table (each task area registers the ones it reads)."""
    for spec in specs:
        if spec.name in OPTIONS and OPTIONS[spec.name] != spec:
            raise ValueError(f"option {spec.name!r} is registered twice with different meanings")
        OPTIONS[spec.name] = spec


register(
    OptionSpec("recipe", _text, "name", "the recipe to build as the wheel (default: the profile's)", "wheel"),
    OptionSpec("profile", _text, "name", "target profile (profiles/NAME.toml); default: the cluster file's",
               "wheel, ci, deploy, rollback, cluster:check, train:, compat"),
    OptionSpec("substitute_only", _flag, "1/0", "take outputs from a trusted binary cache or fail; never build",
               "build:, wheel"),
    OptionSpec("dry", _flag, "1/0", "only list what would be removed", "gc"),
    OptionSpec("targets", _names, "a,b", "recipes CI builds or substitutes, then pushes", "ci"),
    OptionSpec("size", _whole, "GB", "size of the swap file", "swap"),
    OptionSpec("path", _text, "file", "where the swap file goes", "swap"),
    OptionSpec("yes", _flag, "1/0", "do not ask before changing the machine", "swap"),
    OptionSpec("cluster", _text, "file", "the cluster file (default: $PIFORGE_CLUSTER, else cluster.toml)",
               "tfconfig:, cluster:check, deploy, rollback, train:"),
    OptionSpec("hosts", _names, "a,b", "only these hosts of the cluster file", "deploy, rollback"),
    OptionSpec("job", _text, "name", "the job whose TCP mesh cluster:check probes", "cluster:check"),
    OptionSpec("relay", _flag, "yes/no", "relay the wheelhouse host to host (default yes)", "deploy"),
    OptionSpec("workers", _whole, "N", "use only the first N hosts of the job (1: single-host baseline)",
               "train:"),
    OptionSpec("dataset", _text, "name|file", "the job's dataset: a dataset name or a data file", "train:"),
    OptionSpec("python", _text, "file", "the Python that runs the workers (skips the deploy)", "train:"),
    OptionSpec("startup_timeout", _seconds, "s", "how long every worker may take to reach its first step",
               "train:"),
    OptionSpec("max_restarts", _whole, "N", "restart the job on the survivors up to N times (0: fail fast)",
               "train:"),
    OptionSpec("min_workers", _whole, "N", "fewer workers left than this: the job fails", "train:"),
    OptionSpec("spares", _names, "a,b", "hosts that may replace a failed worker", "train:"),
    OptionSpec("keep", _text, "name", "global_batch (default) or per_worker_batch: what stays when workers change",
               "train:"),
    OptionSpec("script", _text, "file", "the job script (custom jobs)", "train:"),
    OptionSpec("files", _names, "a,b", "extra files shipped beside the job script", "train:"),
    OptionSpec("run", _text, "id", "the run to report on, export or benchmark (default: the latest)",
               "report, export:, infer:"),
    OptionSpec("runs", _names, "a,b", "several runs to compare in one report", "report"),
)


@dataclass(frozen=True)
class Options:
    """The variables of one run: known ones parsed (``values``), the others kept as given
    (``extra``) for the job that may declare them; ``tasks`` are the task names asked for."""

    values: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)
    tasks: Tuple[str, ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        if name not in OPTIONS:
            raise KeyError(f"{name!r} is not a registered option")  # a bug, not a user mistake
        return self.values.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        return bool(self.get(name, default))

    def subtasks(self, basename: str) -> List[str]:
        """Names asked for under ``basename``: ``train:mnist`` gives ``mnist``."""
        return [t.split(":", 1)[1] for t in self.tasks if t.startswith(basename + ":")]

    def refuse_extra(self, allowed: Iterable[str] = (), whose: str = "") -> None:
        """UsageError naming every variable that neither the table nor ``allowed`` (the
        parameters ``whose`` job declares) knows."""
        allowed = set(allowed)
        unknown = sorted(k for k in self.extra if k not in allowed)
        if not unknown:
            return
        names = ", ".join(f"{k}={self.extra[k]}" for k in unknown)
        takes = f"{whose} takes {', '.join(sorted(allowed - set(OPTIONS)))}; " if allowed else ""
        raise UsageError(f"unknown command-line variable{'s' if len(unknown) > 1 else ''} {names}: "
                         f"{takes}piforge's own are {', '.join(sorted(OPTIONS))} (./piforge options)")


def parse_options(variables: Mapping[str, str], tasks: Sequence[str] = ()) -> Options:
    """Check every known variable's value; keep the unknown ones for ``refuse_extra``."""
    values: Dict[str, Any] = {}
    extra: Dict[str, str] = {}
    problems: List[str] = []
    for name, text in variables.items():
        spec = OPTIONS.get(name)
        if spec is None:
            extra[name] = text
            continue
        try:
            values[name] = spec.parse(str(text))
        except ValueError as error:
            problems.append(f"{name}={text}: {error} ({spec.kind}: {spec.help})")
    if problems:
        raise UsageError("bad command-line variable" + ("s:\n  " if len(problems) > 1 else ": ")
                         + "\n  ".join(problems))
    return Options(values=values, raw=dict(variables), extra=extra, tasks=tuple(tasks))


def requested_tasks(argv: Sequence[str]) -> Tuple[str, ...]:
    """Task names on a doit command line: not options, not variables, not the command."""
    commands = ("run", "list", "info", "help", "clean", "forget", "ignore", "auto", "dumpdb",
                "strace", "tabcompletion", "reset-dep")
    names = [a for a in argv if not a.startswith("-") and "=" not in a]
    if names and names[0] in commands:
        names = [] if names[0] != "run" else names[1:]
    return tuple(names)


def from_doit() -> Options:
    """The Options of this doit run (its variables, and the task names in sys.argv)."""
    from doit import doit_cmd

    variables = dict(getattr(doit_cmd, "_CMDLINE_VARS", None) or {})
    return parse_options(variables, requested_tasks(sys.argv[1:]))


def help_table() -> str:
    """`doit help`-style text for every variable, generated from the table."""
    width = max(len(f"{s.name}={s.kind}") for s in OPTIONS.values())
    lines = ["Command-line variables (./piforge TASK name=value ...):"]
    for spec in sorted(OPTIONS.values(), key=lambda s: s.name):
        lines.append(f"  {spec.name + '=' + spec.kind:<{width}}  {spec.help}  [{spec.tasks}]")
    lines.append("Any other name=value on train:<job> must be a hyperparameter the job declares "
                 "(its script's DEFAULTS, or accepts = [...] in cluster.toml).")
    lines.append(f"Environment: PIFORGE_HOME (state, default {os.path.join('~', '.cache', 'piforge')}), "
                 "PIFORGE_CLUSTER, PIFORGE_PROFILE.")
    return "\n".join(lines)
