"""`doit train:<job>`: ship a job to its hosts, run it everywhere, keep a run record.

The cluster side (cluster.toml, TF_CONFIG per host, how to reach a host) belongs to
build.cluster; this module only decides what to ship and start, and reads the result.
"""
from __future__ import annotations

import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from ..cluster.hosts import open_host
from ..cluster.tfconfig import render_tf_config, tf_config_json
from ..errors import ProfileError, TrainingError
from ..hashing import sha256_file
from .datasets import dataset_file
from .environment import ensure_deployed
from .isolation import LOCAL_ISOLATION
from .jobs import TrainingJob, cluster_for, resolve_job
from .records import RunRecord, load_run, new_run_id
from .stragglers import step_time_table
from .supervisor import Deadlines, Outcome, Supervisor, WorkerSpec

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(f"piforge: {line}", flush=True)


@dataclass
class TrainingResult:
    record: Path
    outcome: Outcome
    test_accuracy: Optional[float]


def profile_job_env(profile_name: str) -> Dict[str, str]:
    """Environment the target profile wants job scripts to run with (e.g. TF_USE_LEGACY_KERAS)."""
    from ..profiles import load_profile

    try:
        return dict(load_profile(profile_name).job_env)
    except ProfileError:
        return {}  # not every cluster names a profile file; the jobkit picks tf-keras itself


def train(cluster: Any, job_name: str, overrides: Mapping[str, str], *, say: Say = _say,
          runs_root: Optional[Path] = None,
          provide_wheelhouse: Optional[Callable[[Any], Any]] = None) -> TrainingResult:
    """Run ``job_name`` of ``cluster`` to completion; TrainingError (after cleanup) if it failed.
    Every override is checked (resolve_job) before anything is deployed or started."""
    job = resolve_job(cluster, job_name, overrides)
    deadlines = _deadlines(overrides)
    ensure_deployed(cluster, job.hosts, overrides, say, provide_wheelhouse=provide_wheelhouse)
    data = dataset_file(job.dataset, report=say) if job.dataset else None
    record = RunRecord.create(new_run_id(job.name, job.workers), runs_root)
    say(f"run {record.path.name}: job {job.name} on {job.workers} worker(s): {', '.join(job.hosts)}")
    tf_configs: Dict[str, Optional[Dict[str, Any]]] = {name: None for name in job.hosts}
    if job.workers > 1:  # one worker = the single-host baseline, no cluster at all
        tf_configs.update(render_tf_config(cluster_for(cluster, job), job.name))
    record.snapshot(Path(cluster.path), "cluster.toml")
    for name, config in tf_configs.items():
        record.write_json(f"tf_config/{name}.json", config)
    record.update(job=job.name, run_id=record.path.name, hosts=list(job.hosts), workers=job.workers,
                  params=job.params, script=str(job.script), profile=cluster.profile, status="staging",
                  dataset=job.dataset, dataset_file=str(data) if data else None, started=time.time())

    hosts = {name: open_host(cluster.host(name)) for name in job.hosts}
    try:
        specs = _stage(job, hosts, tf_configs, data, record, overrides, cluster.profile, say)
        record.update(status="running", spawned=time.time(), isolation=LOCAL_ISOLATION.mode(record.path.name))
        outcome = Supervisor(specs, record, deadlines).run()
        if outcome.status == "succeeded":
            _fetch_model(specs, tf_configs, record, say)
    finally:
        record.close()
        LOCAL_ISOLATION.release(record.path.name, say)
        for host in hosts.values():
            host.close()
    return _conclude(job, record, outcome, say)


def _deadlines(overrides: Mapping[str, str]) -> Deadlines:
    value = overrides.get("startup_timeout")
    if value is None:
        return Deadlines()
    try:
        seconds = float(value)
    except ValueError:
        raise TrainingError(f"startup_timeout={value!r}: expected seconds") from None
    return Deadlines(startup=seconds)


def _stage(job: TrainingJob, hosts: Dict[str, Any], tf_configs: Dict[str, Optional[Dict[str, Any]]],
           data: Optional[Path], record: RunRecord, overrides: Mapping[str, str], profile: str,
           say: Say) -> List[WorkerSpec]:
    """Copy script, jobkit, extra files and data to every host (in parallel); build the specs."""
    base_env = profile_job_env(profile)
    base_env["PYTHONUNBUFFERED"] = "1"
    data_name = f"{sha256_file(data)[:16]}-{data.name}" if data else None

    def stage_one(name: str) -> WorkerSpec:
        host = hosts[name]
        python = overrides.get("python") or host.venv_python(profile)
        if not host.run(["test", "-x", python], check=False, timeout=30).ok:
            raise TrainingError(f"host {name}: no Python environment at {python}",
                                hint="run ./piforge deploy first (or pass python=PATH to use an existing one)")
        job_dir = f"{host.workdir}/runs/{record.path.name}"
        host.run(["mkdir", "-p", job_dir], timeout=30)
        for path in (job.script,) + job.files:
            host.put(path, f"{job_dir}/{path.name}")
        env = dict(base_env, PIFORGE_MODEL_DIR=f"{job_dir}/model")
        if data_name is not None:
            env["PIFORGE_DATA"] = f"{host.home}/datasets/{data_name}"
        config = tf_configs[name]
        endpoint = None
        if config is not None:
            env["TF_CONFIG"] = tf_config_json(config)
            endpoint = (host.spec.address, host.spec.tf_port)
        argv = [python, "-u", job.script.name, *job.script_argv()]
        argv, env = LOCAL_ISOLATION.wrap(host, record.path.name, job_dir, argv, env, say)  # private /tmp
        return WorkerSpec(host=host, argv=argv, env=env, cwd=job_dir, endpoint=endpoint)

    def ship_data(name: str) -> None:
        host = hosts[name]
        remote = f"{host.home}/datasets/{data_name}"
        if not host.run(["test", "-f", remote], check=False, timeout=30).ok:  # content-named: complete if there
            host.put(data, remote)  # type: ignore[arg-type]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        if data_name is not None:
            # Hosts sharing one filesystem (local hosts share a home) get the data once.
            shared: Dict[Any, str] = {}
            for name in job.hosts:
                spec = hosts[name].spec
                shared.setdefault((spec.transport, spec.address if spec.transport == "ssh" else "",
                                   hosts[name].home), name)
            list(pool.map(ship_data, shared.values()))
        specs = list(pool.map(stage_one, job.hosts))
    say(f"staged {job.script.name}" + (f" and {data.name}" if data else "")
        + f" on {len(specs)} host(s) in {time.monotonic() - started:.1f} s")
    return specs


def chief_of(tf_configs: Mapping[str, Optional[Dict[str, Any]]]) -> str:
    """The host whose model is kept: the chief task, else worker 0 (TF's rule)."""
    names = list(tf_configs)
    for name, config in tf_configs.items():
        if config and config["task"]["type"] == "chief":
            return name
    for name, config in tf_configs.items():
        if config and config["task"] == {"type": "worker", "index": 0}:
            return name
    return names[0]


def _fetch_model(specs: List[WorkerSpec], tf_configs: Mapping[str, Optional[Dict[str, Any]]],
                 record: RunRecord, say: Say) -> None:
    chief = chief_of(tf_configs)
    spec = next(s for s in specs if s.name == chief)
    model_dir = f"{spec.cwd}/model"
    if not spec.host.run(["test", "-d", model_dir], check=False, timeout=30).ok:
        say(f"note: {chief} saved no model in {model_dir}")
        return
    archive = f"{spec.cwd}/model.tar"
    spec.host.run(["tar", "-C", spec.cwd, "-cf", archive, "model"], timeout=300)
    local = record.path / "model.tar"
    spec.host.get(archive, local)
    with tarfile.open(local) as tar:
        for member in tar.getmembers():  # our own archive, still: nothing may escape the run dir
            if member.name.startswith(("/", "..")) or "/../" in member.name:
                raise TrainingError(f"{chief}: unsafe path in model archive: {member.name}")
        tar.extractall(record.path)
    local.unlink()
    spec.host.run(["rm", "-f", archive], check=False, timeout=30)


def _conclude(job: TrainingJob, record: RunRecord, outcome: Outcome, say: Say) -> TrainingResult:
    events = load_run(record.path)["events"]
    record.update(step_times=step_time_table({"events": events}))  # per host, per epoch (stragglers)
    accuracies = [e["accuracy"] for e in events if e.get("kind") == "test"]
    accuracy = accuracies[0] if accuracies else None
    record.update(status=outcome.status, cause=outcome.cause, failed_host=outcome.host,
                  exit_codes=outcome.exit_codes, ready_after=outcome.ready_after,
                  stopped_in=outcome.stopped_in, busy_ports=outcome.busy_ports,
                  test_accuracy=accuracy, finished=time.time())
    if outcome.busy_ports:
        say("warning: still listening after the job: " + ", ".join(outcome.busy_ports))
    if outcome.status != "succeeded":
        raise TrainingError(f"job {job.name} {outcome.status}: {outcome.cause}",
                            hint=f"every worker was stopped (in {outcome.stopped_in} s); "
                                 f"logs and record: {record.path}")
    say(f"run record: {record.path}")
    if accuracy is not None:
        print(f"test_accuracy={accuracy:.4f}", flush=True)
    return TrainingResult(record=record.path, outcome=outcome, test_accuracy=accuracy)
