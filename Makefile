# Two commands matter: `make run` and `make test`. Both set everything up and are idempotent.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup stack-up stack-down stack-status migrate lint bench bench-smoke clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "python3 is required"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

stack-up: setup
	$(BIN)/python stack/stack.py up

stack-down:
	@$(PY) stack/stack.py down

stack-status:
	@$(PY) stack/stack.py status

migrate: stack-up
	$(BIN)/python stack/stack.py dev-config
	$(BIN)/metrictui --config .stack/metrictui.toml migrate

run: migrate
	$(BIN)/metrictui --config .stack/metrictui.toml

lint: setup
	$(BIN)/ruff check engine tui tests stack
	$(BIN)/ruff format --check engine tui tests stack
	$(BIN)/mypy

test: stack-up
	$(MAKE) lint
	$(BIN)/pytest -q -ra
