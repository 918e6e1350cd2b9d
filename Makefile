# Daily verbs. Everything runs from the project's virtualenv (.venv), created by `make setup`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo test lint plan run ui clean

$(BIN)/meshctl: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/meshctl  ## create .venv with the pinned dependencies

demo: setup  ## generate demo RAW data, build every model on `local`, print a summary
	meshctl demo

test: setup  ## SQLMesh unit tests, the linter, then pytest (needs PostgreSQL, see README)
	sqlmesh test
	sqlmesh lint
	pytest

lint: setup  ## SQLMesh linter
	sqlmesh lint

plan: setup
	sqlmesh plan

run: setup
	sqlmesh run

ui: setup
	sqlmesh ui

clean:
	rm -rf data/local data/fakesnow .cache logs
