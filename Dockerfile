# One image, two long-running roles and every CLI verb:
#   docker run IMAGE ui | scheduler | run-once | runs | health | doctor | demo | sqlmesh plan ...
# The entry point is `meshctl`; the command picks the verb (default: the UI on :8000).
# No credentials are baked in: they come from the environment (env_file) or Secrets Manager.

# --- builder: install the pinned dependencies into a virtualenv, from wheels only --------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# pip is pinned like everything else (the resolver `make setup` uses) and lives in a venv of its
# own: the service's venv (/opt/venv) gets the packages constraints.txt pins and nothing else, not
# even pip or setuptools.
RUN python -m venv /opt/pip \
    && /opt/pip/bin/pip install --no-cache-dir pip==26.3 \
    && python -m venv --without-pip /opt/venv

WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY meshctl/ meshctl/
# Wheels only: the base has no compiler and no pg_config, so nothing may need building (the one
# psycopg2 is psycopg2-binary, with libpq inside its wheel; see pyproject.toml). Then: no broken
# requirements, and every installed package is pinned, at that version, in constraints.txt.
RUN /opt/pip/bin/pip --python /opt/venv/bin/python install --no-cache-dir --only-binary :all: \
        -c constraints.txt . \
    && /opt/pip/bin/pip --python /opt/venv/bin/python check \
    && /opt/pip/bin/pip --python /opt/venv/bin/python freeze --exclude goodword-sqlmesh >/tmp/installed.txt \
    && if grep -vxFf constraints.txt /tmp/installed.txt; then \
         echo "installed but not pinned in constraints.txt: the lines above" >&2; exit 1; \
       fi

# Files the service never reads (docs/operations.md, "Image", has the sizes): test suites, C++
# headers and sources, Jupyter front-end assets and jedi's type stubs (notebook and IPython
# completion only), pyarrow's Flight RPC and its S3 filesystem library (S3 goes through boto3).
# Every package stays installed; .ci/container-checks.sh imports what the service uses.
WORKDIR /opt/venv/lib/python3.11/site-packages
RUN rm -rf pandas/tests numpy/tests numpy/*/tests pyarrow/tests pyarrow/include pyarrow/src \
              pyarrow/_pyarrow_cpp_tests* pyarrow/*flight* pyarrow/libarrow_s3.so* \
              jedi/third_party /opt/venv/share/jupyter
# Plain `sqlmesh` in the image is `meshctl sqlmesh`, so its writes take the run lock like every
# other writer (meshctl/service/writers.py) and the emulated gateway works with it too.
RUN printf '#!/bin/sh\nexec /opt/venv/bin/meshctl sqlmesh "$@"\n' >/opt/venv/bin/sqlmesh \
    && chmod 0755 /opt/venv/bin/sqlmesh

# --- runtime -----------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm

# Everything the service writes lives under the service user's home, /var/lib/meshctl (a volume
# in docker-compose.yml): the local DuckDB warehouse, SQLMesh's cache, logs, run logs, the
# heartbeat and pulled project bundles. The project in /app stays read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MESHCTL_PROJECT_DIR=/app \
    MESHCTL_LOG_FORMAT=json \
    LOCAL_DATA_DIR=/var/lib/meshctl/data/local \
    FAKESNOW_DATA_DIR=/var/lib/meshctl/data/fakesnow \
    SQLMESH__CACHE_DIR=/var/lib/meshctl/cache \
    MESHCTL_HEARTBEAT_PATH=/var/lib/meshctl/heartbeat.json \
    MESHCTL_RUN_LOG_DIR=/var/lib/meshctl/runs \
    MESHCTL_BUNDLE_DIR=/var/lib/meshctl/project \
    MESHCTL_UI_HOST=0.0.0.0 \
    MESHCTL_UI_PORT=8000

# The home's layout is in the image, so a new named volume mounted there starts with it, owned by
# the service user.
RUN groupadd --system --gid 10001 meshctl \
    && useradd --system --uid 10001 --gid meshctl --home-dir /var/lib/meshctl --no-create-home \
         --shell /usr/sbin/nologin meshctl \
    && install -d -o 10001 -g 10001 -m 0755 /var/lib/meshctl /var/lib/meshctl/data \
         /var/lib/meshctl/data/local /var/lib/meshctl/cache /var/lib/meshctl/logs \
         /var/lib/meshctl/runs /var/lib/meshctl/project

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# The SQLMesh project, owned by root so the service user cannot change it. The build context is
# an allow-list (.dockerignore): project folders only; no .env, keys, data/ or .venv.
COPY . .
# SQLMesh writes project-relative .cache/ and logs/ (the `sqlmesh` CLI's log files): both point
# into the home.
RUN ln -s /var/lib/meshctl/cache /app/.cache \
    && ln -s /var/lib/meshctl/logs /app/logs

USER 10001:10001
EXPOSE 8000

# Scheduler: a fresh heartbeat; UI: /healthz answering. `meshctl health` tells which from the
# marker the running role wrote.
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 CMD ["meshctl", "health"]

ENTRYPOINT ["meshctl"]
CMD ["ui"]
