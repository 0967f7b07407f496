# PushApp: `make run` (set up and serve) and `make test` (set up and run the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The test suite's services (CI's machine has them on these addresses).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/pushapp
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: help venv run test lint typecheck pytest services browser-deps sdk-deps bench bench-quick clean

help:
	@echo "make run    set up (venv, migrations, demo data) and serve http://127.0.0.1:8000/admin/"
	@echo "make test   set up and run ruff, mypy and the pytest suite on PostgreSQL and Redis"
	@echo "make bench  run the benchmarks (docs/benchmarks.md)"

$(BIN)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"
	$(BIN)/pip install -q -r requirements.lock
	@touch $@

venv: $(BIN)/.installed

run: venv
	@bash scripts/run.sh

services:
	@bash scripts/test-services.sh "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	DEBUG=1 $(BIN)/mypy .

pytest: venv services sdk-deps browser-deps
	TEST_DATABASE_NAME=$${TEST_DATABASE_NAME:-test_pushapp_$$$$} \
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" DEBUG=0 \
	SECRET_KEY=test-only-secret-key-not-for-production-0123456789 SECURE_SSL_REDIRECT=0 \
	SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0 ALLOWED_HOSTS="*" \
	$(BIN)/pytest $(PYTEST_ARGS)

# The real Node SDKs that tests/events/test_real_sdks.py drives (reinstalled when the lock changes).
SDK_DIR := tests/sdk
sdk-deps: $(SDK_DIR)/node_modules/.installed

$(SDK_DIR)/node_modules/.installed: $(SDK_DIR)/package-lock.json $(SDK_DIR)/package.json
	npm ci --no-audit --no-fund --prefix $(SDK_DIR)
	@touch $@

# Debian's Chromium and ChromeDriver for the browser tests (never a downloaded browser).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing Debian's chromium and chromium-driver for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

test: lint typecheck pytest

bench: venv services
	@bash bench/run.sh

bench-quick: venv services
	@bash bench/run.sh --quick

clean:
	rm -rf $(VENV) var
