"""The artifacts bucket: the one place that builds the S3 client and writes objects.

- One boto3 client per `Bucket`, with the endpoint and region from settings and botocore's own
  retry modes (`standard` or `adaptive`, `ARTIFACTS_MAX_RETRIES` retries after the first try): transient
  errors (throttling, 5xx, dropped connections) are retried there, never by a loop here.
- Files go through boto3's managed transfer (`upload_file` / `download_file`) with a
  `TransferConfig`, so anything above `ARTIFACTS_MULTIPART_THRESHOLD_BYTES` is sent in parts.
- Every write is server-side encrypted: SSE-KMS with `ARTIFACTS_KMS_KEY_ID` when set, else
  SSE-S3 (AES256).
- Every write is scanned first (meshctl/artifacts/secret_scan.py: the secret values this process holds,
  and detect-secrets' credential detectors) and refused, with nothing put, if anything is found;
  the error names the object, the file and line, and the kind of secret, never the value.
- `create_only` writes are conditional (If-None-Match: *): S3 itself refuses the second of two
  writers of one key, where a HEAD-then-put would let both through.
- Nothing here needs S3 to answer 404 for a missing key: it does so only to a caller with
  s3:ListBucket on the whole bucket, and answers 403 otherwise. The server's role may list only
  the prefixes it reads (an s3:prefix condition, which a GET or HEAD does not carry), so a 403
  or 404 on a read is settled by listing that key as a prefix (`exists`), which that grant allows.
  Widening the grant to the whole bucket for an honest 404 would let the host list every key.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from meshctl.artifacts import secret_scan
from meshctl.settings import ArtifactsSettings, AwsSettings, Settings

log = logging.getLogger("meshctl.artifacts.s3")

# A dropped connection should fail over to botocore's next attempt quickly, not after a minute.
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
# Error codes of a read whose key may simply be missing (see the module docstring).
_MISSING_OR_DENIED = {"404", "NoSuchKey", "NotFound", "403", "AccessDenied"}
# A conditional write that lost: the key exists (412), or another conditional write of it is in
# flight (409, S3's answer while the other one completes). A botocore retry after a lost answer
# to our own successful write sees 412 too: rare, and the message then says to use a new key.
_LOST_RACE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class ArtifactsError(RuntimeError):
    """An artifacts operation cannot go on; the message says why and what to do."""


class SecretInUpload(ArtifactsError):
    """An object about to be uploaded holds a secret (a known value, or a detected credential)."""


class ObjectExists(ArtifactsError):
    """A create-only write found its key already there (or being written by someone else)."""


class ObjectMissing(ArtifactsError):
    """A read of a key that is not in the bucket."""


def client_config(artifacts: ArtifactsSettings, aws: AwsSettings):
    from botocore.config import Config

    return Config(
        region_name=aws.region,
        # botocore's `max_attempts` here is the number of retries after the first attempt.
        retries={"mode": artifacts.retry_mode, "max_attempts": artifacts.max_retries},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )


def make_client(artifacts: ArtifactsSettings, aws: AwsSettings):
    """An S3 client for the artifacts bucket (endpoint and region from `aws`, retries from `artifacts`)."""
    import boto3

    session = boto3.session.Session()
    return session.client(
        "s3",
        region_name=aws.region,
        endpoint_url=aws.endpoint_url,
        config=client_config(artifacts, aws),
    )


def transfer_config(artifacts: ArtifactsSettings):
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=artifacts.multipart_threshold,
        multipart_chunksize=artifacts.multipart_chunksize,
        max_concurrency=4,
        use_threads=True,
    )


def encryption_args(artifacts: ArtifactsSettings) -> dict[str, str]:
    """The server-side encryption arguments every put carries."""
    if artifacts.kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": artifacts.kms_key_id}
    return {"ServerSideEncryption": "AES256"}


class Bucket:
    """The artifacts bucket under its prefix. Keys passed in are full keys (see `key`). It takes
    the whole settings: every upload is scanned for the secret values they hold."""

    def __init__(self, settings: Settings, client: Any = None):
        if not settings.artifacts.bucket:
            raise ArtifactsError(
                "ARTIFACTS_BUCKET is not set: name the artifacts bucket (deploy/bucket.yaml's "
                "BucketName output) in the environment."
            )
        self.settings = settings
        self.name = settings.artifacts.bucket
        self.prefix = settings.artifacts.prefix.strip("/")
        self.client = client if client is not None else make_client(settings.artifacts, settings.aws)
        self.transfer = transfer_config(settings.artifacts)
        self.encryption = encryption_args(settings.artifacts)
        # s3transfer's upload_file takes no IfNoneMatch (not among its allowed ExtraArgs), so a
        # create-only upload gets it as botocore builds the request: on PutObject for one part,
        # on CompleteMultipartUpload for many, the two calls S3 checks If-None-Match on.
        self._create_only: set[str] = set()
        for operation in ("PutObject", "CompleteMultipartUpload"):
            self.client.meta.events.register(
                f"before-parameter-build.s3.{operation}", self._add_if_none_match
            )

    def _add_if_none_match(self, params: dict, **kwargs) -> None:
        if params.get("Key") in self._create_only:
            params["IfNoneMatch"] = "*"

    @cached_property
    def secrets(self) -> list[tuple[str, bytes]]:
        """The secret values no upload may hold, resolved on the first write (reads never need
        them): with MESHCTL_SECRETS=aws, from Secrets Manager too; if that cannot be read, no
        write goes ahead, since it could not be checked."""
        from meshctl import secrets

        try:
            resolved = secrets.resolve(self.settings)
        except secrets.SecretError as exc:
            raise ArtifactsError(f"cannot check uploads for secret values: {exc}") from None
        return secret_scan.known_secrets(resolved)

    # --- keys ------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    # --- writes (all scanned, all encrypted) -----------------------------------------------
    def check(self, key: str, finding: secret_scan.Finding | None) -> None:
        """Refuse the upload of `key` if the scan found something."""
        if finding is None:
            return
        hint = (
            "remove it; credentials come from the environment or Secrets Manager"
            if finding.known
            else "remove it (credentials come from the environment or Secrets Manager), or, if it "
            "is no secret, add a `pragma: allowlist secret` comment to that line"
        )
        raise SecretInUpload(f"refusing to upload {self.url(key)}: {finding}; nothing was uploaded: {hint}")

    def check_bytes(self, key: str, data: bytes) -> None:
        self.check(key, secret_scan.scan_bytes(data, self.secrets))

    def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str] | None = None,
        cache_control: str | None = None,
        create_only: bool = False,
    ) -> dict:
        self.check_bytes(key, data)
        extra: dict[str, Any] = {}
        if cache_control:
            extra["CacheControl"] = cache_control
        if create_only:
            extra["IfNoneMatch"] = "*"
        with self._conditional(key, create_only):
            return self.client.put_object(
                Bucket=self.name,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata=metadata or {},
                **self.encryption,
                **extra,
            )

    def put_json(self, key: str, value: Any, metadata: dict[str, str] | None = None, **kw) -> dict:
        data = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        return self.put_bytes(key, data, "application/json", metadata, **kw)

    def upload_file(
        self,
        path: Path,
        key: str,
        content_type: str,
        metadata: dict[str, str] | None = None,
        callback=None,
        create_only: bool = False,
    ) -> None:
        """Managed transfer: multipart above the threshold, parts retried by botocore."""
        self.check(key, secret_scan.scan_file(path, self.secrets))
        if create_only:
            self._create_only.add(key)
        try:
            with self._conditional(key, create_only):
                self.client.upload_file(
                    str(path),
                    self.name,
                    key,
                    ExtraArgs={"ContentType": content_type, "Metadata": metadata or {}, **self.encryption},
                    Config=self.transfer,
                    Callback=callback,
                )
        finally:
            self._create_only.discard(key)

    @contextlib.contextmanager
    def _conditional(self, key: str, create_only: bool) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if create_only and error_code(exc) in _LOST_RACE:
                raise ObjectExists(f"{self.url(key)} already exists (or another writer of it was first)") from None
            raise

    # --- reads -----------------------------------------------------------------------------
    def download_file(self, key: str, path: Path) -> None:
        self.client.download_file(self.name, key, str(path), Config=self.transfer)

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ObjectMissing when there is no such object."""
        try:
            return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        except Exception as exc:
            if self._missing(exc, key):
                raise ObjectMissing(f"{self.url(key)} does not exist") from None
            raise

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def head(self, key: str) -> dict | None:
        """The object's HEAD response, or None when there is no such object."""
        try:
            return self.client.head_object(Bucket=self.name, Key=key)
        except Exception as exc:
            if self._missing(exc, key):
                return None
            raise

    def exists(self, key: str) -> bool:
        """Whether `key` is in the bucket, by listing it as a prefix (the first key listed under
        a prefix is the prefix itself when it exists): the same answer whatever the IAM grant."""
        response = self.client.list_objects_v2(Bucket=self.name, Prefix=key, MaxKeys=1)
        return any(obj["Key"] == key for obj in response.get("Contents", []))

    def _missing(self, exc: Exception, key: str) -> bool:
        """Whether `exc` (from a read of `key`) means the key is not there: a 404, or the 403 S3
        gives a caller who may not list the whole bucket (see the module docstring)."""
        return error_code(exc) in _MISSING_OR_DENIED and not self.exists(key)

    def list(self, prefix: str) -> Iterator[dict]:
        """Every object under `prefix` (a full key prefix), as list_objects_v2 entries."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
            yield from page.get("Contents", [])

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            response = self.client.delete_objects(
                Bucket=self.name, Delete={"Objects": batch, "Quiet": True}
            )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise ArtifactsError(
                    f"could not delete {len(errors)} object(s), e.g. {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of `exc`, also when a managed transfer wraps the ClientError."""
    cause: BaseException | None = exc
    while cause is not None:
        response = getattr(cause, "response", None)
        if isinstance(response, dict) and response.get("Error"):
            return str(response["Error"].get("Code"))
        cause = cause.__cause__ or cause.__context__
    return None


def error_text(exc: BaseException) -> str:
    """A one-line reason for an S3 failure (the error code when boto3 gives one, also when a
    managed transfer wraps it)."""
    cause: BaseException | None = exc
    while cause is not None:
        response = getattr(cause, "response", None)
        if isinstance(response, dict) and response.get("Error"):
            err = response["Error"]
            return f"{err.get('Code')}: {err.get('Message') or ''}".strip().rstrip(":")
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
