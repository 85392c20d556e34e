"""Elastic training's pure decisions: job options in cluster.toml and on the command line,
the batch for each worker count, who fails, who runs next, what a restart cost; and the
checkpoint's journey between two real local hosts (files, tar, sha256sum).
The real TensorFlow path is tests/integration/train/test_train_elastic.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from build.cluster.config import load_cluster
from build.cluster.hosts import open_host
from build.errors import ClusterConfigError, TrainingError, UsageError
from build.train.elastic import (ElasticPolicy, attempt_params, failed_hosts, fetch_checkpoint, next_lineup,
                                 ship_checkpoint, time_lost)
from build.train.jobs import resolve_job
from build.train.report import restart_lines

HOSTS = "".join(f'[[hosts]]\nname = "{n}"\ntf_port = {30100 + i}\n' for i, n in enumerate("abcde"))


def write(tmp_path: Path, job: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\ntransport = "local"\n' + HOSTS + job)
    return path


def test_job_options_parse_with_defaults(tmp_path: Path):
    cluster = load_cluster(write(tmp_path, '[jobs.mnist]\nhosts = ["a", "b", "c"]\n'
                                           'max_restarts = 2\nmin_workers = 2\nspares = ["d"]\n'))
    spec = cluster.job("mnist")
    assert (spec.max_restarts, spec.min_workers, spec.spares, spec.keep) == (2, 2, ("d",), "global_batch")
    plain = load_cluster(write(tmp_path, '[jobs.mnist]\nhosts = ["a"]\n')).job("mnist")
    assert (plain.max_restarts, plain.min_workers, plain.spares) == (0, 1, ())


@pytest.mark.parametrize("job, expected", [
    ('hosts = ["a", "b", "c"]\nmax_restarts = 1\nmin_workers = 2\n[jobs.mnist.params]\nbatch = 65\n',
     'cluster.toml:23: jobs.mnist.params.batch: keep = "global_batch": the global batch 195 (65 x 3 workers) '
     'does not divide by 2 worker(s)'),
    ('hosts = ["a", "b"]\nspares = ["a"]\n', "jobs.mnist.spares: host 'a' is listed twice"),
    ('hosts = ["a", "b"]\nspares = ["zz"]\n', "jobs.mnist.spares: unknown host 'zz'"),
    ('hosts = ["a", "b"]\nmin_workers = 3\n', "jobs.mnist.min_workers: 3 is more than the job's 2 host(s)"),
    ('hosts = ["a", "b"]\nkeep = "lr"\n', "jobs.mnist.keep: expected one of global_batch, per_worker_batch"),
    ('hosts = ["a", "b"]\nmax_restarts = -1\n', "jobs.mnist.max_restarts: expected a whole number >= 0"),
])
def test_bad_job_options_are_refused_with_file_and_line(tmp_path: Path, job: str, expected: str):
    with pytest.raises(ClusterConfigError) as error:
        load_cluster(write(tmp_path, "[jobs.mnist]\n" + job))
    assert expected in str(error.value)


def test_batch_that_divides_or_per_worker_batch_loads(tmp_path: Path):
    load_cluster(write(tmp_path, '[jobs.mnist]\nhosts = ["a", "b", "c"]\nmax_restarts = 1\nmin_workers = 2\n'
                                 '[jobs.mnist.params]\nbatch = 64\n'))
    load_cluster(write(tmp_path, '[jobs.mnist]\nhosts = ["a", "b", "c"]\nmax_restarts = 1\n'
                                 'keep = "per_worker_batch"\n[jobs.mnist.params]\nbatch = 65\n'))


def test_command_line_options_and_the_scripts_default_batch(tmp_path: Path):
    cluster = load_cluster(write(tmp_path, '[jobs.mnist]\nhosts = ["a", "b", "c"]\n'))
    job = resolve_job(cluster, "mnist", {"max_restarts": "2", "spares": "d,e", "min_workers": "2"})
    assert job.policy == ElasticPolicy(max_restarts=2, min_workers=2, spares=("d", "e"))
    assert "max_restarts" not in job.params  # launcher options never reach the script
    # mnist's default batch is 2000: 6000 divides by 2 and 3 workers, 2001 x 3 does not by 2
    with pytest.raises(UsageError, match=r"batch=2001: .*does not divide by 2 worker"):
        resolve_job(cluster, "mnist", {"max_restarts": "1", "min_workers": "2", "batch": "2001"})
    with pytest.raises(UsageError, match="min_workers=4: job 'mnist' runs on 3 host"):
        resolve_job(cluster, "mnist", {"min_workers": "4"})
    with pytest.raises(UsageError, match="spares: a already"):
        resolve_job(cluster, "mnist", {"spares": "a"})
    with pytest.raises(UsageError, match="keep=x"):
        resolve_job(cluster, "mnist", {"keep": "x"})


def test_attempt_params_keep_the_global_batch_or_the_per_worker_one():
    policy = ElasticPolicy(max_restarts=1)
    assert attempt_params(policy, {"batch": "64", "epochs": 5}, {}, 3, 2) == {"batch": 96, "epochs": 5}
    assert attempt_params(policy, {"epochs": 5}, {"batch": 2000}, 3, 2) == {"epochs": 5, "batch": 3000}
    assert attempt_params(policy, {"batch": 64}, {}, 3, 3) == {"batch": 64}
    per_worker = ElasticPolicy(max_restarts=1, keep="per_worker_batch")
    assert attempt_params(per_worker, {"batch": 64}, {}, 3, 2) == {"batch": 64}


def test_failed_hosts_are_the_silent_ones_else_the_blamed_one():
    assert failed_hosts("b", ["a", "b", "c"], lambda name: True) == ["b"]
    # link down on c: a's TensorFlow failed first, but c is the host that is gone
    assert failed_hosts("a", ["a", "b", "c"], lambda name: name != "c") == ["c"]
    assert failed_hosts(None, ["a", "b"], lambda name: True) == []


def test_next_lineup_takes_answering_spares_and_parks_failed_hosts():
    lineup = next_lineup(["a", "b", "c"], ["b"], ["d", "e"], lambda name: name != "d", min_workers=2)
    assert lineup.members == ["a", "c", "e"] and lineup.joined == ["e"]
    assert lineup.skipped == ["d"] and lineup.pool == ["d", "b"]   # b may come back later, if it answers
    survivors = next_lineup(["a", "b", "c"], ["b"], [], lambda name: True, min_workers=2)
    assert survivors.members == ["a", "c"] and survivors.pool == ["b"]
    # the host that just failed is not taken back by the restart it caused
    again = next_lineup(["a", "c"], ["c"], ["b", "c"], lambda name: True, min_workers=2)
    assert again.members == ["a", "b"] and again.pool == ["c"]


def test_too_few_workers_fails_saying_so():
    with pytest.raises(TrainingError, match=r"too few workers to go on: 1 left \(a\) after b failed, "
                                            r"min_workers = 2; spares that did not answer: d"):
        next_lineup(["a", "b"], ["b"], ["d"], lambda name: name != "d", min_workers=2)


def test_time_lost_is_redone_work_plus_recovery():
    assert time_lost(100.0, 96.0, 50.0, 112.5) == {
        "work_lost_seconds": 4.0, "recovery_seconds": 12.5, "time_lost_seconds": 16.5}
    assert time_lost(100.0, None, 50.0, None)["work_lost_seconds"] == 50.0  # no backup yet: all of it


def test_report_states_time_lost_per_restart():
    run = {"attempts": [
        {"attempt": 1, "members": ["a", "b"], "failed_hosts": ["b"], "cause": "worker on b exited with code 1",
         "time_lost_seconds": 16.5, "work_lost_seconds": 4.0, "recovery_seconds": 12.5},
        {"attempt": 2, "members": ["a"], "resumed_from_epoch": 2}]}
    (line,) = restart_lines(run)
    assert "restart 1: b failed (worker on b exited with code 1); attempt 2 on a resumed from epoch 2" in line
    assert "time lost 16.5 s (work redone 4.0 s + recovery 12.5 s)" in line


def test_checkpoint_travels_between_hosts_verified(tmp_path: Path):
    cluster = load_cluster(write(tmp_path, '[jobs.mnist]\nhosts = ["a", "b"]\n'))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    source_dir, target_dir = tmp_path / "a" / "job", tmp_path / "b" / "job"
    (source_dir / "backup" / "chief").mkdir(parents=True)
    assert fetch_checkpoint(open_host(cluster.host("a")), str(source_dir), tmp_path / "c.tar") is None
    (source_dir / "backup" / "chief" / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
    (source_dir / "backup" / "chief" / "ckpt-3.index").write_bytes(b"\0index")
    (source_dir / "backup" / "workertemp_1").mkdir()  # a non-chief's scratch: not shipped
    (source_dir / "backup" / "piforge-epoch.json").write_text(json.dumps({"epoch": 3}))
    checkpoint = fetch_checkpoint(open_host(cluster.host("a")), str(source_dir), tmp_path / "c.tar")
    assert checkpoint is not None and checkpoint.epoch == 3 and checkpoint.source == "a"
    (target_dir / "backup" / "chief").mkdir(parents=True)
    (target_dir / "backup" / "chief" / "stale").write_text("old")
    ship_checkpoint(open_host(cluster.host("b")), str(target_dir), checkpoint)
    shipped = sorted(p.relative_to(target_dir / "backup").as_posix() for p in (target_dir / "backup").rglob("*"))
    assert shipped == ["chief", "chief/checkpoint", "chief/ckpt-3.index", "piforge-epoch.json"]
    assert not (target_dir / "checkpoint.tar").exists()
    (tmp_path / "c.tar").write_bytes(b"tampered")
    with pytest.raises(TrainingError, match="arrived with sha256"):
        ship_checkpoint(open_host(cluster.host("b")), str(target_dir), checkpoint)


def test_report_of_a_restarted_run_marks_the_restart(tmp_path: Path):
    from build.train.report import write_report

    run = tmp_path / "runs" / "20261202-000000-mnist-w3"
    run.mkdir(parents=True)
    attempts = [{"attempt": 1, "members": ["a", "b", "c"], "failed_hosts": ["b"], "status": "failed",
                 "cause": "worker on b killed by signal 9 (SIGKILL)", "time_lost_seconds": 11.0,
                 "work_lost_seconds": 1.0, "recovery_seconds": 10.0},
                {"attempt": 2, "members": ["a", "c"], "resumed_from_epoch": 1, "status": "succeeded"}]
    (run / "run.json").write_text(json.dumps({"job": "mnist", "run_id": run.name, "hosts": ["a", "b", "c"],
                                              "workers": 3, "status": "succeeded", "attempts": attempts}))
    rows = [("a", 1, 1), ("b", 1, 1), ("c", 1, 1), ("a", 2, 2), ("c", 2, 2), ("a", 2, 3), ("c", 2, 3)]
    (run / "events.jsonl").write_text("".join(json.dumps(
        {"kind": "epoch", "host": host, "attempt": attempt, "epoch": epoch, "loss": 1.0 / epoch,
         "accuracy": 0.5 + epoch / 10, "step_time": 0.1, "samples_per_second": 640.0, "seconds": 4.0}) + "\n"
        for host, attempt, epoch in rows))
    target = write_report(str(run), tmp_path / "runs")
    text = (target / "report.md").read_text()
    assert "restart 1: b failed (worker on b killed by signal 9 (SIGKILL)); attempt 2 on a, c" in text
    assert "time lost 11.0 s" in text and (target / "history.png").is_file()
