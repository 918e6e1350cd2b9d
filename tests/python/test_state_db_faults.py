"""State database faults, as every `meshctl` verb that needs the database meets them: one
bounded wait (exact to its bound) for a database that does not answer, and an immediate,
one-line refusal -- with its fix -- when it answers and says no. Never a traceback.

Faults: nothing listening; a server refusing the password (a stand-in speaking PostgreSQL's wire
protocol, since the machines' PostgreSQL trusts every local login); a database that does not
exist; a user that does not exist (the real server). Plus: the database going away mid-run."""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from pathlib import Path

import pytest
from service_helpers import (
    DAYS,
    free_port,
    land_day,
    make_project,
    meshctl,
    now_utc,
    plan_prod,
    service_env,
    spawn_meshctl,
    terminating,
)

WAIT = 3  # MESHCTL_STATE_DB_WAIT_SECONDS for these trials


class PasswordRefusingServer:
    """Answers like PostgreSQL with a password that is wrong: asks for it, then refuses it with
    SQLSTATE 28P01, the error a real server with password auth sends."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_startup(conn) -> bytes:
        length = struct.unpack("!I", conn.recv(4, socket.MSG_WAITALL))[0]
        return conn.recv(length - 4, socket.MSG_WAITALL)

    def _answer(self, conn):
        with conn:
            try:
                body = self._read_startup(conn)
                while struct.unpack("!I", body[:4])[0] in (80877103, 80877104):  # SSL / GSS request
                    conn.sendall(b"N")
                    body = self._read_startup(conn)
                conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
                conn.recv(1024)  # the password message
                fields = b"".join(
                    key + value + b"\0"
                    for key, value in ((b"S", b"FATAL"), (b"V", b"FATAL"), (b"C", b"28P01"),
                                       (b"M", b'password authentication failed for user "postgres"'))
                ) + b"\0"
                conn.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)
            except OSError:
                pass

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def refusing_server():
    server = PasswordRefusingServer()
    yield server
    server.close()


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


FAULTS = {
    "not answering": (lambda pg, server: {"STATE_DB_PORT": str(free_port())}, f"did not answer within {WAIT}s"),
    "wrong password": (lambda pg, server: {"STATE_DB_PORT": str(server.port), "STATE_DB_PASSWORD": "wrong"},
                       "password of user postgres was refused: set STATE_DB_PASSWORD"),
    "missing database": (lambda pg, server: {"STATE_DB_NAME": "no_such_state_db"},
                         "database no_such_state_db does not exist: create it"),
    "unknown user": (lambda pg, server: {"STATE_DB_USER": "no_such_user"},
                     "user no_such_user does not exist: set STATE_DB_USER"),
}
VERBS = {
    "run-once": ["run-once"],
    "runs": ["runs"],
    "scheduler": ["scheduler", "--max-ticks", "1"],
    "ui": ["ui", "--host", "127.0.0.1", "--port", "0"],
    "sqlmesh plan": ["sqlmesh", "plan", "prod", "--auto-apply", "--no-prompts"],
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_meets_a_state_db_fault_with_one_clear_bounded_line(
    verb, fault, project, pg_server, pg_database, refusing_server
):
    make_env, expected = FAULTS[fault]
    env = service_env(project, pg_server.env(pg_database), MESHCTL_STATE_DB_WAIT_SECONDS=str(WAIT),
                      MESHCTL_UI_PASSWORD="x", **make_env(pg_server, refusing_server))
    started = time.monotonic()
    result = meshctl(*VERBS[verb], env=env, check=False, timeout=60)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode not in (0, 1), output
    assert "Traceback" not in output, output
    assert expected in output, output
    if fault == "not answering":
        # The wait is bounded and exact to its bound (libpq's 2 s minimum connect timeout, plus
        # the process's start-up, is the slack).
        assert WAIT - 0.5 <= elapsed <= WAIT + 12, elapsed
        assert output.count("not ready (attempt") >= 2
    else:
        # Refused: waiting would not help, so it does not wait.
        assert "not ready (attempt" not in output, output


class Proxy:
    """TCP forwarder to PostgreSQL that can be cut (every connection dropped, new ones refused)
    and restored: the state database going away for a while, as a failover does."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.port = free_port()
        self.live: list[socket.socket] = []
        self.sock = None
        self.restore()

    def restore(self):
        self.sock = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()

    def cut(self):
        # shutdown() first: close() alone leaves a thread blocked in accept() listening on.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for s in self.live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.live.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.live += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass


def _run_processes(marker: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if f"MESHCTL_TEST_TREE={marker}".encode() in environ and b"--child" in cmdline and state != b"Z":
            out.append(int(entry.name))
    return out


def test_a_run_that_loses_the_state_db_is_killed_before_its_lease_can_expire(project, pg_server, pg_database, tmp_path):
    proxy = Proxy(pg_server.port)
    env = service_env(project, {**pg_server.env(pg_database), "STATE_DB_PORT": str(proxy.port)},
                      MESHCTL_RUN_LOCK_LEASE_SECONDS="6", MESHCTL_STATE_DB_WAIT_SECONDS=str(WAIT))
    plan_prod(env)
    for i in range(DAYS):
        land_day(project, i, now_utc())
    marker = uuid.uuid4().hex
    log = tmp_path / "run.log"
    proc = spawn_meshctl("run-once", env={**env, "SERVICE_TEST_PAUSE": "60", "MESHCTL_TEST_TREE": marker}, log=log)
    with terminating(proc):
        deadline = time.monotonic() + 60
        while "Evaluating" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        proxy.cut()
        cut_at = time.time()
        while _run_processes(marker):
            assert time.time() - cut_at < 10, "the run was not stopped"
            time.sleep(0.1)
        stopped_at = time.time()
        code = proc.wait(timeout=60)
    proxy.restore()
    output = log.read_text()
    with pg_server.connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT extract(epoch FROM lease_until), token FROM meshctl.run_lock")
        lease_until, token = cur.fetchone()
    assert stopped_at < float(lease_until), "the run stopped writing before anyone could take the lock"
    assert code == 2 and "Traceback" not in output, output
    assert "run lock lost" in output and "meshctl: error: lost the state database" in output, output

    # Back: the next run takes over (new token), marks the dead one, and completes the work.
    after = meshctl("run-once", env=env)
    assert after.returncode == 0, after.stdout + after.stderr
    with pg_server.connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT token, ended FROM meshctl.run_lock_grants WHERE token >= %s ORDER BY token", (token,))
        assert cur.fetchall() == [(token, "expired"), (token + 1, "released")]
        cur.execute("SELECT status FROM meshctl.run_history WHERE trigger = 'manual' ORDER BY started_at")
        assert [r[0] for r in cur.fetchall()] == ["abandoned", "success"]
