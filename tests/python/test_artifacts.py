"""Project bundles and docs against moto over HTTP: push/pull round trip, tampering, interrupted
pushes, racing pushes of one version, secrets never uploaded (known values and credentials found
by their shape), encryption on every object, multipart for large bundles, and S3's 403 for a
missing key."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import threading
import uuid
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from s3_helpers import atomic_conditional_writes, deny_missing_keys

from meshctl.artifacts import bundles as artifacts
from meshctl.artifacts.bundles import MANIFEST_NAME, BundleError
from meshctl.artifacts.s3 import ArtifactsError, Bucket, SecretInUpload
from meshctl.artifacts.docs import publish_docs
from meshctl.cli.artifacts import artifacts_group
from meshctl.settings import PROJECT_DIR, Settings

SNOWFLAKE_PASSWORD = "sf-Pa55-word-91c7e2"
STATE_DB_PASSWORD = "state-db-pw-4d2a8f"


def _generated_pem() -> str:
    """A private key made now, never committed: what a careless checkout might hold."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


PEM = _generated_pem()
PEM_BODY = PEM.splitlines()[1]  # one base64 line of the key: what any leak of it would contain

CONFIG = """\
gateways:
  local:
    connection:
      type: duckdb
      database: "{{ env_var('LOCAL_DATA_DIR', 'data/local') }}/warehouse.duckdb"
default_gateway: local
disable_anonymized_analytics: true
model_defaults:
  dialect: duckdb
  start: "2026-01-01"
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small SQLMesh project with everything a bundle must leave out lying around in it."""
    root = tmp_path / "project"
    write(root / "config.yaml", CONFIG)
    write(root / "external_models.yaml", "- name: raw.events\n  columns:\n    event_id: int\n")
    write(
        root / "models" / "orders.sql",
        "MODEL (name demo.orders, kind FULL);\nSELECT 1 AS order_id, 10 AS amount\n",
    )
    write(
        root / "models" / "revenue.sql",
        "MODEL (name demo.revenue, kind FULL);\nSELECT SUM(amount) AS revenue FROM demo.orders\n",
    )
    write(root / "macros" / "__init__.py", "")
    write(root / "seeds" / "plans.csv", "plan_id,name\n1,basic\n")
    write(
        root / "tests" / "test_orders.yaml",
        "test_orders:\n  model: demo.orders\n  outputs:\n    query:\n      - order_id: 1\n        amount: 10\n",
    )
    # Must never be uploaded:
    write(root / ".env", f"SNOWFLAKE_PASSWORD={SNOWFLAKE_PASSWORD}\nSTATE_DB_PASSWORD={STATE_DB_PASSWORD}\n")
    write(root / "key.pem", PEM)
    write(root / "models" / "rsa_key.p8", f"{PEM_BODY}\n")
    write(root / "data" / "local" / "warehouse.duckdb", b"DUCK" * 100)
    write(root / "models" / "orders.duckdb", b"DUCK")
    write(root / ".cache" / "model_definition" / "x", b"cache")
    write(root / "models" / "__pycache__" / "x.cpython-311.pyc", b"pyc")
    write(root / ".venv" / "lib" / "site.py", "venv")
    write(root / "logs" / "run.log", f"password={STATE_DB_PASSWORD}\n")
    write(root / "tests" / "python" / "test_runtime.py", "def test_x(): pass\n")
    return root


@pytest.fixture
def settings(project: Path, artifacts_bucket: str, monkeypatch) -> Settings:
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", SNOWFLAKE_PASSWORD)
    monkeypatch.setenv("STATE_DB_PASSWORD", STATE_DB_PASSWORD)
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY", PEM_BODY)
    return Settings(_env_file=None, project_dir=project, gateway="local")


@pytest.fixture
def s3(aws_env):
    return boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"])


def all_objects(s3, bucket: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def snapshot_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- push / pull ---------------------------------------------------------------------------


def test_push_then_pull_round_trip_verifies_every_checksum(settings, project, s3, artifacts_bucket, tmp_path):
    result = artifacts.push(settings)

    prefix = f"sqlmesh/bundles/{result.version}/"
    objects = all_objects(s3, artifacts_bucket)
    assert set(objects) == {prefix + "bundle.tar.gz", prefix + "manifest.json", "sqlmesh/bundles/latest"}
    pointer = json.loads(objects["sqlmesh/bundles/latest"])
    assert pointer["version"] == result.version
    manifest = json.loads(objects[prefix + "manifest.json"])
    assert manifest["git"]["revision"] == "unknown"  # tmp_path is not a checkout
    assert manifest["created_at"].endswith("Z")
    assert sorted(manifest["files"]) == [
        "config.yaml",
        "external_models.yaml",
        "macros/__init__.py",
        "models/orders.sql",
        "models/revenue.sql",
        "seeds/plans.csv",
        "tests/test_orders.yaml",
    ]
    members = tar_members(objects[prefix + "bundle.tar.gz"])
    assert set(members) == set(manifest["files"]) | {MANIFEST_NAME}

    dest = tmp_path / "deployed"
    pulled = artifacts.pull(settings, "latest", dest)
    assert pulled.version == result.version and pulled.files == 7
    for name, entry in manifest["files"].items():
        assert (dest / name).read_bytes() == (project / name).read_bytes()
        assert artifacts.sha256_file(dest / name) == entry["sha256"]
    assert json.loads((dest / MANIFEST_NAME).read_text())["version"] == result.version
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".deployed.pull-")]


def test_manifest_records_the_git_revision_in_a_checkout(settings, project):
    git = ["git", "-C", str(project), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "config.yaml", "models"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    result = artifacts.push(settings)

    assert result.manifest["git"]["revision"] == head
    assert result.manifest["git"]["dirty"] is True  # seeds/, tests/ ... are untracked
    assert result.version.endswith("-" + head[:12])


def test_pull_replaces_the_previous_project_and_keeps_its_runtime_dirs(settings, project, tmp_path):
    dest = tmp_path / "deployed"
    v1 = artifacts.push(settings, version="v1").version
    artifacts.pull(settings, v1, dest)
    write(dest / "data" / "local" / "warehouse.duckdb", b"local warehouse")
    write(project / "models" / "customers.sql", "MODEL (name demo.customers, kind FULL);\nSELECT 1 AS id\n")
    (project / "models" / "revenue.sql").unlink()
    artifacts.push(settings, version="v2")

    result = artifacts.pull(settings, "latest", dest)

    assert result.version == "v2" and result.replaced
    assert (dest / "models" / "customers.sql").exists()
    assert not (dest / "models" / "revenue.sql").exists()
    assert (dest / "data" / "local" / "warehouse.duckdb").read_bytes() == b"local warehouse"
    # An older version can be pulled back by name.
    assert artifacts.pull(settings, "v1", dest).version == "v1"
    assert (dest / "models" / "revenue.sql").exists()


def test_mount_points_are_recognised():
    assert artifacts._is_mount(Path("/"))
    assert artifacts._is_mount(Path("/proc"))
    assert not artifacts._is_mount(Path(__file__).parent)


def test_pull_into_a_mount_point_swaps_entries_in_place(settings, tmp_path, monkeypatch):
    dest = tmp_path / "mounted"
    write(dest / "old-file.txt", "from the previous project")
    write(dest / "logs" / "keep.log", "runtime log")
    artifacts.push(settings, version="v1")
    monkeypatch.setattr(artifacts, "_is_mount", lambda p: Path(p) == dest)

    artifacts.pull(settings, "v1", dest)

    names = sorted(p.name for p in dest.iterdir())
    assert "old-file.txt" not in names and "models" in names
    assert (dest / "logs" / "keep.log").read_text() == "runtime log"
    assert not [n for n in names if n.startswith(".meshctl-pull-")]


def test_push_never_overwrites_a_version(settings, project, s3, artifacts_bucket):
    artifacts.push(settings, version="v1")
    before = all_objects(s3, artifacts_bucket)
    write(project / "models" / "orders.sql", "MODEL (name demo.orders, kind FULL);\nSELECT 2 AS order_id\n")
    with pytest.raises(BundleError, match="bundle v1 already exists .*; push another --version$"):
        artifacts.push(settings, version="v1")
    assert all_objects(s3, artifacts_bucket) == before


def test_two_pushes_of_one_version_racing_have_exactly_one_winner(settings, project, tmp_path, monkeypatch):
    """Six rounds of two pushes of the same version, from two checkouts that differ, held at their
    first write until both are there, so both requests are at the server at once. Exactly one
    push succeeds each round, the other fails with one line, and the version is the winner's,
    whole (pull verifies every checksum against the winner's manifest)."""
    atomic_conditional_writes(monkeypatch)
    other = tmp_path / "other-checkout"
    shutil.copytree(project, other)
    write(other / "models" / "orders.sql", "MODEL (name demo.orders, kind FULL);\nSELECT 2 AS order_id, 20 AS amount\n")
    checkouts = {"first": settings, "second": settings.updated(project_dir=other)}

    for round_ in range(6):
        version = f"race{round_}"
        at_the_door = threading.Barrier(2, timeout=60)
        outcomes: dict[str, str] = {}

        def push(name: str) -> None:
            bucket = Bucket(checkouts[name])
            waited = []

            def hold(request, **kwargs):
                if request.url.endswith(f"/{version}/bundle.tar.gz") and not waited:
                    waited.append(at_the_door.wait())

            bucket.client.meta.events.register("before-send.s3.PutObject", hold)
            try:
                artifacts.push(checkouts[name], version=version, bucket=bucket)
                outcomes[name] = "won"
            except BundleError as exc:
                outcomes[name] = str(exc)

        threads = [threading.Thread(target=push, args=(name,)) for name in checkouts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        winners = [name for name, outcome in outcomes.items() if outcome == "won"]
        assert len(outcomes) == 2 and len(winners) == 1, (round_, outcomes)
        [loser] = set(checkouts) - set(winners)
        assert outcomes[loser].startswith(f"bundle {version} already exists in s3://") and "\n" not in outcomes[loser]
        dest = tmp_path / f"pulled-{round_}"
        assert artifacts.pull(settings, version, dest).version == version
        winner_dir = checkouts[winners[0]].project_dir
        assert (dest / "models" / "orders.sql").read_bytes() == (winner_dir / "models" / "orders.sql").read_bytes()


# --- verification and atomicity --------------------------------------------------------------


def _deployed_v1(settings, tmp_path) -> tuple[Path, dict[str, bytes]]:
    dest = tmp_path / "deployed"
    artifacts.push(settings, version="v1")
    artifacts.pull(settings, "v1", dest)
    return dest, snapshot_tree(dest)


def test_a_tampered_file_is_refused_by_name_and_the_old_project_stays(settings, project, s3, artifacts_bucket, tmp_path):
    dest, before = _deployed_v1(settings, tmp_path)
    artifacts.push(settings, version="v2")
    key = "sqlmesh/bundles/v2/bundle.tar.gz"
    members = tar_members(s3.get_object(Bucket=artifacts_bucket, Key=key)["Body"].read())
    members["models/orders.sql"] = b"MODEL (name demo.orders, kind FULL);\nSELECT 666 AS order_id\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=artifacts_bucket, Key=key, Body=buf.getvalue())

    with pytest.raises(BundleError) as err:
        artifacts.pull(settings, "latest", dest)

    message = str(err.value)
    assert "models/orders.sql: checksum mismatch" in message
    assert "bundle.tar.gz: checksum mismatch" in message
    assert f"{dest} left as it was" in message
    assert snapshot_tree(dest) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".deployed.pull-")]


def test_a_corrupt_archive_is_refused_and_the_old_project_stays(settings, s3, artifacts_bucket, tmp_path):
    dest, before = _deployed_v1(settings, tmp_path)
    artifacts.push(settings, version="v2")
    key = "sqlmesh/bundles/v2/bundle.tar.gz"
    data = bytearray(s3.get_object(Bucket=artifacts_bucket, Key=key)["Body"].read())
    data[len(data) // 2 : len(data) // 2 + 16] = b"\x00" * 16
    s3.put_object(Bucket=artifacts_bucket, Key=key, Body=bytes(data))

    with pytest.raises(BundleError, match="bundle.tar.gz"):
        artifacts.pull(settings, "v2", dest)
    assert snapshot_tree(dest) == before


def test_a_manifest_edited_in_the_bucket_is_refused(settings, s3, artifacts_bucket, tmp_path):
    dest, before = _deployed_v1(settings, tmp_path)
    artifacts.push(settings, version="v2")
    key = "sqlmesh/bundles/v2/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=artifacts_bucket, Key=key)["Body"].read())
    manifest["files"]["seeds/plans.csv"]["sha256"] = "0" * 64
    s3.put_object(Bucket=artifacts_bucket, Key=key, Body=json.dumps(manifest).encode())

    with pytest.raises(BundleError, match="seeds/plans.csv: checksum mismatch"):
        artifacts.pull(settings, "v2", dest)
    assert snapshot_tree(dest) == before


def test_a_failed_verify_does_not_move_latest(settings, project, monkeypatch):
    artifacts.push(settings, version="v1")
    write(project / "models" / "new.sql", "MODEL (name demo.new, kind FULL);\nSELECT 1 AS x\n")

    def fail(*args, **kwargs):
        raise BundleError("simulated: object not visible after upload")

    monkeypatch.setattr(artifacts, "_verify_upload", fail)
    with pytest.raises(BundleError, match="simulated"):
        artifacts.push(settings, version="v2")

    bucket = Bucket(settings)
    assert artifacts.resolve_version(bucket, "latest") == "v1"


def test_an_upload_failing_mid_push_does_not_move_latest(settings, project, tmp_path):
    """The manifest put fails on every attempt (after the tarball went up): latest stays."""
    artifacts.push(settings, version="v1")
    bucket = Bucket(settings.updated(artifacts={"max_retries": 2}))
    calls = []

    def fail_manifest(request, **kwargs):
        if request.url.endswith("/manifest.json") and request.method == "PUT":
            calls.append(request.url)
            return _error_response(request.url, 500, "InternalError")
        return None

    bucket.client.meta.events.register("before-send.s3.PutObject", fail_manifest)
    with pytest.raises(Exception):
        artifacts.push(settings, version="v2", bucket=bucket)

    assert len(calls) == 3  # the first try and botocore's 2 retries, then it gave up
    assert artifacts.resolve_version(Bucket(settings), "latest") == "v1"
    dest = tmp_path / "deployed"
    assert artifacts.pull(settings, "latest", dest).version == "v1"
    with pytest.raises(BundleError, match="v2 does not exist or its push did not finish"):
        artifacts.pull(settings, "v2", dest)


def _error_response(url: str, status: int, code: str):
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, **kwargs):
            yield f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()

    return AWSResponse(url, status, {}, Raw())


def test_pull_refuses_to_replace_a_git_checkout(settings, tmp_path):
    artifacts.push(settings, version="v1")
    (tmp_path / "checkout" / ".git").mkdir(parents=True)
    with pytest.raises(BundleError, match="git checkout"):
        artifacts.pull(settings, "v1", tmp_path / "checkout")


def test_pull_with_nothing_pushed_says_so(settings, tmp_path):
    with pytest.raises(BundleError, match="no bundle has been pushed yet"):
        artifacts.pull(settings, "latest", tmp_path / "deployed")


# --- secrets and encryption ------------------------------------------------------------------


def test_nothing_secret_is_uploaded_and_every_object_is_encrypted(settings, s3, artifacts_bucket, tmp_path):
    artifacts.push(settings, version="v1")
    artifacts.pull(settings, "v1", tmp_path / "deployed")
    publish_docs(settings, version="v1")

    objects = all_objects(s3, artifacts_bucket)
    assert len(objects) == 5
    needles = [SNOWFLAKE_PASSWORD.encode(), STATE_DB_PASSWORD.encode(), PEM_BODY.encode()]
    for key, data in objects.items():
        blobs = {key: data}
        if key.endswith(".tar.gz"):
            blobs.update(tar_members(data))
            blobs["(gunzipped)"] = gzip.decompress(data)
            names = set(tar_members(data))
            assert not {n for n in names if n.endswith((".pem", ".p8", ".duckdb", ".pyc")) or n.startswith((".env", "data/", "logs/", ".cache/", ".venv/")) or "__pycache__" in n}
        for name, blob in blobs.items():
            for needle in needles:
                assert needle not in blob, f"a secret value is in {name}"
        head = s3.head_object(Bucket=artifacts_bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256", key


def test_a_secret_value_in_a_project_file_stops_the_push(settings, project, s3, artifacts_bucket):
    write(project / "macros" / "creds.py", f'PASSWORD = "{STATE_DB_PASSWORD}"\n')
    with pytest.raises(SecretInUpload) as err:
        artifacts.push(settings)
    assert "macros/creds.py line 1: the value of STATE_DB_PASSWORD" in str(err.value)
    assert STATE_DB_PASSWORD not in str(err.value)
    assert s3.list_objects_v2(Bucket=artifacts_bucket).get("KeyCount", 0) == 0


def test_a_private_key_in_a_file_named_for_nothing_stops_the_push(project, artifacts_bucket, s3, monkeypatch):
    """No secret setting is set at all, so there is no value to look for: the key is found by
    its shape, and nothing is uploaded (no tarball, no manifest, no latest)."""
    for name in ("SNOWFLAKE_PASSWORD", "STATE_DB_PASSWORD", "SNOWFLAKE_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None, project_dir=project, gateway="local")
    write(project / "macros" / "dev_notes.txt", f"keys for the demo account, do not commit\n{PEM}")

    result = CliRunner().invoke(artifacts_group, ["push", "--version", "v1"], obj=settings)

    assert result.exit_code == 1
    assert result.output.count("\n") == 1  # one line, no traceback
    assert result.output.startswith("Error: refusing to upload s3://")
    assert "macros/dev_notes.txt line 2: Private Key; nothing was uploaded" in result.output
    assert PEM_BODY not in result.output
    assert s3.list_objects_v2(Bucket=artifacts_bucket).get("KeyCount", 0) == 0


def test_secret_values_from_secrets_manager_stop_the_push(project, artifacts_bucket, aws_env, s3, monkeypatch):
    """MESHCTL_SECRETS=aws: the state database password lives only in Secrets Manager (nothing in
    the environment), and a file holding it is still refused, by the setting's name."""
    for name in ("SNOWFLAKE_PASSWORD", "STATE_DB_PASSWORD", "SNOWFLAKE_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    secret_name = f"aurora-{uuid.uuid4().hex[:8]}"
    password = f"sm-only-{uuid.uuid4().hex[:12]}"
    boto3.client("secretsmanager", endpoint_url=aws_env["AWS_ENDPOINT_URL"]).create_secret(
        Name=secret_name, SecretString=json.dumps({"username": "sqlmesh", "password": password})
    )
    settings = Settings(
        _env_file=None, project_dir=project, gateway="local", aws={"secrets_backend": "aws"},
        state_db={"secret_name": secret_name}
    )
    write(project / "seeds" / "plans.csv", f"plan_id,name\n1,basic\n2,{password}\n")

    with pytest.raises(SecretInUpload) as err:
        artifacts.push(settings)
    assert "seeds/plans.csv line 3: the value of STATE_DB_PASSWORD" in str(err.value)
    assert password not in str(err.value)
    assert s3.list_objects_v2(Bucket=artifacts_bucket).get("KeyCount", 0) == 0

    # Secrets Manager unreadable: nothing can be checked, so nothing goes up.
    missing = settings.updated(state_db={"secret_name": "no-such-secret-here"})
    with pytest.raises(ArtifactsError, match="cannot check uploads for secret values: .*'no-such-secret-here' does not exist"):
        artifacts.push(missing)


def test_the_real_project_pushes_and_pulls(artifacts_bucket, tmp_path, monkeypatch):
    """The repo itself, as `meshctl artifacts push` from this checkout sends it: its models, SQL,
    seeds, config and runtime source pass the scan."""
    for name in ("SNOWFLAKE_PASSWORD", "STATE_DB_PASSWORD", "SNOWFLAKE_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None, project_dir=PROJECT_DIR, state_db={"password": STATE_DB_PASSWORD})

    result = artifacts.push(settings, version="the-project")

    assert result.files > 50 and "models/marts/fct_events.sql" in result.manifest["files"]
    assert artifacts.pull(settings, "the-project", tmp_path / "deployed").files == result.files


def test_kms_key_is_used_when_configured(settings, s3, artifacts_bucket, aws_env):
    kms = boto3.client("kms", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    key_id = kms.create_key(Description="artifacts")["KeyMetadata"]["KeyId"]
    kms_settings = settings.updated(artifacts={"kms_key_id": key_id})

    artifacts.push(kms_settings, version="v1")

    for key in all_objects(s3, artifacts_bucket):
        head = s3.head_object(Bucket=artifacts_bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert key_id in head["SSEKMSKeyId"]


def test_a_large_bundle_goes_up_in_parts(settings, project, s3, artifacts_bucket, tmp_path):
    write(project / "seeds" / "large.bin", os.urandom(7 * 1024 * 1024))  # incompressible
    mib5 = 5 * 1024 * 1024
    small = settings.updated(artifacts={"multipart_threshold": mib5, "multipart_chunksize": mib5})

    result = artifacts.push(small, version="big")

    head = s3.head_object(Bucket=artifacts_bucket, Key="sqlmesh/bundles/big/bundle.tar.gz")
    assert head["ETag"].strip('"').endswith("-2") and result.multipart
    assert head["ServerSideEncryption"] == "AES256"
    dest = tmp_path / "deployed"
    artifacts.pull(small, "big", dest)
    assert (dest / "seeds" / "large.bin").read_bytes() == (project / "seeds" / "large.bin").read_bytes()

    # In parts, the create-only condition rides on CompleteMultipartUpload: refused there.
    write(project / "seeds" / "large.bin", os.urandom(7 * 1024 * 1024))
    with pytest.raises(BundleError, match="bundle big already exists"):
        artifacts.push(small, version="big")
    artifacts.pull(small, "big", dest)  # still the first push's bundle, whole


# --- S3's 403 for a missing key (the server's role may not list the whole bucket) -----------


def test_every_path_works_when_s3_answers_403_for_a_missing_key(settings, project, tmp_path, monkeypatch, s3, artifacts_bucket):
    deny_missing_keys(monkeypatch)
    with pytest.raises(Exception) as denied:
        Bucket(settings).client.head_object(Bucket=artifacts_bucket, Key="sqlmesh/bundles/nothing")
    # the stand-in answers as S3 answers the role
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert denied.value.response["Error"]["Code"] == "AccessDenied"

    dest = tmp_path / "deployed"
    with pytest.raises(BundleError, match="no bundle has been pushed yet"):
        artifacts.pull(settings, "latest", dest)
    assert artifacts.push(settings, version="v1").version == "v1"
    with pytest.raises(BundleError, match="bundle nope does not exist"):
        artifacts.pull(settings, "nope", dest)
    with pytest.raises(BundleError, match="bundle v1 already exists"):
        artifacts.push(settings, version="v1")
    assert artifacts.list_versions(Bucket(settings)) == (["v1"], "v1")
    bundled = settings.updated(artifacts={"bundle": "latest", "bundle_dir": dest})
    assert artifacts.ensure_project(bundled) == dest
    assert Bucket(settings).head("sqlmesh/bundles/nothing") is None


# --- starting from a bundle -----------------------------------------------------------------


def test_ensure_project_without_a_bundle_setting_is_the_project_dir(settings, project):
    assert artifacts.ensure_project(settings) == project


def test_ensure_project_pulls_once_then_follows_latest(settings, project, tmp_path, monkeypatch, caplog):
    bundled = settings.updated(artifacts={"bundle": "latest", "bundle_dir": tmp_path / "bundle"})
    artifacts.push(settings, version="v1")

    assert artifacts.ensure_project(bundled) == tmp_path / "bundle"
    assert artifacts.installed_manifest(tmp_path / "bundle")["version"] == "v1"

    real_pull = artifacts.pull
    monkeypatch.setattr(artifacts, "pull", lambda *a, **k: pytest.fail("v1 is already in place"))
    assert artifacts.ensure_project(bundled) == tmp_path / "bundle"

    monkeypatch.setattr(artifacts, "pull", real_pull)
    artifacts.push(settings, version="v2")
    artifacts.ensure_project(bundled)
    assert artifacts.installed_manifest(tmp_path / "bundle")["version"] == "v2"

    # S3 unreachable (here: the bucket is gone): the intact bundle in place is used, with a warning.
    broken = bundled.updated(artifacts={"bucket": "no-such-bucket-here"})
    with caplog.at_level(logging.WARNING, logger="meshctl.artifacts.bundles"):
        assert artifacts.ensure_project(broken) == tmp_path / "bundle"
    event = caplog.records[-1]  # the fields are the record's, not JSON inside its message
    assert (event.event, event.using) == ("bundle_pull_failed", "v2")

    # A pinned version that is not in place cannot be satisfied without S3.
    pinned = broken.updated(artifacts={"bundle": "v1"})
    with pytest.raises(ArtifactsError, match="cannot start from bundle 'v1'"):
        artifacts.ensure_project(pinned)


# --- docs and CLI ---------------------------------------------------------------------------


def test_docs_render_the_dag_and_upload_html(settings, s3, artifacts_bucket):
    result = publish_docs(settings, version="d1")

    assert result.index_url == f"s3://{artifacts_bucket}/sqlmesh/docs/index.html"
    for key in ("sqlmesh/docs/index.html", "sqlmesh/docs/d1/index.html"):
        obj = s3.get_object(Bucket=artifacts_bucket, Key=key)
        assert obj["ContentType"].startswith("text/html")
        assert obj["ServerSideEncryption"] == "AES256"
        html = obj["Body"].read().decode()
        assert "vis-network" in html and "revenue" in html and "orders" in html


def test_cli_push_list_pull(settings, tmp_path):
    runner = CliRunner()
    pushed = runner.invoke(artifacts_group, ["push", "--version", "cli1"], obj=settings)
    assert pushed.exit_code == 0, pushed.output
    assert "pushed bundle cli1: 7 files" in pushed.output and "latest -> cli1" in pushed.output

    listed = runner.invoke(artifacts_group, ["list"], obj=settings)
    assert "* cli1" in listed.output

    dest = tmp_path / "deployed"
    pulled = runner.invoke(artifacts_group, ["pull", "--dest", str(dest)], obj=settings)
    assert pulled.exit_code == 0, pulled.output
    assert f"pulled bundle cli1: 7 files verified -> {dest}" in pulled.output

    missing = runner.invoke(artifacts_group, ["pull", "nope", "--dest", str(dest)], obj=settings)
    assert missing.exit_code == 1 and "bundle nope does not exist" in missing.output
