"""Run records against moto over HTTP: keys by run date, secrets masked, failures logged and
reported as False (never raised), transient errors retried by botocore's retry mode."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import boto3
import pytest

from meshctl.artifacts.run_records import upload_run_record
from meshctl.artifacts.s3 import Bucket
from meshctl.settings import Settings

STATE_DB_PASSWORD = "state-db-pw-4d2a8f"
RECORD = {
    "run_id": "20261123T180000Z-ab12cd",
    "trigger": "cron",
    "environment": "prod",
    "status": "failed",
    "started_at": "2026-11-23T23:59:58+00:00",
    "ended_at": "2026-11-24T00:01:02+00:00",
    "models": ["GOODWORD_WH.MARTS.ORDERS"],
    "error": f"could not connect: postgresql://sqlmesh:{STATE_DB_PASSWORD}@aurora/sqlmesh_state",
}
BASE = "sqlmesh/runs/date=2026-11-23/20261123T180000Z-ab12cd"


@pytest.fixture
def settings(artifacts_bucket, monkeypatch) -> Settings:
    monkeypatch.setenv("STATE_DB_PASSWORD", STATE_DB_PASSWORD)
    return Settings(_env_file=None)


@pytest.fixture
def s3(aws_env):
    return boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"])


@pytest.fixture
def run_log(tmp_path: Path) -> Path:
    path = tmp_path / "run.log"
    path.write_text(f"starting sqlmesh run\nconnecting with password {STATE_DB_PASSWORD}\nfailed\n")
    return path


def test_record_and_log_land_under_the_run_date(settings, s3, artifacts_bucket, run_log):
    assert upload_run_record(settings, RECORD, run_log) is True

    record = s3.get_object(Bucket=artifacts_bucket, Key=f"{BASE}.json")
    body = json.loads(record["Body"].read())
    assert record["ContentType"] == "application/json"
    assert record["ServerSideEncryption"] == "AES256"
    assert body["status"] == "failed" and body["log_key"] == f"{BASE}.log"
    assert STATE_DB_PASSWORD not in json.dumps(body) and "***STATE_DB_PASSWORD***" in body["error"]

    log = s3.get_object(Bucket=artifacts_bucket, Key=f"{BASE}.log")
    text = log["Body"].read().decode()
    assert log["ContentType"].startswith("text/plain") and log["ServerSideEncryption"] == "AES256"
    assert "starting sqlmesh run" in text and STATE_DB_PASSWORD not in text


def test_a_credential_in_the_log_stops_both_uploads_and_says_where(settings, s3, artifacts_bucket, run_log, caplog):
    """Not a value this process holds (so not masked): found by its shape, and neither the log
    nor the record goes up."""
    token = f"xoxb-{uuid.uuid4().int % 10**12}-{uuid.uuid4().hex}"
    run_log.write_text(run_log.read_text() + f"notify: posting with {token}\n")
    with caplog.at_level(logging.WARNING, logger="meshctl.artifacts.run_records"):
        assert upload_run_record(settings, RECORD, run_log) is False
    error = caplog.records[-1].error
    assert error.startswith(f"refusing to upload s3://{artifacts_bucket}/{BASE}.log: line 4: Slack Token")
    assert token not in caplog.text
    assert s3.list_objects_v2(Bucket=artifacts_bucket).get("KeyCount", 0) == 0

    record = dict(RECORD, error=f"boto3: bad key AKIA{'Q7' * 8}")  # in the record: the log waits too
    with caplog.at_level(logging.WARNING, logger="meshctl.artifacts.run_records"):
        assert upload_run_record(settings, record, run_log.with_name("clean.log")) is False
    assert f"{BASE}.json: line " in caplog.records[-1].getMessage() and "AWS Access Key" in caplog.text
    assert s3.list_objects_v2(Bucket=artifacts_bucket).get("KeyCount", 0) == 0


def test_secrets_manager_values_are_masked_too(artifacts_bucket, aws_env, s3, monkeypatch):
    monkeypatch.delenv("STATE_DB_PASSWORD", raising=False)
    name = f"aurora-{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager", endpoint_url=aws_env["AWS_ENDPOINT_URL"]).create_secret(
        Name=name, SecretString=json.dumps({"username": "sqlmesh", "password": STATE_DB_PASSWORD})
    )
    settings = Settings(_env_file=None, aws={"secrets_backend": "aws"}, state_db={"secret_name": name})

    assert upload_run_record(settings, RECORD, None) is True

    body = s3.get_object(Bucket=artifacts_bucket, Key=f"{BASE}.json")["Body"].read().decode()
    assert STATE_DB_PASSWORD not in body and "***STATE_DB_PASSWORD***" in body


def test_record_without_a_log(settings, s3, artifacts_bucket):
    assert upload_run_record(settings, dict(RECORD, started_at="2026-11-22T10:00:00Z"), None) is True
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=artifacts_bucket)["Contents"]]
    assert keys == ["sqlmesh/runs/date=2026-11-22/20261123T180000Z-ab12cd.json"]


def test_a_missing_bucket_returns_false_and_logs_a_structured_warning(aws_env, monkeypatch, run_log, caplog):
    monkeypatch.setenv("ARTIFACTS_BUCKET", "no-such-bucket-for-runs")
    monkeypatch.setenv("STATE_DB_PASSWORD", STATE_DB_PASSWORD)  # masked, so only the bucket fails
    settings = Settings(_env_file=None)
    with caplog.at_level(logging.WARNING, logger="meshctl.artifacts.run_records"):
        assert upload_run_record(settings, RECORD, run_log) is False
    event = vars(caplog.records[-1])  # the fields are the record's, not JSON inside its message
    assert event["event"] == "run_record_upload_failed"
    assert event["run_id"] == RECORD["run_id"] and event["bucket"] == "no-such-bucket-for-runs"
    assert event["error"].startswith("NoSuchBucket")


@pytest.mark.parametrize(
    ("record", "log_name", "reason"),
    [
        ({"status": "success"}, None, "no run id"),
        (RECORD, "missing.log", "No such file"),
    ],
)
def test_bad_input_returns_false(settings, tmp_path, caplog, record, log_name, reason):
    with caplog.at_level(logging.WARNING, logger="meshctl.artifacts.run_records"):
        assert upload_run_record(settings, record, tmp_path / log_name if log_name else None) is False
    assert reason in caplog.records[-1].error


def test_no_bucket_configured_returns_false(aws_env, monkeypatch, caplog):
    monkeypatch.delenv("ARTIFACTS_BUCKET", raising=False)
    with caplog.at_level(logging.WARNING, logger="meshctl.artifacts.run_records"):
        assert upload_run_record(Settings(_env_file=None), RECORD, None) is False
    assert "ARTIFACTS_BUCKET is not set" in caplog.text


def _inject_503s(bucket: Bucket, count: int) -> list[str]:
    """The first `count` PutObject requests get S3's 503 SlowDown, before reaching moto."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, **kwargs):
            yield b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

    seen: list[str] = []

    def handler(request, **kwargs):
        seen.append(request.url)
        if len(seen) <= count:
            return AWSResponse(request.url, 503, {}, Raw())
        return None

    bucket.client.meta.events.register("before-send.s3.PutObject", handler)
    return seen


def test_transient_errors_are_retried_by_botocore(settings, s3, artifacts_bucket):
    bucket = Bucket(settings.updated(artifacts={"max_retries": 2}))
    seen = _inject_503s(bucket, 2)

    assert upload_run_record(settings, RECORD, None, bucket=bucket) is True

    assert len(seen) == 3  # two 503s, then the retry that succeeded
    assert s3.head_object(Bucket=artifacts_bucket, Key=f"{BASE}.json")["ContentLength"] > 0


def test_retries_are_bounded_by_the_setting(settings, caplog):
    bucket = Bucket(settings.updated(artifacts={"max_retries": 1}))
    seen = _inject_503s(bucket, 5)
    with caplog.at_level(logging.WARNING, logger="meshctl.artifacts.run_records"):
        assert upload_run_record(settings, RECORD, None, bucket=bucket) is False
    assert len(seen) == 2
    assert "SlowDown" in caplog.records[-1].error
