# One image, two long-running roles and every CLI verb:
#   docker run IMAGE ui | scheduler | run-once | runs | health | doctor | sqlmesh plan ...
# The entry point is `meshctl`; the command picks the verb (default: the UI on :8000).
# No credentials are baked in: they come from the environment (env_file) or Secrets Manager.

# --- builder: resolve and install the pinned dependencies into a virtualenv ------------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies first (cached layer); every version comes from constraints.txt. All of them ship
# manylinux wheels (psycopg2-binary included), so no compiler is needed.
COPY pyproject.toml constraints.txt ./
COPY meshctl/ meshctl/
RUN pip install --no-cache-dir -c constraints.txt . \
    && pip check

# --- runtime ---------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MESHCTL_PROJECT_DIR=/app \
    MESHCTL_LOG_FORMAT=json \
    MESHCTL_HEARTBEAT_PATH=/var/lib/meshctl/heartbeat.json \
    MESHCTL_RUN_LOG_DIR=/var/lib/meshctl/runs \
    MESHCTL_BUNDLE_DIR=/var/lib/meshctl/project \
    MESHCTL_UI_HOST=0.0.0.0 \
    MESHCTL_UI_PORT=8000

RUN groupadd --system --gid 10001 meshctl \
    && useradd --system --uid 10001 --gid meshctl --home-dir /var/lib/meshctl --create-home --shell /usr/sbin/nologin meshctl

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# The SQLMesh project, owned by root so the service user cannot change it. The build context is
# an allow-list (.dockerignore): project folders only; no .env, keys, data/ or .venv.
COPY . .
# SQLMesh writes its cache and logs inside the project directory. A project pulled from S3
# (MESHCTL_BUNDLE) goes to MESHCTL_BUNDLE_DIR under the service user's home instead.
RUN mkdir -p /app/.cache /app/logs \
    && chown 10001:10001 /app/.cache /app/logs

USER 10001:10001
EXPOSE 8000

# Scheduler: a fresh heartbeat; UI: /healthz answering. `meshctl health` tells which from the
# marker the running role wrote.
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 CMD ["meshctl", "health"]

ENTRYPOINT ["meshctl"]
CMD ["ui"]
