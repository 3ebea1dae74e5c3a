# Two commands matter: `make run` and `make test`. Both set everything up and are idempotent.
# METRICTUI_STACK_BROKERS=3 make stack-up (and stack-status, run) uses a three-node Kafka cluster.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STACK_DIR := $(or $(METRICTUI_STACK_DIR),.stack)
DEV_CONFIG := $(STACK_DIR)/metrictui.toml

.PHONY: run test setup system-deps stack-up stack-down stack-status migrate lint bench bench-smoke bench-peers soak clean

# Byte-compiled once here: with PYTHONDONTWRITEBYTECODE set (as on CI and these boxes) every
# `metrictui` start would otherwise compile engine/ and tui/ again (~0.1 s per process).
setup: system-deps $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 engine tui >/dev/null

# Tools the tests drive: tmux for the real-terminal test, Debian's chromium for the browser
# tests of `metrictui serve`. Java 17+, Maven and PostgreSQL's server binaries are checked (and
# PostgreSQL installed if absent) by stack/stack.py.
system-deps:
	@missing=""; command -v tmux >/dev/null || missing="$$missing tmux"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "needed for the tests:$$missing (apt-get install$$missing)"; exit 1; fi; fi

# PYTHONWARNINGS reaches the isolated build backend: it hides setuptools' "Editable
# installation" warning, which reads like a problem on every first `make run`.
$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "python3 (3.11+) is required"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

stack-up: setup
	$(BIN)/python stack/stack.py up --secure

stack-down:
	@$(PY) stack/stack.py down

stack-status:
	@$(PY) stack/stack.py status

migrate: stack-up
	$(BIN)/python stack/stack.py dev-config
	$(BIN)/metrictui --config $(DEV_CONFIG) migrate

run: migrate
	$(BIN)/metrictui --config $(DEV_CONFIG)

lint: setup
	$(BIN)/ruff check engine tui tests stack bench
	$(BIN)/ruff format --check engine tui tests stack bench
	$(BIN)/mypy

test: stack-up
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q -ra

# The full benchmark (a few minutes; >= 1,000,000 sample rows): table on stdout,
# figures in bench/results/latest.json. `make test` runs the tiny one (tests/delivery/test_bench_smoke.py).
bench: stack-up
	$(BIN)/python -m bench --scale full

bench-smoke: stack-up
	$(BIN)/python -m bench --scale tiny

# 30 minutes at 2,000 events/s against the three-node cluster (started in $(STACK_DIR)/cluster),
# one random fault every few minutes; the verdict goes to bench/results/soak.json.
# `make test` runs a 2-minute version (tests/faults/test_soak_short.py). SOAK_MINUTES=10 make soak.
SOAK_MINUTES ?= 30
soak: setup
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

# metrictui against Telegraf 1.37.2 and Kafka Connect 4.1 + Debezium JDBC sink 3.4.0 on the same
# samples and the same checks (~10 minutes, plus ~12 once to build Telegraf, cached in
# ~/.cache/metrictui-peers): table on stdout, figures in bench/results/peers.json.
# `make test` runs a smoke of it without Telegraf (tests/delivery/test_bench_peers_smoke.py).
bench-peers: stack-up
	$(BIN)/python -m bench.peers --scale full

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
