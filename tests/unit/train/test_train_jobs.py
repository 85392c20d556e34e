"""Job resolution (cluster.toml params + command line), events, chief choice, report maths."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from build.cluster.config import load_cluster
from build.errors import ClusterConfigError, TrainingError, UsageError
from build.train.jobs import JOBKIT, JOBS_DIR, accepted_params, cluster_for, resolve_job, script_defaults
from build.train.launcher import chief_of
from build.train.records import RunRecord, find_run, load_run, parse_event
from build.train.report import throughput, write_report

CLUSTER = """
[cluster]
transport = "local"
[[hosts]]
name = "a"
tf_port = 30001
[[hosts]]
name = "b"
tf_port = 30002
[[hosts]]
name = "c"
tf_port = 30003
[jobs.mnist]
hosts = ["a", "b", "c"]
[jobs.mnist.params]
per_worker_batch = 2000
steps_per_epoch = 100
epochs = 20
[jobs.price]
hosts = ["a", "b"]
[jobs.price.params]
script = "price.py"
files = ["prices.csv"]
dataset = ""
window = 30
[jobs.nameless]
hosts = ["a"]
[jobs.open]
hosts = ["a"]
accepts = "*"
[jobs.open.params]
script = "price.py"
[jobs.declared]
hosts = ["a"]
accepts = ["window", "alpha"]
[jobs.declared.params]
script = "price.py"
"""


@pytest.fixture
def cluster(tmp_path: Path):
    (tmp_path / "price.py").write_text("print('hi')\n")
    (tmp_path / "prices.csv").write_text("1,2\n")
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER)
    return load_cluster(path)


def test_builtin_job_merges_aliases_and_overrides_in_order(cluster):
    job = resolve_job(cluster, "mnist", {"batch": "64", "epochs": "3", "workers": "2",
                                         "dataset": "fashion_mnist"})
    assert job.script == JOBS_DIR / "mnist.py" and job.files == (JOBKIT,)
    assert job.hosts == ("a", "b") and job.dataset == "fashion_mnist"
    assert job.params == {"steps": 100, "batch": "64", "epochs": "3"}
    assert job.script_argv() == ["steps=100", "batch=64", "epochs=3"]


def test_builtin_default_dataset(cluster):
    assert resolve_job(cluster, "mnist", {}).dataset == "mnist"


def test_custom_job_ships_its_script_and_files_relative_to_the_cluster_file(cluster, tmp_path: Path):
    job = resolve_job(cluster, "price", {"window": "7"})
    assert job.script == tmp_path / "price.py"
    assert job.files == (JOBKIT, tmp_path / "prices.csv")
    assert job.dataset is None and job.params == {"window": "7"}


def test_user_mistakes_are_clear(cluster):
    with pytest.raises(TrainingError, match=r"jobs.nameless.params: script: missing"):
        resolve_job(cluster, "nameless", {})
    with pytest.raises(TrainingError, match=r"workers=4: job 'mnist' has 3 host\(s\)"):
        resolve_job(cluster, "mnist", {"workers": "4"})
    with pytest.raises(TrainingError, match=r"workers='two'"):
        resolve_job(cluster, "mnist", {"workers": "two"})
    with pytest.raises(TrainingError, match=r"script: no such file: .*nope.py"):
        resolve_job(cluster, "price", {"script": "nope.py"})


def test_cluster_cut_to_the_workers_used(cluster):
    job = resolve_job(cluster, "mnist", {"workers": "2"})
    assert cluster_for(cluster, job).job("mnist").hosts == ("a", "b")
    assert cluster.job("mnist").hosts == ("a", "b", "c")


def test_parse_event():
    assert parse_event('PIFORGE_EVENT epoch {"epoch": 1, "loss": 0.5}') == {"kind": "epoch", "epoch": 1, "loss": 0.5}
    assert parse_event("Epoch 1/3") is None
    assert parse_event("PIFORGE_EVENT epoch {broken") is None


def test_chief_is_the_chief_task_else_worker_zero():
    workers = {"a": {"task": {"type": "worker", "index": 1}}, "b": {"task": {"type": "worker", "index": 0}}}
    assert chief_of(workers) == "b"
    assert chief_of(dict(workers, c={"task": {"type": "chief", "index": 0}})) == "c"
    assert chief_of({"solo": None}) == "solo"


def _fake_run(root: Path, name: str, workers: int, per_host_rate: float) -> Path:
    record = RunRecord.create(name, root)
    hosts = [f"h{i}" for i in range(workers)]
    record.update(job="mnist", run_id=record.path.name, workers=workers, hosts=hosts, status="succeeded",
                  test_accuracy=0.85, params={"batch": 64})
    for host in hosts:
        for epoch, rate in ((1, per_host_rate / 3), (2, per_host_rate), (3, per_host_rate)):
            record.event(host, {"kind": "epoch", "epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5 + epoch / 10,
                                "step_time": 64 / rate, "samples_per_second": rate, "peak_rss_mb": 900.0})
    return record.path


def test_throughput_ignores_the_tracing_epoch_and_sums_hosts(tmp_path: Path):
    run = load_run(_fake_run(tmp_path, "r1", 2, 900.0))
    assert throughput(run) == pytest.approx(1800.0)


def test_report_of_two_runs_has_plots_and_efficiency(tmp_path: Path):
    single = _fake_run(tmp_path, "20260101-000000-mnist-w1", 1, 1000.0)
    double = _fake_run(tmp_path, "20260101-000100-mnist-w2", 2, 900.0)
    target = write_report(f"{single.name},{double.name}", root=tmp_path)
    text = (target / "report.md").read_text()
    assert "Scaling efficiency: 0.90" in text and "| 0.8500 |" in text
    for name in ("history.png", "step_time.png", "scaling.png"):
        assert (target / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert find_run("latest", tmp_path) == double
    with pytest.raises(TrainingError, match="no run matching 'zzz'"):
        find_run("zzz", tmp_path)
    assert json.loads((double / "run.json").read_text())["workers"] == 2


def test_hosts_without_the_profile_python_are_found(tmp_path: Path):
    from build.train.environment import ensure_deployed, hosts_without_python

    ready, empty = tmp_path / "ready", tmp_path / "empty"
    python = ready / "venvs" / "local" / "current" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    path = tmp_path / "cluster.toml"
    path.write_text(f'[cluster]\nprofile = "local"\n[[hosts]]\nname = "a"\ntf_port = 30001\nhome = "{ready}"\n'
                    f'[[hosts]]\nname = "b"\ntf_port = 30002\nhome = "{empty}"\n')
    cluster = load_cluster(path)
    assert hosts_without_python(cluster, ["a", "b"], {}) == ["b"]
    assert hosts_without_python(cluster, ["a", "b"], {"python": str(python)}) == []
    said = []
    ensure_deployed(cluster, ["a", "b"], {"python": str(python)}, said.append)  # python=PATH: no deploy
    assert said == []

    # The launcher's own connections are asked, not new ones (one ssh per host per run).
    from build.cluster.hosts.local import LocalHost

    asked = []

    class Counting(LocalHost):
        def run(self, argv, **kwargs):  # type: ignore[no-untyped-def,override]
            asked.append(self.name)
            return super().run(argv, **kwargs)

    opened = {spec.name: Counting(spec) for spec in cluster.hosts}
    assert hosts_without_python(cluster, ["a", "b"], {}, opened) == ["b"]
    assert sorted(asked) == ["a", "b"]


def test_a_misspelt_hyperparameter_is_refused_naming_what_the_job_takes(cluster):
    with pytest.raises(UsageError) as error:
        resolve_job(cluster, "mnist", {"epoch": "3"})
    message = str(error.value)
    assert "epoch=3" in message and "epochs" in message and "steps_per_epoch" in message


def test_builtin_jobs_take_their_script_defaults_and_the_long_names():
    assert {"epochs", "steps", "batch", "optimizer", "lr"} <= set(script_defaults(JOBS_DIR / "mnist.py"))
    assert script_defaults(JOBS_DIR / "catsdogs.py")["image_size"] == 64


def test_custom_jobs_take_their_params_and_what_they_declare(cluster):
    assert {"window", "script", "workers"} <= accepted_params(cluster, "price")
    assert "alpha" in accepted_params(cluster, "declared")
    assert accepted_params(cluster, "open") is None     # accepts = "*": pass-through
    assert resolve_job(cluster, "open", {"anything": "1"}).params == {"anything": "1"}
    with pytest.raises(UsageError, match="beta=2"):
        resolve_job(cluster, "declared", {"beta": "2"})


def test_accepts_must_be_names_or_a_star(tmp_path: Path):
    path = tmp_path / "cluster.toml"
    path.write_text('[[hosts]]\nname = "a"\n[jobs.x]\naccepts = ["ok", "not ok"]\n')
    with pytest.raises(ClusterConfigError, match=r"cluster.toml:4: jobs.x.accepts"):
        load_cluster(path)


def test_a_value_of_the_wrong_type_is_refused_before_the_deploy(cluster):
    with pytest.raises(UsageError, match=r"epochs=three: job 'mnist' expects int"):
        resolve_job(cluster, "mnist", {"epochs": "three"})
    with pytest.raises(UsageError, match=r"learning_rate=fast: job 'mnist' expects float"):
        resolve_job(cluster, "mnist", {"learning_rate": "fast"})
    assert resolve_job(cluster, "mnist", {"lr": "0.01"}).params["lr"] == "0.01"


def test_the_jobkit_sets_a_fast_grpc_reconnect_unless_the_user_chose_one():
    """The strategy's first barrier waits on gRPC's reconnect backoff; see the jobkit."""
    import os
    import subprocess
    import sys

    code = "import os, piforge_jobkit; print(os.environ['TF_GRPC_DEFAULT_OPTIONS'])"
    env = {k: v for k, v in os.environ.items() if k != "TF_GRPC_DEFAULT_OPTIONS"}
    shown = subprocess.run([sys.executable, "-c", code], cwd=JOBS_DIR, env=env, capture_output=True,
                           text=True, check=True).stdout
    assert "grpc.initial_reconnect_backoff_ms=100" in shown   # TF 2.2 refuses < 100
    env["TF_GRPC_DEFAULT_OPTIONS"] = "grpc.max_reconnect_backoff_ms=5000"
    shown = subprocess.run([sys.executable, "-c", code], cwd=JOBS_DIR, env=env, capture_output=True,
                           text=True, check=True).stdout
    assert shown.strip() == "grpc.max_reconnect_backoff_ms=5000"


def test_bytes_per_pack_comes_from_the_environment(monkeypatch):
    """PIFORGE_BYTES_PER_PACK -> CommunicationOptions(bytes_per_pack=...); a fake tf module
    here, the real one in bench/netns_scaling.py."""
    import sys
    import types

    import pytest

    monkeypatch.syspath_prepend(str(JOBS_DIR))
    import piforge_jobkit as kit

    made = []
    fake = types.SimpleNamespace(distribute=types.SimpleNamespace(experimental=types.SimpleNamespace(
        CommunicationOptions=lambda **kw: made.append(kw) or kw)))
    monkeypatch.delenv("PIFORGE_BYTES_PER_PACK", raising=False)
    assert kit.communication_options(fake) == {}
    monkeypatch.setenv("PIFORGE_BYTES_PER_PACK", "4000000")
    assert kit.communication_options(fake) == {"bytes_per_pack": 4000000}
    monkeypatch.setenv("PIFORGE_BYTES_PER_PACK", "4MB")
    with pytest.raises(SystemExit, match="PIFORGE_BYTES_PER_PACK='4MB'"):
        kit.communication_options(fake)
    assert "piforge_jobkit" in sys.modules


def test_allreduce_dtype_comes_from_the_environment(monkeypatch):
    """PIFORGE_ALLREDUCE_DTYPE: float32 (or unset) leaves the optimizer alone, a typo is
    refused naming the variable; the float16 path runs for real in the arm64 training test
    (the rpios profile sets it) and in bench/netns_scaling.py."""
    import pytest

    monkeypatch.syspath_prepend(str(JOBS_DIR))
    import piforge_jobkit as kit

    optimizer = object()
    monkeypatch.delenv("PIFORGE_ALLREDUCE_DTYPE", raising=False)
    assert kit.half_precision_allreduce(optimizer) is optimizer
    monkeypatch.setenv("PIFORGE_ALLREDUCE_DTYPE", "float32")
    assert kit.half_precision_allreduce(optimizer) is optimizer
    monkeypatch.setenv("PIFORGE_ALLREDUCE_DTYPE", "fp16")
    with pytest.raises(SystemExit, match="PIFORGE_ALLREDUCE_DTYPE='fp16': expected float16 or float32"):
        kit.half_precision_allreduce(optimizer)
