"""`doit train:<job>`: ship a job to its hosts, run it everywhere, keep a run record.

The cluster side (cluster.toml, TF_CONFIG per host, how to reach a host) belongs to
build.cluster; this module only decides what to ship and start, and reads the result.
"""
from __future__ import annotations

import dataclasses
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..cluster.hosts import close_all, open_host
from ..cluster.tfconfig import render_tf_config, tf_config_json
from ..errors import PiforgeError, ProfileError, TrainingError
from ..hashing import sha256_file
from .datasets import dataset_file
from .elastic import (BACKUP_DIR, Checkpoint, ElasticPolicy, answers_probe, attempt_params, clear_backup,
                      failed_hosts, fetch_checkpoint, next_lineup, ship_checkpoint, time_lost)
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
    Every override is checked (resolve_job) before anything is deployed or started. With
    ``max_restarts`` > 0 a failed attempt is followed by another on the survivors (elastic.py)."""
    job = resolve_job(cluster, job_name, overrides)
    policy = job.policy
    deadlines = _deadlines(overrides, policy)
    # One connection per host for the whole run: the Python check below and the launch share it.
    hosts = {name: open_host(cluster.host(name)) for name in job.hosts + policy.spares}
    try:
        ensure_deployed(cluster, job.hosts, overrides, say, provide_wheelhouse=provide_wheelhouse, opened=hosts)
        if policy.enabled and policy.spares:
            try:  # a spare that is down now is no reason not to start; a restart probes it first
                ensure_deployed(cluster, policy.spares, overrides, say, provide_wheelhouse=provide_wheelhouse,
                                opened=hosts)
            except PiforgeError as error:
                say(f"note: spares not ready ({error.message.splitlines()[0]}); a restart takes only spares "
                    "that answer with their Python")
        data = dataset_file(job.dataset, report=say) if job.dataset else None
        record = RunRecord.create(new_run_id(job.name, job.workers), runs_root)
        say(f"run {record.path.name}: job {job.name} on {job.workers} worker(s): {', '.join(job.hosts)}"
            + (f"; up to {policy.max_restarts} restart(s) on the survivors"
               + (f", spares {', '.join(policy.spares)}" if policy.spares else "") if policy.enabled else ""))
        record.snapshot(Path(cluster.path), "cluster.toml")
        record.update(job=job.name, run_id=record.path.name, hosts=list(job.hosts), workers=job.workers,
                      params=job.params, script=str(job.script), profile=cluster.profile, status="staging",
                      dataset=job.dataset, dataset_file=str(data) if data else None, started=time.time(),
                      elastic=dataclasses.asdict(policy), attempts=[])
        try:
            outcome, tf_configs, specs = _attempts(cluster, job, hosts, data, record, overrides, deadlines, say)
            if outcome.status == "succeeded":
                _fetch_model(specs, tf_configs, record, say)
        finally:
            record.close()
            LOCAL_ISOLATION.release(record.path.name, say)
    finally:
        close_all(hosts.values())
    return _conclude(job, record, outcome, say)


def _tf_configs(cluster: Any, job: TrainingJob) -> Dict[str, Optional[Dict[str, Any]]]:
    tf_configs: Dict[str, Optional[Dict[str, Any]]] = {name: None for name in job.hosts}
    if job.workers > 1:  # one worker = the single-host baseline, no cluster at all
        tf_configs.update(render_tf_config(cluster_for(cluster, job), job.name))
    return tf_configs


def _attempts(cluster: Any, job: TrainingJob, hosts: Dict[str, Any], data: Optional[Path], record: RunRecord,
              overrides: Mapping[str, str], deadlines: Deadlines,
              say: Say) -> Tuple[Outcome, Dict[str, Optional[Dict[str, Any]]], List[WorkerSpec]]:
    """Attempt after attempt until one succeeds, the user interrupts, or restarts run out."""
    policy: ElasticPolicy = job.policy
    members, pool = list(job.hosts), list(policy.spares)
    checkpoint: Optional[Checkpoint] = None
    attempts: List[Dict[str, Any]] = []

    def answers(name: str) -> bool:
        return answers_probe(hosts[name], overrides.get("python") or hosts[name].venv_python(cluster.profile))

    number = 0
    while True:
        number += 1
        record.attempt = number
        current = dataclasses.replace(job, hosts=tuple(members), params=attempt_params(
            policy, job.params, job.defaults, job.workers, len(members)))
        tf_configs = _tf_configs(cluster, current)
        for name, config in tf_configs.items():
            record.write_json(f"tf_config/{name}.json", config)
            if policy.enabled:
                record.write_json(f"tf_config/attempt-{number}/{name}.json", config)
        entry: Dict[str, Any] = {
            "attempt": number, "members": list(members), "tf_configs": tf_configs, "params": current.params,
            "resumed_from_epoch": checkpoint.epoch if checkpoint else 0,
            "checkpoint": None if checkpoint is None else {"from": checkpoint.source, "sha256": checkpoint.sha256},
            "started": time.time()}
        attempts.append(entry)
        record.update(attempts=attempts, status="staging")
        specs = _stage(current, hosts, tf_configs, data, record, overrides, cluster.profile, say,
                       checkpoint=checkpoint, fresh=number > 1 and checkpoint is None)
        record.update(status="running", isolation=LOCAL_ISOLATION.mode(record.path.name),
                      **({} if number > 1 else {"spawned": time.time()}))
        outcome = Supervisor(specs, record, deadlines).run()
        entry.update(status=outcome.status, cause=outcome.cause, failed_host=outcome.host,
                     ended=outcome.ended_at, ready_after=outcome.ready_after)
        _note_resume(record, attempts)
        record.update(attempts=attempts)
        if outcome.status != "failed" or number > policy.max_restarts:
            return outcome, tf_configs, specs
        # -- restart: who failed, the chief's backup, who runs next ----------------------
        failed = failed_hosts(outcome.host, members, answers)
        chief = chief_of(tf_configs)
        if chief not in failed or answers(chief):
            spec = next(s for s in specs if s.name == chief)
            fetched = fetch_checkpoint(hosts[chief], spec.cwd, record.path / "checkpoint.tar")
            checkpoint = fetched or checkpoint
        else:
            say(f"the chief {chief} does not answer: its backup is out of reach"
                + (f"; resuming from the copy of epoch {checkpoint.epoch}" if checkpoint else "; starting over"))
            if checkpoint is not None:  # the controller's copy goes to every host, its old source too
                checkpoint = dataclasses.replace(checkpoint, source="")
        entry.update(failed_hosts=failed, checkpoint_epoch=checkpoint.epoch if checkpoint else 0)
        try:
            lineup = next_lineup(members, failed, pool, answers, policy.min_workers)
        except TrainingError as error:
            outcome.cause = f"{error.message}; attempt {number} ended: {outcome.cause}"
            entry.update(cause=outcome.cause)
            record.update(attempts=attempts)
            return outcome, tf_configs, specs
        entry.update(replaced_by=lineup.joined, spares_not_answering=lineup.skipped)
        record.update(attempts=attempts)
        say(f"restart {number} of {policy.max_restarts}: {', '.join(failed) or outcome.host} failed "
            f"({outcome.cause.splitlines()[0].split('; its last lines:')[0]}); resuming from epoch {checkpoint.epoch if checkpoint else 0} "
            f"on {', '.join(lineup.members)}"
            + (f" (spare {', '.join(lineup.joined)} in)" if lineup.joined else ""))
        members, pool = lineup.members, lineup.pool


def _note_resume(record: RunRecord, attempts: List[Dict[str, Any]]) -> None:
    """Fill in what each restart cost, from the events (controller clock): the epoch the
    workers really resumed at, work redone since the last backup, time until the next step."""
    if len(attempts) < 2:
        return
    events = load_run(record.path)["events"]
    for before, after in zip(attempts, attempts[1:]):
        mine = [e for e in events if e.get("attempt") == before["attempt"]]
        theirs = [e for e in events if e.get("attempt") == after["attempt"]]
        checkpoints = [e["received"] for e in mine if e.get("kind") == "checkpoint"]
        first_steps = [e["received"] for e in theirs if e.get("kind") == "first_step"]
        resumed = [e["epoch"] for e in theirs if e.get("kind") in ("resumed", "fresh")]
        if resumed:
            after["resumed_from_epoch"] = min(resumed)
        if before.get("ended") is not None:
            before.update(time_lost(before["ended"], max(checkpoints) if checkpoints else None,
                                    before["started"], min(first_steps) if first_steps else None))


def _deadlines(overrides: Mapping[str, str], policy: ElasticPolicy = ElasticPolicy()) -> Deadlines:
    # A job that restarts from its backup loses nothing by being killed at once: keep the
    # TERM grace short, it is part of every recovery.
    base = Deadlines(term_grace=3.0) if policy.enabled else Deadlines()
    value = overrides.get("startup_timeout")
    if value is None:
        return base
    try:
        seconds = float(value)
    except ValueError:
        raise TrainingError(f"startup_timeout={value!r}: expected seconds") from None
    return dataclasses.replace(base, startup=seconds)


def _stage(job: TrainingJob, hosts: Dict[str, Any], tf_configs: Dict[str, Optional[Dict[str, Any]]],
           data: Optional[Path], record: RunRecord, overrides: Mapping[str, str], profile: str,
           say: Say, *, checkpoint: Optional[Checkpoint] = None, fresh: bool = False) -> List[WorkerSpec]:
    """Copy script, jobkit, extra files, data and the checkpoint to resume from (if any) to
    every host (in parallel); build the specs."""
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
        if checkpoint is not None and checkpoint.source != name:
            ship_checkpoint(host, job_dir, checkpoint)
        elif checkpoint is None and fresh:
            clear_backup(host, job_dir)
        env = dict(base_env, PIFORGE_MODEL_DIR=f"{job_dir}/model")
        if job.policy.enabled:  # a backup nobody restarts from is only cost (a Pi's SD card)
            env["PIFORGE_BACKUP_DIR"] = f"{job_dir}/{BACKUP_DIR}"
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
        + (f", the epoch-{checkpoint.epoch} checkpoint" if checkpoint else "")
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
    attempts = load_run(record.path).get("attempts") or []
    if len(attempts) > 1:
        say(f"{len(attempts) - 1} restart(s): " + "; ".join(
            f"attempt {a['attempt']} on {', '.join(a['members'])} from epoch {a['resumed_from_epoch']}"
            for a in attempts))
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
