"""S3-compatible storage as a cache backend: ``s3://bucket/prefix`` (AWS, MinIO, Ceph, moto).

The same four verbs as the HTTP backend, each request signed with AWS Signature V4
(``sigv4.py``). Endpoint and region: the URL's ``?endpoint=...&region=...`` (as Nix
spells it), else the [cache] table's ``endpoint`` / ``region``, else AWS_ENDPOINT_URL_S3 /
AWS_ENDPOINT_URL and AWS_REGION / AWS_DEFAULT_REGION, else AWS itself in us-east-1.
A custom endpoint is addressed path-style (``endpoint/bucket/key``: what MinIO and Ceph
expect), AWS virtual-hosted (``bucket.s3.region.amazonaws.com/key``). Without
credentials requests go unsigned (a public-read bucket still serves pulls).
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from typing import Any, Optional

import requests

from ..errors import CacheError
from .remote import HttpRemote, Remote, redact
from .sigv4 import EMPTY_SHA256, load_aws_credentials, sign_headers

HASH_CHUNK = 1 << 20
CREDENTIAL_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
                   "credentials), or a profile in ~/.aws/credentials (AWS_PROFILE); check the region too")


def _setting(query: dict, name: str, configured: Optional[str], *env_names: str) -> Optional[str]:
    values = query.get(name)
    if values:
        return values[-1]
    if configured:
        return configured
    return next((os.environ[e] for e in env_names if os.environ.get(e)), None)


class S3Remote(HttpRemote):
    """HttpRemote's verbs and error handling; requests signed, never Basic/Bearer auth."""

    def __init__(self, url: str, endpoint: Optional[str] = None, region: Optional[str] = None) -> None:
        Remote.__init__(self)
        parts = urllib.parse.urlsplit(url)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if not bucket or "@" in bucket or ":" in bucket:
            raise CacheError(f"cache URL {redact(url)!r}: expected s3://BUCKET/PREFIX "
                             "(credentials come from the AWS environment variables or ~/.aws/credentials)")
        query = urllib.parse.parse_qs(parts.query)
        self.region = _setting(query, "region", region, "AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = _setting(query, "endpoint", endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        key_prefix = urllib.parse.quote(prefix + "/", safe="/-_.~") if prefix else ""
        if endpoint:
            if "://" not in endpoint:
                endpoint = "https://" + endpoint
            self.base = f"{endpoint.rstrip('/')}/{urllib.parse.quote(bucket)}/{key_prefix}"
            where = f" at {redact(endpoint)}"
        else:
            self.base = f"https://{bucket}.s3.{self.region}.amazonaws.com/{key_prefix}"
            where = f" at https://{bucket}.s3.{self.region}.amazonaws.com"
        self.display = f"s3://{bucket}/{prefix + '/' if prefix else ''}"
        self.where = where
        self.credentials = load_aws_credentials()
        self.session = requests.Session()
        # An auth hook that leaves the request alone: requests then never adds ~/.netrc Basic
        # auth over the signature (proxy variables still apply, unlike trust_env=False).
        self.session.auth = _keep_headers

    def _request(self, verb: str, name: str, **kwargs: Any) -> requests.Response:
        if self.credentials is not None:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.update(sign_headers(verb, self._url(name), _payload_sha256(kwargs.get("data")),
                                        self.credentials, self.region))
            kwargs["headers"] = headers
        try:
            return super()._request(verb, name, **kwargs)
        except CacheError as error:   # "cannot reach the cache": say which endpoint
            raise CacheError(f"{error.message}{self.where}", hint=error.hint) from None

    def _fail(self, verb: str, name: str, response: requests.Response) -> CacheError:
        code = ""
        if verb != "HEAD":   # S3 explains itself in an XML body, e.g. <Code>SignatureDoesNotMatch</Code>
            match = re.search(r"<Code>([^<]{1,100})</Code>", response.text[:4096])
            code = f" ({match.group(1)})" if match else ""
        hint = None
        if response.status_code in (400, 401, 403):
            hint = CREDENTIAL_HINT if self.credentials is None else (
                f"the S3 server refused the credentials from {self.credentials.source}: {CREDENTIAL_HINT}")
        elif response.status_code == 404 and "NoSuchBucket" in code:
            hint = "create the bucket first (piforge never creates buckets)"
        return CacheError(f"{verb} {self.display}{name}{self.where}: HTTP {response.status_code} "
                          f"{response.reason}{code}", hint=hint)


def _keep_headers(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def _payload_sha256(data: Any) -> str:
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
