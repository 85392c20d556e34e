"""AWS Signature Version 4 for plain S3 object requests (HEAD, GET, PUT), over requests.

A few dozen lines instead of boto3 (tens of MB of botocore on the Pi controller). Only
what a cache needs: no query strings, no chunked uploads. The signature covers the
method, the path, the host, the date, the session token and the payload's sha256.
Credentials come, in order, from AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+
AWS_SESSION_TOKEN) or the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
~/.aws/credentials; profile AWS_PROFILE, default "default"), as the AWS tools read them.
"""
from __future__ import annotations

import configparser
import datetime
import hashlib
import hmac
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import requests

from ..errors import CacheError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class AwsCredentials:
    access_key: str
    secret_key: str = field(repr=False)   # never in a repr, a log line or an error
    session_token: Optional[str] = field(default=None, repr=False)
    source: str = "environment"


def load_aws_credentials(environ: Optional[Mapping[str, str]] = None) -> Optional[AwsCredentials]:
    """The standard AWS credential chain's first two links; None means anonymous requests."""
    env = os.environ if environ is None else environ
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return AwsCredentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                              env.get("AWS_SESSION_TOKEN") or None, "environment")
    path = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials").expanduser()
    profile = env.get("AWS_PROFILE") or "default"
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as error:
        raise CacheError(f"{path}: cannot read AWS credentials ({type(error).__name__})") from None
    if not parser.has_section(profile):
        return None
    section = parser[profile]
    if not section.get("aws_access_key_id") or not section.get("aws_secret_access_key"):
        raise CacheError(f"{path}: profile [{profile}] needs aws_access_key_id and aws_secret_access_key")
    return AwsCredentials(section["aws_access_key_id"].strip(), section["aws_secret_access_key"].strip(),
                          (section.get("aws_session_token") or "").strip() or None, f"{path} [{profile}]")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def sign_headers(method: str, url: str, payload_sha256: str, credentials: AwsCredentials, region: str,
                 service: str = "s3", now: Optional[datetime.datetime] = None) -> Dict[str, str]:
    """Headers that authenticate ``method url`` (whose body hashes to ``payload_sha256``).

    ``url`` must already be percent-encoded exactly as it will be sent (S3 signs the
    path as sent, encoded once) and carry no query string.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.query:
        raise ValueError("sign_headers: query strings are not supported")
    moment = (now or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    date = stamp[:8]
    headers = {"host": parts.netloc.rsplit("@", 1)[-1], "x-amz-content-sha256": payload_sha256, "x-amz-date": stamp}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    names = sorted(headers)
    canonical = "\n".join([
        method.upper(),
        parts.path or "/",
        "",                                                     # canonical query string
        "".join(f"{name}:{headers[name].strip()}\n" for name in names),
        ";".join(names),
        payload_sha256,
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    signature = hmac.new(signing_key(credentials.secret_key, date, region, service),
                         to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    signed = {name: value for name, value in headers.items() if name != "host"}   # requests sets Host
    signed["Authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                               f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return signed


HASH_CHUNK = 1 << 20


def payload_sha256(data: Any) -> str:
    """sha256 of a request body: bytes, or a seekable file (read once, then rewound)."""
    if data is None:
        return EMPTY_SHA256
    if isinstance(data, (bytes, bytearray)):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    start = data.tell()
    for block in iter(lambda: data.read(HASH_CHUNK), b""):
        digest.update(block)
    data.seek(start)
    return digest.hexdigest()


class SigV4Auth(requests.auth.AuthBase):
    """requests auth that signs each request with AWS Signature V4; without credentials
    it leaves the request alone (public buckets), and never lets ~/.netrc add Basic auth."""

    def __init__(self, credentials: Optional[AwsCredentials], region: str) -> None:
        self.credentials = credentials
        self.region = region

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.credentials is not None:
            url = str(request.url)
            request.headers.update(sign_headers(str(request.method), url, payload_sha256(request.body),
                                                self.credentials, self.region))
        return request
