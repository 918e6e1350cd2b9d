#!/usr/bin/env bash
# Deploy the Goodword SQLMesh CloudFormation layers (bucket -> database -> server).
#
#   deploy/deploy.sh --all --env prod               # create or update every layer
#   deploy/deploy.sh --server --env prod --dry-run  # print the server's change set, change nothing
#   deploy/deploy.sh --status                       # each stack's status and outputs
#
# Parameters come from deploy/params/<env>.env (copy example.env; real ones are git-ignored).
# The logic lives in deploy.py (boto3): it needs no aws CLI, and AWS_ENDPOINT_URL points it at
# moto for tests. Run deploy/deploy.sh --help for every flag.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

# The project's virtualenv if there is one (make setup), else whatever python3 is on PATH.
python="${DEPLOY_PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then
    python="$repo/.venv/bin/python"
  else
    python="$(command -v python3 || true)"
  fi
fi
if [[ -z "$python" ]]; then
  echo "deploy.sh: no python3 found (run 'make setup' or set DEPLOY_PYTHON)" >&2
  exit 2
fi
if ! "$python" -c 'import boto3, yaml' 2>/dev/null; then
  echo "deploy.sh: $python lacks boto3/PyYAML (run 'make setup' or pip install boto3 pyyaml)" >&2
  exit 2
fi

exec "$python" "$here/deploy.py" "$@"
