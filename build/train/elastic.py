"""Elastic training: when a worker dies, restart the job on the survivors (plus spares).

MultiWorkerMirroredStrategy cannot lose a worker and go on (the RFC for an elastic one
was closed, tensorflow/community#249); TensorFlow's answer is BackupAndRestore plus "the
user is responsible to bring jobs back". piforge owns TF_CONFIG, the hosts and the
launch, so it brings the job back itself (build/train/launcher.py runs the attempts):

- the job scripts back up every epoch (jobs/piforge_jobkit.py, ``$PIFORGE_BACKUP_DIR``);
- after a failure: which hosts failed (the one the supervisor named, or every member that
  no longer answers a probe), who runs next (survivors, each failed host replaced by a
  spare that answers), the per-worker batch for the new count (``keep``);
- the chief's latest complete backup goes to every host of the next attempt, by sha256.

The pure decisions here (policy, batch, members) have unit tests; the moving of files is
tested with real hosts in tests/integration/train/test_train_elastic.py.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..cluster.config import BATCH_PARAMS, KEEPS, batch_problem, indivisible_worker_counts
from ..errors import HostError, TrainingError, UsageError
from ..hashing import sha256_file

# Command-line variables of the elastic policy (also fields of [jobs.NAME]).
POLICY_KEYS = ("max_restarts", "min_workers", "spares", "keep")
EPOCH_MARK = "piforge-epoch.json"   # as jobs/piforge_jobkit.py writes it
BACKUP_DIR = "backup"               # under each host's job directory


@dataclass(frozen=True)
class ElasticPolicy:
    max_restarts: int = 0          # 0: today's fail-fast
    min_workers: int = 1
    spares: Tuple[str, ...] = ()
    keep: str = "global_batch"

    @property
    def enabled(self) -> bool:
        return self.max_restarts > 0


def policy_for(cluster: Any, job_name: str, overrides: Mapping[str, str]) -> ElasticPolicy:
    """The job's policy from cluster.toml, with the command line's values on top."""
    spec = cluster.job(job_name)
    values: Dict[str, Any] = {"max_restarts": spec.max_restarts, "min_workers": spec.min_workers,
                              "spares": tuple(spec.spares), "keep": spec.keep}
    for key in ("max_restarts", "min_workers"):
        if key in overrides:
            text = str(overrides[key]).strip()
            if not text.isdigit() or (key == "min_workers" and int(text) < 1):
                raise UsageError(f"{key}={overrides[key]}: expected a whole number"
                                 + (" >= 1" if key == "min_workers" else ""))
            values[key] = int(text)
    if "spares" in overrides:
        values["spares"] = tuple(n.strip() for n in str(overrides["spares"]).split(",") if n.strip())
        for name in values["spares"]:
            cluster.host(name)  # a ClusterConfigError naming the hosts if unknown
    if "keep" in overrides:
        if overrides["keep"] not in KEEPS:
            raise UsageError(f"keep={overrides['keep']}: expected one of {', '.join(KEEPS)}")
        values["keep"] = overrides["keep"]
    return ElasticPolicy(**values)


def check_policy(policy: ElasticPolicy, job_name: str, hosts: Sequence[str], params: Mapping[str, Any],
                 defaults: Mapping[str, Any]) -> None:
    """What the load-time checks cannot see: command-line values, ``workers=N``, the
    script's default batch. UsageError before anything is deployed."""
    if policy.min_workers > len(hosts):
        raise UsageError(f"min_workers={policy.min_workers}: job {job_name!r} runs on {len(hosts)} host(s)")
    taken = sorted(set(policy.spares) & set(hosts))
    if taken:
        raise UsageError(f"spares: {', '.join(taken)} already run(s) job {job_name!r}; a spare is another host")
    if not policy.enabled or policy.keep != "global_batch":
        return
    key, batch = batch_param(params, defaults)
    if key is None:
        return
    bad = indivisible_worker_counts(batch * len(hosts), policy.min_workers, len(hosts))
    if bad:
        raise UsageError(f"job {job_name!r}: {key}={batch}: " + batch_problem(batch, len(hosts), bad,
                                                                             policy.min_workers))


def batch_param(params: Mapping[str, Any], defaults: Mapping[str, Any] = {}) -> Tuple[Optional[str], int]:
    """(name, value) of the per-worker batch the job is given, or its script's default."""
    for source in (params, defaults):
        for key in BATCH_PARAMS:
            if key in source:
                try:
                    return key, int(source[key])
                except (TypeError, ValueError):
                    return None, 0
    return None, 0


def attempt_params(policy: ElasticPolicy, params: Mapping[str, Any], defaults: Mapping[str, Any],
                   first_workers: int, workers: int) -> Dict[str, Any]:
    """The script's parameters for an attempt on ``workers`` hosts: with keep =
    "global_batch", the per-worker batch that keeps the first attempt's global batch."""
    result = dict(params)
    if policy.keep != "global_batch" or workers == first_workers:
        return result
    key, batch = batch_param(params, defaults)
    if key is not None:
        result[key] = batch * first_workers // workers
    return result


def failed_hosts(blamed: Optional[str], members: Sequence[str], answers: Callable[[str], bool]) -> List[str]:
    """The hosts to drop: every member that no longer answers (its link is down, it is
    gone), else the one the supervisor blamed (a worker that exited or was killed). When
    a link goes down, a peer's TensorFlow may fail first: it is not dropped if it answers."""
    silent = [name for name in members if not answers(name)]
    if silent:
        return silent
    return [blamed] if blamed is not None and blamed in members else []


@dataclass
class Lineup:
    members: List[str]
    joined: List[str] = field(default_factory=list)     # spares taken in
    pool: List[str] = field(default_factory=list)       # spares left, in the order they are tried
    skipped: List[str] = field(default_factory=list)    # spares that did not answer


def next_lineup(members: Sequence[str], failed: Sequence[str], pool: Sequence[str],
                answers: Callable[[str], bool], min_workers: int) -> Lineup:
    """Survivors in their order, then one spare per failed host (from ``pool``, the first
    that answer a probe). The failed hosts go to the end of the pool: a later restart may
    take one back, if it answers then. TrainingError if fewer than ``min_workers`` remain."""
    survivors = [name for name in members if name not in failed]
    lineup = Lineup(members=survivors)
    rest = [name for name in pool if name not in failed]
    wanted = len(members) - len(survivors)
    for name in rest:
        if wanted and answers(name):
            lineup.members.append(name)
            lineup.joined.append(name)
            wanted -= 1
        else:
            if wanted:
                lineup.skipped.append(name)
            lineup.pool.append(name)
    lineup.pool += [name for name in failed if name not in lineup.pool]
    if len(lineup.members) < min_workers:
        spares = (f"; spares that did not answer: {', '.join(lineup.skipped)}" if lineup.skipped
                  else "; no spare left")
        raise TrainingError(f"too few workers to go on: {len(lineup.members)} left "
                            f"({', '.join(lineup.members) or 'none'}) after {', '.join(failed)} failed, "
                            f"min_workers = {min_workers}{spares}")
    return lineup


# -- the checkpoint between attempts -------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """The chief's latest complete backup, held by the controller as one tar file."""

    archive: Path
    sha256: str
    epoch: int          # epochs it holds
    source: str         # host it came from


def fetch_checkpoint(host: Any, job_dir: str, target: Path) -> Optional[Checkpoint]:
    """Copy ``host``'s backup (the chief's) to ``target``; None if it has none yet."""
    backup = f"{job_dir}/{BACKUP_DIR}"
    mark = host.run(["cat", f"{backup}/{EPOCH_MARK}"], check=False, timeout=20)
    if not mark.ok or not host.run(["test", "-f", f"{backup}/chief/checkpoint"], check=False, timeout=20).ok:
        return None
    epoch = int(json.loads(mark.stdout)["epoch"])
    remote = f"{job_dir}/checkpoint.tar"
    host.run(["tar", "-C", backup, "-cf", remote, "chief", EPOCH_MARK], timeout=300)
    try:
        host.get(remote, target)
        digest = sha256_file(target)
        said = host.run(["sha256sum", remote], timeout=120).stdout.split()[:1]
        if said != [digest]:
            raise TrainingError(f"{host.name}: checkpoint changed on the way: sha256 {said[:1]} there, "
                                f"{digest} here")
    finally:
        host.run(["rm", "-f", remote], check=False, timeout=30)
    return Checkpoint(archive=target, sha256=digest, epoch=epoch, source=host.name)


def ship_checkpoint(host: Any, job_dir: str, checkpoint: Checkpoint) -> None:
    """Put the checkpoint in ``host``'s backup directory (replacing any), checked by sha256."""
    backup = f"{job_dir}/{BACKUP_DIR}"
    remote = f"{job_dir}/checkpoint.tar"
    host.run(["mkdir", "-p", job_dir], timeout=30)
    host.put(checkpoint.archive, remote)
    said = host.run(["sha256sum", remote], timeout=120).stdout.split()[:1]
    if said != [checkpoint.sha256]:
        raise TrainingError(f"{host.name}: the checkpoint arrived with sha256 {said[:1]}, "
                            f"expected {checkpoint.sha256}")
    script = (f"rm -rf {shlex.quote(backup)} && mkdir -p {shlex.quote(backup)} && "
              f"tar -C {shlex.quote(backup)} -xf {shlex.quote(remote)} && rm -f {shlex.quote(remote)}")
    host.run(["sh", "-c", script], timeout=300)


def clear_backup(host: Any, job_dir: str) -> None:
    """A fresh attempt without a checkpoint must not resume from a stale one."""
    host.run(["rm", "-rf", f"{job_dir}/{BACKUP_DIR}"], check=False, timeout=30)


def answers_probe(host: Any, python: str, timeout: float = 10.0) -> bool:
    """cluster:check's first question, quickly: does the host run a command and still have
    the job's Python? (A failed host is taken back only if it does.)"""
    try:
        return bool(host.run(["test", "-x", python], check=False, timeout=timeout).ok)
    except HostError:
        return False


def time_lost(failed_at: float, last_checkpoint_at: Optional[float], attempt_started: float,
              next_first_step_at: Optional[float]) -> Dict[str, Optional[float]]:
    """Seconds a restart cost: the work since the last backup (redone) and the recovery
    (from the failure to the first step of the next attempt)."""
    redone = failed_at - (last_checkpoint_at if last_checkpoint_at is not None else attempt_started)
    recovery = None if next_first_step_at is None else next_first_step_at - failed_at
    total = None if recovery is None else redone + recovery
    return {"work_lost_seconds": round(max(0.0, redone), 2),
            "recovery_seconds": None if recovery is None else round(recovery, 2),
            "time_lost_seconds": None if total is None else round(total, 2)}
