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

import os
import re
import urllib.parse
from typing import Optional

import requests

from ..errors import CacheError
from .http import HttpRemote
from .remote import redact
from .sigv4 import SigV4Auth, load_aws_credentials

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
            base = f"{endpoint.rstrip('/')}/{urllib.parse.quote(bucket)}/{key_prefix}"
            where = f" at {redact(endpoint)}"
        else:
            base = f"https://{bucket}.s3.{self.region}.amazonaws.com/{key_prefix}"
            where = f" at https://{bucket}.s3.{self.region}.amazonaws.com"
        self.credentials = load_aws_credentials()
        super().__init__(base, auth=SigV4Auth(self.credentials, self.region),
                         display=f"s3://{bucket}/{prefix + '/' if prefix else ''}", where=where)
        self.base = base   # already percent-encoded once, as S3 signs it

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
