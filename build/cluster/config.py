"""cluster.toml: which machines form the cluster, how to reach them, and which jobs run where.

Parsed once into frozen dataclasses; every user mistake is a ClusterConfigError
``cluster.toml:LINE: field: problem`` (never a traceback).

    [cluster]                 # defaults for every host
    transport = "local"       # local | ssh
    profile = "local"         # target profile: which wheelhouse `doit deploy` ships
    user = "pi"               # ssh only
    key = "~/.ssh/piforge_ed25519"
    ssh_port = 22
    known_hosts = "~/.ssh/known_hosts"
    connect_timeout = 5
    ssh_kex = "fast"          # or "default": OpenSSH's own key exchange (post-quantum hybrid)
    deploy_stream = "ssh"     # or "tcp": the deploy stream between hosts, hash-checked at every hop
    python = "python3"        # the host's Python that creates the venvs (default: the profile's)
    home = "~/.piforge"       # per-host piforge directory (venvs, job files)

    [[hosts]]
    name = "pi01"
    address = "192.168.1.101"
    tf_port = 12345
    # any [cluster] field except profile, name and deploy_stream may be overridden per host

    [jobs.mnist]
    hosts = ["pi01", "pi02"]  # default: every host, in file order
    roles = { pi01 = "chief" } # worker by default; chief, ps, evaluator
    strategy = "multi_worker_mirrored"   # or parameter_server (default: ps role present)
    max_restarts = 0          # elastic training: restarts on the survivors (0: fail fast)
    min_workers = 1           # fewer survivors (plus spares) than this: fail
    spares = ["pi09"]         # hosts that replace failed ones
    keep = "global_batch"     # or "per_worker_batch": what stays constant as workers change
    [jobs.mnist.params]       # free-form hyperparameters for the job script
    epochs = 20
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import ClusterConfigError, ConfigError
from ..paths import REPO_ROOT
from ..tomlfile import TomlDocument, load_toml

TRANSPORTS = ("local", "ssh")
SSH_KEX = ("fast", "default")
DEPLOY_STREAMS = ("ssh", "tcp")
ROLES = ("chief", "worker", "ps", "evaluator")
STRATEGIES = ("multi_worker_mirrored", "parameter_server")
DEFAULT_CLUSTER_FILE = REPO_ROOT / "cluster.toml"

# Fields a host may inherit from [cluster] and override; profile, name and deploy_stream are cluster-wide.
_HOST_DEFAULTS: Dict[str, Any] = {
    "transport": "local",
    "user": None,
    "key": None,
    "ssh_port": 22,
    "known_hosts": "~/.ssh/known_hosts",
    "connect_timeout": 5.0,
    "ssh_kex": "fast",
    "python": None,  # default: the profile's host_python
    "home": None,  # local: $PIFORGE_HOME; ssh: ~/.piforge
}
_CLUSTER_KEYS = set(_HOST_DEFAULTS) | {"profile", "name", "deploy_stream"}
_HOST_KEYS = set(_HOST_DEFAULTS) | {"name", "address", "tf_port"}
_JOB_KEYS = {"hosts", "roles", "strategy", "params", "description", "accepts",
             "max_restarts", "min_workers", "spares", "keep"}
KEEPS = ("global_batch", "per_worker_batch")
# The per-worker batch parameter a job's params may name (built-in jobs: both mean `batch`).
BATCH_PARAMS = ("batch", "per_worker_batch")
_TOP_KEYS = {"cluster", "hosts", "jobs"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DEFAULT_TF_PORT = 12345


@dataclass(frozen=True)
class HostSpec:
    """One machine of the cluster, with its [cluster] defaults already applied."""

    name: str
    address: str
    tf_port: int
    transport: str
    user: Optional[str]
    key: Optional[str]
    ssh_port: int
    known_hosts: str
    connect_timeout: float
    python: Optional[str]
    home: Optional[str]
    ssh_kex: str = "fast"

    @property
    def tf_endpoint(self) -> str:
        """``address:port`` as TF_CONFIG wants it (IPv6 literals bracketed)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.tf_port}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_address(self.address)


@dataclass(frozen=True)
class JobSpec:
    """A job: its hosts in TF index order, the role of each, strategy and hyperparameters."""

    name: str
    hosts: Tuple[str, ...]
    roles: Mapping[str, str]
    strategy: str
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    accepts: Tuple[str, ...] = ()     # command-line parameters beyond params (custom scripts)
    passthrough: bool = False         # accepts = "*": every key=value goes to the script
    max_restarts: int = 0             # elastic training (build/train/elastic.py); 0: fail fast
    min_workers: int = 1
    spares: Tuple[str, ...] = ()      # hosts outside ``hosts`` that may replace failed ones
    keep: str = "global_batch"        # or "per_worker_batch"

    def role_of(self, host: str) -> str:
        return self.roles.get(host, "worker")


@dataclass(frozen=True)
class ClusterConfig:
    path: str
    name: str
    profile: str
    hosts: Tuple[HostSpec, ...]
    jobs: Mapping[str, JobSpec]
    deploy_stream: str = "ssh"        # how the deploy stream travels between hosts (build/cluster/stream.py)

    def host(self, name: str) -> HostSpec:
        for spec in self.hosts:
            if spec.name == name:
                return spec
        raise ClusterConfigError(self.path, None, "hosts", f"no host named {name!r}",
                                 hint=f"hosts: {', '.join(h.name for h in self.hosts)}")

    def job(self, name: str) -> JobSpec:
        if name not in self.jobs:
            known = ", ".join(sorted(self.jobs)) or "none"
            raise ClusterConfigError(self.path, None, "jobs", f"no job named {name!r} (jobs: {known})")
        return self.jobs[name]

    def job_hosts(self, name: str) -> Tuple[HostSpec, ...]:
        return tuple(self.host(h) for h in self.job(name).hosts)


def is_loopback_address(address: str) -> bool:
    if address.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def cluster_file(path: Optional[str] = None) -> Path:
    """The file a task should read: ``cluster=PATH``, else $PIFORGE_CLUSTER, else the repo's."""
    chosen = path or os.environ.get("PIFORGE_CLUSTER")
    return Path(chosen).expanduser() if chosen else DEFAULT_CLUSTER_FILE


def load_cluster(path: Optional[Path] = None) -> ClusterConfig:
    """Parse and validate a cluster file (default: cluster_file())."""
    target = Path(path) if path is not None else cluster_file()
    shown = os.path.relpath(target) if target.is_absolute() and _is_under_cwd(target) else str(target)
    doc = load_toml(target, ClusterConfigError, display=shown)
    return parse_cluster(doc)


def _is_under_cwd(path: Path) -> bool:
    try:
        path.relative_to(Path.cwd())
        return True
    except ValueError:
        return False


class _SaidAlready(Exception):
    """A part that depends on an entry whose problem is already reported: skip it quietly."""


class _Problems:
    """Every problem of one file, so a user with three typos sees all three at once."""

    def __init__(self) -> None:
        self.found: List[ClusterConfigError] = []

    def add(self, error: ConfigError) -> None:
        self.found.append(error)  # type: ignore[arg-type]

    def attempt(self, parse: Any, *args: Any) -> Any:
        """``parse(*args)``, or None after noting its problem."""
        try:
            return parse(*args)
        except ClusterConfigError as error:
            self.found.extend(error.problems)  # type: ignore[arg-type]
        except _SaidAlready:
            pass
        return None

    def raise_any(self) -> None:
        if self.found:
            raise ClusterConfigError.combine(self.found)


def parse_cluster(doc: TomlDocument) -> ClusterConfig:
    problems = _Problems()
    data = doc.data
    _reject_unknown(doc, (), data, _TOP_KEYS, problems)
    defaults_raw = data.get("cluster", {})
    if not isinstance(defaults_raw, dict):
        problems.add(doc.error(ClusterConfigError, ("cluster",), "expected a table [cluster]"))
        defaults_raw = {}
    _reject_unknown(doc, ("cluster",), defaults_raw, _CLUSTER_KEYS, problems)
    defaults = dict(_HOST_DEFAULTS)
    for key in _HOST_DEFAULTS:
        if key in defaults_raw:
            value = problems.attempt(_check_field, doc, ("cluster", key), key, defaults_raw[key])
            if value is not None:
                defaults[key] = value
    profile = defaults_raw.get("profile", "local")
    if not isinstance(profile, str) or not profile:
        problems.add(doc.error(ClusterConfigError, ("cluster", "profile"), "expected a profile name (string)"))
    name = defaults_raw.get("name", "cluster")
    if not isinstance(name, str):
        problems.add(doc.error(ClusterConfigError, ("cluster", "name"), "expected a string"))
    deploy_stream = defaults_raw.get("deploy_stream", "ssh")
    if deploy_stream not in DEPLOY_STREAMS:
        problems.add(doc.error(ClusterConfigError, ("cluster", "deploy_stream"),
                               f"expected one of {', '.join(DEPLOY_STREAMS)}, got {deploy_stream!r}"))

    hosts, broken = _parse_hosts(doc, data.get("hosts"), defaults, problems)
    jobs = _parse_jobs(doc, data.get("jobs", {}), hosts, broken, problems)
    problems.raise_any()
    return ClusterConfig(path=doc.path, name=name, profile=profile, hosts=hosts, jobs=jobs,
                         deploy_stream=deploy_stream)


def _reject_unknown(doc: TomlDocument, where: Tuple[str, ...], table: Dict[str, Any], allowed: set,
                    problems: _Problems) -> None:
    for key in table:
        if key not in allowed:
            problems.add(doc.error(ClusterConfigError, where + (key,), "unknown field",
                                   hint=f"expected one of: {', '.join(sorted(allowed))}"))


def _check_field(doc: TomlDocument, keys: Tuple[str, ...], key: str, value: Any) -> Any:
    """Type- and range-check one host field (shared by [cluster] and [[hosts]])."""
    if key == "transport":
        if value not in TRANSPORTS:
            raise doc.error(ClusterConfigError, keys, f"expected one of {', '.join(TRANSPORTS)}, got {value!r}")
        return value
    if key == "ssh_kex":
        if value not in SSH_KEX:
            raise doc.error(ClusterConfigError, keys, f"expected one of {', '.join(SSH_KEX)}, got {value!r}")
        return value
    if key in ("ssh_port", "tf_port"):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise doc.error(ClusterConfigError, keys, f"expected a port number 1-65535, got {value!r}")
        return value
    if key == "connect_timeout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise doc.error(ClusterConfigError, keys, f"expected a positive number of seconds, got {value!r}")
        return float(value)
    if not isinstance(value, str) or not value or "\n" in value or "\0" in value:
        raise doc.error(ClusterConfigError, keys, f"expected a non-empty one-line string, got {value!r}")
    if key == "user" and not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", value):
        raise doc.error(ClusterConfigError, keys, f"not a valid user name: {value!r}")
    return value


def _parse_hosts(doc: TomlDocument, raw: Any, defaults: Dict[str, Any],
                 problems: _Problems) -> Tuple[Tuple[HostSpec, ...], set]:
    """The valid hosts, and the names of hosts whose entries have problems (said already)."""
    if raw is None:
        problems.add(doc.error(ClusterConfigError, ("hosts",), "missing: at least one [[hosts]] entry is required"))
        return (), set()
    if not isinstance(raw, list) or not raw:
        problems.add(doc.error(ClusterConfigError, ("hosts",), "expected one or more [[hosts]] tables"))
        return (), set()
    seen_names: Dict[str, int] = {}
    seen_endpoints: Dict[Tuple[str, int], str] = {}
    hosts: List[HostSpec] = []
    broken: set = set()
    for index, entry in enumerate(raw):
        before = len(problems.found)
        host = problems.attempt(_parse_host, doc, index, entry, defaults, seen_names, seen_endpoints, problems)
        if host is not None and len(problems.found) == before:
            hosts.append(host)
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            broken.add(entry["name"])
    return tuple(hosts), broken


def _parse_host(doc: TomlDocument, index: int, entry: Any, defaults: Dict[str, Any],
                seen_names: Dict[str, int], seen_endpoints: Dict[Tuple[str, int], str],
                problems: _Problems) -> HostSpec:
    at = ("hosts", str(index))
    if not isinstance(entry, dict):
        raise doc.error(ClusterConfigError, at, "expected a table")
    _reject_unknown(doc, at, entry, _HOST_KEYS, problems)
    name = entry.get("name")
    if name is None:
        raise doc.error(ClusterConfigError, at + ("name",), "missing: every host needs a name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise doc.error(ClusterConfigError, at + ("name",),
                        f"expected letters, digits, '.', '_' or '-' (max 63), got {name!r}")
    if name in seen_names:
        raise doc.error(ClusterConfigError, at + ("name",),
                        f"duplicate host name {name!r} (first at line {seen_names[name]})")
    seen_names[name] = doc.line_of(*at, "name") or 0
    values = dict(defaults)
    for key in _HOST_DEFAULTS:
        if key in entry:
            values[key] = _check_field(doc, at + (key,), key, entry[key])
    address = entry.get("address")
    if address is None:
        if values["transport"] == "ssh":
            raise doc.error(ClusterConfigError, at + ("address",), "missing: an ssh host needs an address")
        address = "127.0.0.1"
    if not isinstance(address, str) or not re.match(r"^[A-Za-z0-9:._%-]+$", address) or address.startswith("-"):
        raise doc.error(ClusterConfigError, at + ("address",), f"expected a host name or IP address, got {address!r}")
    tf_port = _check_field(doc, at + ("tf_port",), "tf_port", entry.get("tf_port", DEFAULT_TF_PORT + index))
    endpoint = (address.lower(), tf_port)
    if endpoint in seen_endpoints:
        raise doc.error(ClusterConfigError, at + ("tf_port",),
                        f"{address}:{tf_port} is already used by host {seen_endpoints[endpoint]!r}")
    seen_endpoints[endpoint] = name
    if values["transport"] == "ssh" and not values["user"]:
        raise doc.error(ClusterConfigError, at + ("user",), "ssh host needs a user (set user in [cluster] or here)")
    return HostSpec(name=name, address=address, tf_port=tf_port, **values)


def _parse_jobs(doc: TomlDocument, raw: Any, hosts: Tuple[HostSpec, ...], broken: set,
                problems: _Problems) -> Dict[str, JobSpec]:
    if not isinstance(raw, dict):
        problems.add(doc.error(ClusterConfigError, ("jobs",), "expected tables [jobs.NAME]"))
        return {}
    jobs: Dict[str, JobSpec] = {}
    for job_name, entry in raw.items():
        job = problems.attempt(_parse_job, doc, job_name, entry, hosts, broken, problems)
        if job is not None:
            jobs[job_name] = job
    return jobs


def _parse_job(doc: TomlDocument, job_name: str, entry: Any, hosts: Tuple[HostSpec, ...], broken: set,
               problems: _Problems) -> JobSpec:
    by_name = {h.name: h for h in hosts}
    at = ("jobs", job_name)
    if not _NAME.match(job_name):
        raise doc.error(ClusterConfigError, at, f"job names use letters, digits, '.', '_' or '-', got {job_name!r}")
    if not isinstance(entry, dict):
        raise doc.error(ClusterConfigError, at, "expected a table")
    _reject_unknown(doc, at, entry, _JOB_KEYS, problems)
    names = entry.get("hosts", [h.name for h in hosts])
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise doc.error(ClusterConfigError, at + ("hosts",), "expected a non-empty list of host names")
    for host_name in names:
        if host_name in broken:
            raise _SaidAlready(host_name)   # its entry's problem is reported; this job can't be checked
        if host_name not in by_name:
            raise doc.error(ClusterConfigError, at + ("hosts",), f"unknown host {host_name!r}",
                            hint=f"hosts: {', '.join(by_name)}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise doc.error(ClusterConfigError, at + ("hosts",), f"host listed twice: {', '.join(duplicates)}")
    roles = _parse_roles(doc, at, entry.get("roles", {}), names)
    strategy = _parse_strategy(doc, at, entry, roles, names)
    params = entry.get("params", {})
    if not isinstance(params, dict):
        raise doc.error(ClusterConfigError, at + ("params",), "expected a table of hyperparameters")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise doc.error(ClusterConfigError, at + ("description",), "expected a string")
    accepts = entry.get("accepts", [])
    if not (accepts == "*" or (isinstance(accepts, list) and all(
            isinstance(a, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", a) for a in accepts))):
        raise doc.error(ClusterConfigError, at + ("accepts",),
                        'expected a list of parameter names, or "*" to pass every key=value through')
    elastic = _parse_elastic(doc, at, entry, names, by_name, broken, strategy, params)
    _check_addresses(doc, at, [by_name[n] for n in list(names) + list(elastic["spares"])])
    return JobSpec(name=job_name, hosts=tuple(names), roles=roles, strategy=strategy, params=params,
                   description=description, accepts=() if accepts == "*" else tuple(accepts),
                   passthrough=accepts == "*", **elastic)


def _whole_number(doc: TomlDocument, keys: Tuple[str, ...], value: Any, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise doc.error(ClusterConfigError, keys, f"expected a whole number >= {lowest}, got {value!r}")
    return value


def _parse_elastic(doc: TomlDocument, at: Tuple[str, ...], entry: Dict[str, Any], names: List[str],
                   by_name: Dict[str, HostSpec], broken: set, strategy: str,
                   params: Dict[str, Any]) -> Dict[str, Any]:
    """max_restarts, min_workers, spares, keep of one job (elastic training)."""
    max_restarts = _whole_number(doc, at + ("max_restarts",), entry.get("max_restarts", 0), 0)
    min_workers = _whole_number(doc, at + ("min_workers",), entry.get("min_workers", 1), 1)
    if min_workers > len(names):
        raise doc.error(ClusterConfigError, at + ("min_workers",),
                        f"{min_workers} is more than the job's {len(names)} host(s)")
    spares = entry.get("spares", [])
    if not isinstance(spares, list) or not all(isinstance(n, str) for n in spares):
        raise doc.error(ClusterConfigError, at + ("spares",), "expected a list of host names")
    for spare in spares:
        if spare in broken:
            raise _SaidAlready(spare)
        if spare not in by_name:
            raise doc.error(ClusterConfigError, at + ("spares",), f"unknown host {spare!r}",
                            hint=f"hosts: {', '.join(by_name)}")
        if spare in names or spares.count(spare) > 1:
            raise doc.error(ClusterConfigError, at + ("spares",),
                            f"host {spare!r} is listed twice (a spare is not one of the job's hosts)")
    keep = entry.get("keep", "global_batch")
    if keep not in KEEPS:
        raise doc.error(ClusterConfigError, at + ("keep",), f"expected one of {', '.join(KEEPS)}, got {keep!r}")
    if max_restarts and strategy != "multi_worker_mirrored":
        raise doc.error(ClusterConfigError, at + ("max_restarts",),
                        "restarts on the survivors need strategy = \"multi_worker_mirrored\"")
    if max_restarts and keep == "global_batch":
        for key in BATCH_PARAMS:
            batch = params.get(key)
            if isinstance(batch, int) and not isinstance(batch, bool):
                bad = indivisible_worker_counts(batch * len(names), min_workers, len(names))
                if bad:
                    raise doc.error(ClusterConfigError, at + ("params", key),
                                    batch_problem(batch, len(names), bad, min_workers))
    return {"max_restarts": max_restarts, "min_workers": min_workers, "spares": tuple(spares), "keep": keep}


def indivisible_worker_counts(global_batch: int, min_workers: int, workers: int) -> List[int]:
    """Worker counts from min_workers to workers that cannot split ``global_batch`` evenly."""
    return [n for n in range(min_workers, workers + 1) if global_batch % n]


def batch_problem(per_worker: int, workers: int, bad: List[int], min_workers: int) -> str:
    total = per_worker * workers
    return (f"keep = \"global_batch\": the global batch {total} ({per_worker} x {workers} workers) does not "
            f"divide by {', '.join(map(str, bad))} worker(s), which a restart down to min_workers = "
            f"{min_workers} may leave; choose a batch that does, raise min_workers, "
            "or keep = \"per_worker_batch\"")


def _parse_roles(doc: TomlDocument, at: Tuple[str, ...], raw: Any, names: List[str]) -> Dict[str, str]:
    if not isinstance(raw, dict):
        raise doc.error(ClusterConfigError, at + ("roles",), "expected a table host = \"role\"")
    roles: Dict[str, str] = {}
    for host_name, role in raw.items():
        if host_name not in names:
            raise doc.error(ClusterConfigError, at + ("roles", host_name),
                            f"host {host_name!r} is not in this job's hosts")
        if role not in ROLES:
            raise doc.error(ClusterConfigError, at + ("roles", host_name),
                            f"expected one of {', '.join(ROLES)}, got {role!r}")
        if role != "worker":
            roles[host_name] = role
    chiefs = [h for h, r in roles.items() if r == "chief"]
    if len(chiefs) > 1:
        raise doc.error(ClusterConfigError, at + ("roles",),
                        f"a job has at most one chief, got {len(chiefs)}: {', '.join(chiefs)}")
    return roles


def _parse_strategy(doc: TomlDocument, at: Tuple[str, ...], entry: Dict[str, Any],
                    roles: Dict[str, str], names: List[str]) -> str:
    has_ps = "ps" in roles.values()
    strategy = entry.get("strategy", "parameter_server" if has_ps else "multi_worker_mirrored")
    if strategy not in STRATEGIES:
        raise doc.error(ClusterConfigError, at + ("strategy",),
                        f"expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    workers = [n for n in names if roles.get(n, "worker") == "worker"]
    if strategy == "multi_worker_mirrored":
        if has_ps:
            raise doc.error(ClusterConfigError, at + ("roles",),
                            "ps hosts need strategy = \"parameter_server\"")
        if not workers and "chief" not in roles.values():
            raise doc.error(ClusterConfigError, at + ("hosts",), "a job needs at least one worker or chief")
    else:
        if "chief" not in roles.values():
            raise doc.error(ClusterConfigError, at + ("roles",),
                            "parameter_server needs a chief (missing): set roles = { HOST = \"chief\" }")
        if not has_ps:
            raise doc.error(ClusterConfigError, at + ("roles",), "parameter_server needs at least one ps host")
        if not workers:
            raise doc.error(ClusterConfigError, at + ("roles",), "parameter_server needs at least one worker")
    return strategy


def _check_addresses(doc: TomlDocument, at: Tuple[str, ...], job_hosts: List[HostSpec]) -> None:
    """A loopback address in a TF_CONFIG shared by several machines makes the job hang."""
    remote = [h for h in job_hosts if h.transport == "ssh"]
    if not remote:
        return
    for host in job_hosts:
        if host.is_loopback:
            line_keys = ("hosts",)
            raise doc.error(ClusterConfigError, at + line_keys,
                            f"host {host.name!r} has loopback address {host.address!r} but this job "
                            f"also runs on ssh host {remote[0].name!r}: the other machines would "
                            "connect to themselves",
                            hint="give every host of a multi-machine job its LAN address")
