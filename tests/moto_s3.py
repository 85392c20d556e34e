"""A real S3 server for the cache tests: moto's server on 127.0.0.1, signatures enforced.

moto is a test tool, not a controller dependency: it is pip-installed once into its own
venv under the shared test home (kept across runs, like the other heavy test outputs).
The server checks every request's AWS Signature V4 with botocore, so it tests our signer
for real. Setup (an IAM user with an S3 policy, its access key, the bucket) runs before
authentication is switched on; afterwards an unsigned or wrongly signed request fails.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from build.cache.davserver import free_port
from build.cache.sigv4 import AwsCredentials, sign_headers
from build.processes import stop_process
from prerequisites import unavailable

MOTO = "moto[server]==5.2.5"   # supports the controller's Python 3.11 (the test venv's)
BUCKET = "piforge-cache"
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@dataclass
class MotoS3:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = BUCKET


def moto_server_binary(shared_home: Path) -> Path:
    """moto_server from its own venv, installed once (under a lock: tests may run in parallel)."""
    venv = shared_home / "tools" / ("moto-" + MOTO.split("==")[1])
    binary = venv / "bin" / "moto_server"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".moto.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            print(f"installing {MOTO} into {venv} (once)", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            result = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", MOTO],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if result.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                unavailable(f"cannot pip install {MOTO}: {result.stdout[-1500:]}")
            (venv / ".complete").touch()
    return binary


def _signed(method: str, url: str, service: str, body: bytes = b"", **headers: str) -> requests.Response:
    """A request signed with throw-away keys: moto accepts anything before auth is on."""
    setup_keys = AwsCredentials("AKIASETUPSETUPSETUP0", "setup")
    headers.update(sign_headers(method, url, hashlib.sha256(body).hexdigest(), setup_keys, "us-east-1", service))
    response = requests.request(method, url, data=body, headers=headers, timeout=30)
    assert response.status_code in (200, 201), f"{method} {service}: {response.status_code} {response.text[:500]}"
    return response


def _iam(endpoint: str, **params: str) -> str:
    form = dict(params, Version="2010-05-08")
    body = urllib.parse.urlencode(form).encode()
    return _signed("POST", endpoint + "/", "iam", body, **{"Content-Type": "application/x-www-form-urlencoded"}).text


@pytest.fixture
def moto_s3(shared_home: Path, tmp_path: Path) -> Iterator[MotoS3]:
    """moto's S3 on 127.0.0.1:<free port> with one bucket and one IAM user allowed s3:*."""
    binary = moto_server_binary(shared_home)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "moto.log", "wb")
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(endpoint + "/moto-api/", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"moto_server did not start: {(tmp_path / 'moto.log').read_text()[-2000:]}")
                time.sleep(0.2)
        _iam(endpoint, Action="CreateUser", UserName="piforge-ci")
        _iam(endpoint, Action="PutUserPolicy", UserName="piforge-ci", PolicyName="cache",
             PolicyDocument=json.dumps(POLICY))
        created = _iam(endpoint, Action="CreateAccessKey", UserName="piforge-ci")
        access = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", created).group(1)  # type: ignore[union-attr]
        secret = re.search(r"<SecretAccessKey>([^<]+)</SecretAccessKey>", created).group(1)  # type: ignore[union-attr]
        _signed("PUT", f"{endpoint}/{BUCKET}", "s3")
        requests.post(endpoint + "/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        yield MotoS3(endpoint, access, secret)
    finally:
        stop_process(process)
        log.close()
