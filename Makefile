# SynStar console. Two commands: `make run` (quickstart) and `make test` (lint and the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Where `make run` listens: `make run ADDR=0.0.0.0:8000` to be reachable from other machines.
ADDR ?= 127.0.0.1:8000

# make test always runs on real PostgreSQL and Redis (started by tests/ensure_services.sh if needed).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/synstar
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
TEST_CACHE_URL ?= redis://127.0.0.1:6379/14
PYTEST_ARGS ?=
BENCH_ARGS ?=
# The suite runs with DEBUG=false, which refuses to start without a real key and explicit hosts.
TEST_ENV = DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) CACHE_URL=$(TEST_CACHE_URL) DEBUG=false WHITENOISE_USE_FINDERS=true \
	SECRET_KEY=test-only-secret-key-not-for-production-0123456789abcdefgh ALLOWED_HOSTS=localhost,127.0.0.1,testserver
# The production settings of .env.example, for `check --deploy`.
DEPLOY_ENV = DEBUG=false SECRET_KEY=deploy-check-secret-key-0123456789abcdefghijklmnopqrstuvwxyz ALLOWED_HOSTS=console.example.com \
	BEHIND_TLS_PROXY=true SECURE_SSL_REDIRECT=true SECURE_COOKIES=true SECURE_HSTS_SECONDS=31536000 \
	SECURE_HSTS_INCLUDE_SUBDOMAINS=true SECURE_HSTS_PRELOAD=true

.PHONY: run test lint lock bench bench-relay bench-pages install install-test migrate messages demo check-ledger clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs exactly what the lock files say (hashes checked); `make lock` regenerates them from pyproject.toml.
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.installed-test: requirements-test.lock $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-test.lock
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --upgrade -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes --upgrade -o requirements-test.lock

migrate: install
	$(BIN)/python manage.py migrate --noinput

# The translation catalogs (locale/*.po) compiled to .mo in pure Python (polib): no GNU gettext needed.
messages: install
	$(BIN)/python manage.py compile_catalogs

demo: migrate
	$(BIN)/python manage.py load_demo

run: demo messages
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo "SynStar console on http://$(ADDR)/ (another address: make run ADDR=0.0.0.0:8000)"
	$(BIN)/python manage.py runstack --addr $(ADDR)

# Lint: ruff (errors, import order), mypy with the Django and DRF stubs, migrations in step with the
# models, and Django's deployment checks under the production settings of .env.example.
lint: install-test
	$(BIN)/ruff check .
	$(TEST_ENV) $(BIN)/mypy
	$(TEST_ENV) $(BIN)/python manage.py makemigrations --check --dry-run
	$(DEPLOY_ENV) $(BIN)/python manage.py check --deploy --fail-level WARNING

test: install-test messages
	tests/ensure_services.sh
	$(MAKE) lint
	$(TEST_ENV) $(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks (bench/README in the main README): ratios measured in one run on the local PostgreSQL.
bench: install-test
	tests/ensure_services.sh
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The dashboard chart and the balance history at 10,000 and 1,000,000 usage records (bench/pages.py): same
# query count at both sizes (asserted), time ratios printed and written to bench/results/pages.json.
bench-pages: install-test
	tests/ensure_services.sh
	$(BIN)/python bench/pages.py $(BENCH_ARGS)

# The relay against LiteLLM's proxy (bench/relay.py): LiteLLM in its own virtualenv, pinned with hashes in
# bench/litellm.lock (1.106.2: the newest release that resolves from this index; 1.108+ need a certifi not there).
.venv-litellm/bin/litellm: bench/litellm.lock
	$(PYTHON) -m venv .venv-litellm
	.venv-litellm/bin/python -m pip install --quiet --require-hashes -r bench/litellm.lock
	@touch $@

bench-relay: install-test .venv-litellm/bin/litellm
	tests/ensure_services.sh
	$(BIN)/python bench/relay.py $(BENCH_ARGS)

check-ledger: install
	$(BIN)/python manage.py check_ledger

clean:
	rm -rf $(VENV) .venv-litellm .celery db.sqlite3 db.sqlite3-* .pytest_cache .hypothesis staticfiles
