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

test: setup  ## SQLMesh unit tests, the linter, then pytest (needs PostgreSQL, see README)
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

.PHONY: bench
bench: setup  ## timings and peak memory at one year of events on `local` (README "Benchmark")
	python bench/benchmark.py $(BENCH_ARGS)

# The service in containers (Docker Compose). `up` includes the local PostgreSQL state database;
# production hosts run `docker compose up -d` (no `local` profile) with their env file.
COMPOSE ?= docker compose

up:  ## build the image and start ui (:8000), scheduler and a local state database
	$(COMPOSE) --profile local up -d --build

down:  ## stop and remove the service containers (volumes kept)
	$(COMPOSE) --profile local down

logs:  ## follow the service logs
	$(COMPOSE) --profile local logs -f --tail=200

.PHONY: deploy-lint
deploy-lint: setup  ## cfn-lint the CloudFormation templates (deploy/*.yaml)
	cfn-lint --regions us-east-2 -- deploy/*.yaml
