# Daily verbs. Everything runs from the project's virtualenv (.venv), created by `make setup`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo test lint plan run ui clean up down logs

$(BIN)/meshctl: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==26.3  # pinned like everything else: same resolver next month
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/meshctl  ## create .venv with the pinned dependencies

demo: setup  ## generate demo RAW data, build every model on `local`, print a summary
	meshctl demo

test: setup  ## SQLMesh unit tests, the linter, then pytest (needs PostgreSQL: README, Quick start)
	sqlmesh test
	sqlmesh lint
	pytest

lint: setup  ## SQLMesh linter, hadolint, compose/container file checks, cfn-lint
	sqlmesh lint
	hadolint Dockerfile
	pytest -q tests/python/test_container_files.py
	cfn-lint --regions us-east-2 -- deploy/*.yaml

plan: setup
	sqlmesh plan

run: setup
	sqlmesh run

ui: setup
	sqlmesh ui

clean:
	rm -rf data/local data/fakesnow .cache logs

.PHONY: docs
docs: setup  ## rewrite docs/marts.md and docs/lineage.md from the models (a test checks they are current)
	meshctl project-docs

.PHONY: bench
bench: setup  ## cost of the daily job's ticks at 365 and 90 days of events on `local` (docs/benchmark.md)
	python bench/benchmark.py $(BENCH_ARGS)

# The service in containers (Docker Compose), profile `local`: ui (:8000 on loopback), scheduler,
# each with its own demo warehouse, and a PostgreSQL for the scheduler's lock and run history.
# Settings: deploy/compose.env, made from deploy/compose.env.example on first use. Production hosts
# run `docker compose up -d` (no profile) with their own env file (deploy/server.yaml).
COMPOSE ?= docker compose
COMPOSE_ENV ?= deploy/compose.env
COMPOSE_LOCAL = MESHCTL_ENV_FILE=$(COMPOSE_ENV) $(COMPOSE) --env-file $(COMPOSE_ENV) --profile local

$(COMPOSE_ENV):
	cp deploy/compose.env.example $@
	@echo "wrote $@ from deploy/compose.env.example (UI login: admin / local-demo)"

up: $(COMPOSE_ENV)  ## build the image, start ui (127.0.0.1:8000), scheduler and a local state DB
	$(COMPOSE_LOCAL) up -d --build
	@echo "UI: http://$$(grep -E '^MESHCTL_UI_PUBLISH=' $(COMPOSE_ENV) | cut -d= -f2) (login in $(COMPOSE_ENV)); make logs / make down"

down: $(COMPOSE_ENV)  ## stop and remove the service containers (volumes kept: docker compose down -v drops them)
	$(COMPOSE_LOCAL) down

logs: $(COMPOSE_ENV)  ## follow the service logs
	$(COMPOSE_LOCAL) logs -f --tail=200

.PHONY: deploy-lint
deploy-lint: setup  ## cfn-lint the CloudFormation templates (deploy/*.yaml)
	cfn-lint --regions us-east-2 -- deploy/*.yaml
