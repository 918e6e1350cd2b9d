"""`meshctl ui` start-up rules, on real processes: no credentials, no start; a state database
that is down gets a bounded wait and then a clear error; one that comes up within the wait lets
the UI start; a state written by another SQLMesh/SQLGlot version is refused; the auth layer
answers 401 with a challenge and leaves /healthz open."""

from __future__ import annotations

import base64
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from service_helpers import (
    free_port,
    make_project,
    meshctl,
    plan_prod,
    service_env,
    spawn_meshctl,
    terminating,
    wait_http,
)


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


class DelayedProxy:
    """A TCP proxy to the real PostgreSQL that starts listening only once `ready()` is true
    (polled): the state database "comes up" while the service is waiting for it. A condition,
    not a fixed delay, because start-up time varies with the machine's load."""

    def __init__(self, target: tuple[str, int], ready):
        self.target, self.ready = target, ready
        self.port = free_port()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []

    def __enter__(self):
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass

    def _serve(self):
        while not self.ready():
            if self._stop.wait(0.2):
                return
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.5)
        self._sockets.append(listener)
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_ui_refuses_to_start_without_credentials(project, pg_server, pg_database):
    env = service_env(project, pg_server.env(pg_database))
    result = meshctl("ui", "--port", str(free_port()), env=env, check=False, timeout=60)
    assert result.returncode == 3
    assert "no UI credentials" in result.stderr and "MESHCTL_UI_PASSWORD" in result.stderr


def test_ui_waits_bounded_for_a_down_state_db_then_fails_clearly(project, pg_server, pg_database):
    env = service_env(
        project,
        pg_server.env(pg_database),
        STATE_DB_PORT=str(free_port()),  # nothing listens there
        MESHCTL_STATE_DB_WAIT_SECONDS="4",
        MESHCTL_UI_PASSWORD="pw",
    )
    started = time.monotonic()
    result = meshctl("ui", "--port", str(free_port()), env=env, check=False, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    assert elapsed < 30
    assert result.stdout.count("not ready (attempt") >= 2, result.stdout
    assert "did not answer within 4s" in result.stderr


def test_ui_starts_once_the_state_db_comes_up_within_the_wait(project, pg_server, pg_database, tmp_path):
    port = free_port()
    log = tmp_path / "ui.log"
    failed_once = lambda: log.exists() and "not ready (attempt 1" in log.read_text()  # noqa: E731
    with DelayedProxy((pg_server.host, pg_server.port), ready=failed_once) as proxy:
        env = service_env(
            project,
            pg_server.env(pg_database),
            STATE_DB_PORT=str(proxy.port),
            MESHCTL_STATE_DB_WAIT_SECONDS="40",
            MESHCTL_UI_PASSWORD="pw",
        )
        proc = spawn_meshctl("ui", "--host", "127.0.0.1", "--port", str(port), env=env, log=log)
        with terminating(proc):
            wait_http(f"http://127.0.0.1:{port}/healthz", 50, proc, log)
            text = log.read_text()
            assert "not ready (attempt 1" in text and "is up (attempt" in text
            health = meshctl("health", env=env, check=False)
            assert health.returncode == 0 and "healthy: ui" in health.stdout
        # Once the UI is gone, the health check says so.
        health = meshctl("health", env=env, check=False)
        assert health.returncode == 1 and "unhealthy" in health.stdout


def test_ui_refuses_a_state_written_by_another_version(project, pg_server, pg_database):
    env = service_env(project, pg_server.env(pg_database), MESHCTL_UI_PASSWORD="pw")
    plan_prod(env)
    with pg_server.connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute("UPDATE sqlmesh._versions SET sqlglot_version = '99.0.0'")
    result = meshctl("ui", "--port", str(free_port()), env=env, check=False, timeout=60)
    assert result.returncode == 3
    assert "state version mismatch" in result.stderr and "99.0.0" in result.stderr
    assert "meshctl sqlmesh migrate" in result.stderr


def test_auth_layer_challenges_and_leaves_health_open(project, pg_server, pg_database, tmp_path):
    port = free_port()
    env = service_env(project, pg_server.env(pg_database), MESHCTL_UI_USERNAME="analyst", MESHCTL_UI_PASSWORD="s3cret:with-colon")
    log = tmp_path / "ui.log"
    proc = spawn_meshctl("ui", "--host", "127.0.0.1", "--port", str(port), env=env, log=log)
    base = f"http://127.0.0.1:{port}"

    def get(path: str, auth: tuple[str, str] | None = None):
        request = urllib.request.Request(base + path)
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    with terminating(proc):
        wait_http(base + "/healthz", 60, proc, log)
        for path in ("/", "/api/models", "/api/plan", "/lineage", "/healthz/../api/models"):
            status, headers, _ = get(path)
            assert status == 401, path
            assert headers["www-authenticate"].startswith('Basic realm="Goodword SQLMesh"')
        assert get("/api/models", ("analyst", "wrong"))[0] == 401
        assert get("/api/models", ("admin", "s3cret:with-colon"))[0] == 401
        status, _, body = get("/api/models", ("analyst", "s3cret:with-colon"))
        assert status == 200 and b"stg_events" in body
        status, _, body = get("/healthz")
        assert (status, body) == (200, b'{"status":"ok"}')
