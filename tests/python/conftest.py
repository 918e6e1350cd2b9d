"""Fixtures shared by every area's tests: a throwaway PostgreSQL database and a moto server.

Area-specific fixtures live in the area's own test module (or a helper module beside it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest
from psycopg2 import sql


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str | None

    def connect(self, dbname: str = "postgres"):
        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=dbname
        )

    def env(self, dbname: str) -> dict[str, str]:
        """The STATE_DB_* variables that point SQLMesh and meshctl at `dbname` on this server."""
        env = {
            "STATE_DB_HOST": self.host,
            "STATE_DB_PORT": str(self.port),
            "STATE_DB_USER": self.user,
            "STATE_DB_NAME": dbname,
            "STATE_DB_SSLMODE": "disable",
        }
        if self.password:
            env["STATE_DB_PASSWORD"] = self.password
        return env

    def use_for_state(self, monkeypatch, dbname: str) -> None:
        """Point this process's SQLMesh state at `dbname` for as long as `monkeypatch` lasts."""
        for key, value in self.env(dbname).items():
            monkeypatch.setenv(key, value)


@pytest.fixture(autouse=True)
def _restore_meshctl_logger() -> Iterator[None]:
    """In-process CLI calls configure the `meshctl` logger for a container (own handler, no
    propagation); put it back so later tests' caplog still sees meshctl's records."""
    logger = logging.getLogger("meshctl")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    # Tests must never be skipped for want of a server: fail loudly and say how to get one.
    server = PgServer(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=int(os.environ.get("PGPORT", "5432")),
        user=os.environ.get("PGUSER", "postgres"),
        password=os.environ.get("PGPASSWORD"),
    )
    try:
        server.connect().close()
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"No PostgreSQL server answers at {server.host}:{server.port} as {server.user}: {exc}\n"
            "Start one (apt-get install postgresql && pg_ctlcluster 15 main start, or "
            "docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15) "
            "or point PGHOST/PGPORT/PGUSER/PGPASSWORD at one.",
            pytrace=False,
        )
    return server


def _create_database(server: PgServer, name: str) -> None:
    conn = server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()


def _drop_database(server: PgServer, name: str) -> None:
    conn = server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    conn.close()


@contextlib.contextmanager
def _databases(server: PgServer) -> Iterator:
    created: list[str] = []

    def make(prefix: str = "meshtest") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        _create_database(server, name)
        created.append(name)
        return name

    try:
        yield make
    finally:
        for name in created:
            _drop_database(server, name)


@pytest.fixture
def pg_database_factory(pg_server: PgServer) -> Iterator:
    """Creates uniquely named databases on demand; drops every one of them afterwards."""
    with _databases(pg_server) as make:
        yield make


@pytest.fixture(scope="module")
def module_pg_database_factory(pg_server: PgServer) -> Iterator:
    """The same, for state shared by the tests of one module (one build, several checks)."""
    with _databases(pg_server) as make:
        yield make


@pytest.fixture
def pg_database(pg_database_factory) -> str:
    """A fresh, empty database on the test server; dropped after the test."""
    return pg_database_factory()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode: the real AWS HTTP API on a loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for boto3 against the moto server, with throwaway credentials."""
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-2",
        "AWS_REGION": "us-east-2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def artifacts_bucket(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the moto server, named in ARTIFACTS_BUCKET."""
    import boto3

    name = f"artifacts-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"]).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": aws_env["AWS_REGION"]}
    )
    monkeypatch.setenv("ARTIFACTS_BUCKET", name)
    return name
