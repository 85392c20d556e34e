"""cluster.toml validation: every user mistake names file, line, field and problem."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from build.cluster.config import DEFAULT_CLUSTER_FILE, load_cluster
from build.errors import ClusterConfigError

HOSTS = """
[cluster]
transport = "ssh"
user = "pi"
profile = "rpios-bookworm-py311"

[[hosts]]
name = "pi01"
address = "192.168.1.101"

[[hosts]]
name = "pi02"
address = "192.168.1.102"
tf_port = 2222
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> ClusterConfigError:
    with pytest.raises(ClusterConfigError) as caught:
        load_cluster(write(tmp_path, text))
    return caught.value


def last_line_with(text: str, needle: str) -> int:
    """The error points at the last line containing ``needle`` (the offending one)."""
    numbers = [n for n, line in enumerate(textwrap.dedent(text).splitlines(), start=1) if needle in line]
    assert numbers, needle
    return numbers[-1]


def test_default_cluster_is_two_local_hosts() -> None:
    cluster = load_cluster(DEFAULT_CLUSTER_FILE)
    assert [h.transport for h in cluster.hosts] == ["local", "local"]
    assert cluster.profile == "local"
    assert "mnist" in cluster.jobs


def test_defaults_and_overrides(tmp_path: Path) -> None:
    text = HOSTS + '\n[[hosts]]\nname = "pi03"\naddress = "pi03.lan"\nuser = "admin"\nssh_port = 2200\n'
    cluster = load_cluster(write(tmp_path, text))
    pi01, pi02, pi03 = cluster.hosts
    assert (pi01.user, pi01.ssh_port, pi01.tf_port) == ("pi", 22, 12345)
    assert pi02.tf_port == 2222
    assert (pi03.user, pi03.ssh_port, pi03.tf_port) == ("admin", 2200, 12347)
    assert cluster.profile == "rpios-bookworm-py311"


def test_job_defaults_to_every_host_as_workers(tmp_path: Path) -> None:
    cluster = load_cluster(write(tmp_path, HOSTS + "\n[jobs.mnist]\n[jobs.mnist.params]\nepochs = 3\n"))
    job = cluster.job("mnist")
    assert job.hosts == ("pi01", "pi02")
    assert job.strategy == "multi_worker_mirrored"
    assert job.role_of("pi01") == "worker"
    assert job.params == {"epochs": 3}


CASES = [
    ("unknown top-level key", "colour = 1\n" + HOSTS, "colour =", "colour", "unknown field"),
    ("unknown cluster key", HOSTS.replace('user = "pi"', 'usr = "pi"'), "usr =", "cluster.usr", "unknown field"),
    ("unknown host key", HOSTS.replace('tf_port = 2222', 'tfport = 2222'), "tfport", "hosts.1.tfport", "unknown field"),
    ("duplicate name", HOSTS.replace('name = "pi02"', 'name = "pi01"'), 'name = "pi01"',
     "hosts.1.name", "duplicate host name 'pi01'"),
    ("bad port", HOSTS.replace("2222", "70000"), "70000", "hosts.1.tf_port", "port number 1-65535"),
    ("port zero", HOSTS.replace("2222", "0"), "tf_port = 0", "hosts.1.tf_port", "port number"),
    ("port as string", HOSTS.replace("2222", '"2222"'), "tf_port", "hosts.1.tf_port", "port number"),
    ("bad transport", HOSTS.replace('"ssh"', '"telnet"'), "transport", "cluster.transport", "local, ssh"),
    ("missing name", HOSTS.replace('name = "pi02"\n', ""), "[[hosts]]", "hosts.1.name", "needs a name"),
    ("missing address over ssh", HOSTS.replace('address = "192.168.1.102"\n', ""), "[[hosts]]",
     "hosts.1.address", "needs an address"),
    ("hostile address", HOSTS.replace('"192.168.1.102"', '"x; rm -rf /"'), "rm -rf", "hosts.1.address",
     "host name or IP"),
    ("option-like address", HOSTS.replace('"192.168.1.102"', '"-oProxyCommand=x"'), "ProxyCommand",
     "hosts.1.address", "host name or IP"),
    ("hostile name", HOSTS.replace('"pi02"', '"$(reboot)"'), "reboot", "hosts.1.name", "letters, digits"),
    ("duplicate endpoint", HOSTS.replace('"192.168.1.102"\ntf_port = 2222', '"192.168.1.101"\ntf_port = 12345'),
     "tf_port = 12345", "hosts.1.tf_port", "already used by host 'pi01'"),
    ("no hosts", "[cluster]\nprofile = \"local\"\n", None, "hosts", "at least one"),
    ("unknown host in job", HOSTS + '[jobs.mnist]\nhosts = ["pi01", "pi09"]\n', "hosts = [", "jobs.mnist.hosts",
     "unknown host 'pi09'"),
    ("host twice in job", HOSTS + '[jobs.mnist]\nhosts = ["pi01", "pi01"]\n', "hosts = [", "jobs.mnist.hosts",
     "listed twice"),
    ("unknown job key", HOSTS + '[jobs.mnist]\nworkers = 2\n', "workers", "jobs.mnist.workers", "unknown field"),
    ("second chief", HOSTS + '[jobs.mnist]\nroles = { pi01 = "chief", pi02 = "chief" }\n', "roles",
     "jobs.mnist.roles", "at most one chief"),
    ("bad role", HOSTS + '[jobs.mnist]\nroles = { pi01 = "boss" }\n', "roles", "jobs.mnist.roles.pi01",
     "chief, worker, ps, evaluator"),
    ("role for host outside job", HOSTS + '[jobs.mnist]\nhosts = ["pi01"]\nroles = { pi02 = "chief" }\n', "roles",
     "jobs.mnist.roles.pi02", "not in this job"),
    ("ps without chief", HOSTS + '[jobs.ps]\nroles = { pi01 = "ps" }\n', "roles", "jobs.ps.roles",
     "needs a chief (missing)"),
    ("ps strategy without ps", HOSTS + '[jobs.ps]\nstrategy = "parameter_server"\nroles = { pi01 = "chief" }\n',
     "roles", "jobs.ps.roles", "at least one ps"),
    ("ps under mirrored", HOSTS + '[jobs.ps]\nstrategy = "multi_worker_mirrored"\nroles = { pi01 = "ps" }\n',
     "roles", "jobs.ps.roles", "parameter_server"),
    ("bad strategy", HOSTS + '[jobs.ps]\nstrategy = "horovod"\n', "strategy", "jobs.ps.strategy", "expected one of"),
    ("loopback over ssh", HOSTS.replace('"192.168.1.102"', '"127.0.0.1"') + "[jobs.mnist]\n", "[jobs.mnist]",
     "jobs.mnist.hosts", "loopback"),
    ("localhost over ssh", HOSTS.replace('"192.168.1.102"', '"localhost"') + "[jobs.mnist]\n", "[jobs.mnist]",
     "jobs.mnist.hosts", "loopback"),
    ("ssh without user", HOSTS.replace('user = "pi"\n', ""), 6, "hosts.0.user", "needs a user"),
    ("params not a table", HOSTS + '[jobs.mnist]\nparams = 3\n', "params", "jobs.mnist.params", "table"),
    ("bad timeout", HOSTS.replace('user = "pi"', 'user = "pi"\nconnect_timeout = -1'), "connect_timeout",
     "cluster.connect_timeout", "positive"),
]


@pytest.mark.parametrize("text,needle,field,problem", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_errors(tmp_path: Path, text: str, needle: object, field: str, problem: str) -> None:
    error = error_of(tmp_path, text)
    assert error.field == field
    assert problem in error.problem
    if needle is not None:
        expected = needle if isinstance(needle, int) else last_line_with(text, str(needle))
        assert error.line == expected, str(error)
    assert str(error).startswith(f"{error.path}:")


def test_syntax_error_has_line(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[cluster]\nprofile = \n")
    assert error.line == 2 and "invalid TOML" in error.problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="file not found"):
        load_cluster(tmp_path / "nope.toml")


def test_local_hosts_default_to_loopback_and_distinct_ports(tmp_path: Path) -> None:
    cluster = load_cluster(write(tmp_path, '[[hosts]]\nname = "a"\n[[hosts]]\nname = "b"\n'))
    assert [h.tf_endpoint for h in cluster.hosts] == ["127.0.0.1:12345", "127.0.0.1:12346"]


def test_example_pi_cluster_is_valid() -> None:
    cluster = load_cluster(DEFAULT_CLUSTER_FILE.parent / "examples" / "pi-cluster.toml")
    assert all(h.transport == "ssh" and not h.is_loopback for h in cluster.hosts)
