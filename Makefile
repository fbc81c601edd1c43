# SynStar console. Two commands: `make run` (quickstart) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# make test always runs on real PostgreSQL and Redis (started by tests/ensure_services.sh if needed).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/synstar
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
TEST_CACHE_URL ?= redis://127.0.0.1:6379/14
PYTEST_ARGS ?=

BENCH_ARGS ?=

.PHONY: run test bench install install-test migrate demo check-ledger clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py load_demo

run: demo
	$(BIN)/python manage.py runstack

test: install-test
	tests/ensure_services.sh
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) CACHE_URL=$(TEST_CACHE_URL) DEBUG=false \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks (bench/README in the main README): ratios measured in one run on the local PostgreSQL.
bench: install-test
	tests/ensure_services.sh
	$(BIN)/python bench/run.py $(BENCH_ARGS)

check-ledger: install
	$(BIN)/python manage.py check_ledger

clean:
	rm -rf $(VENV) .celery db.sqlite3 db.sqlite3-* .pytest_cache .hypothesis
