# dashvault: `make run` serves the demo over HTTPS; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# sslyze needs an older `cryptography` than dashvault: it gets a venv of its own.
TLS_VENV := .venv-tls
PYTHON ?= python3
export DASHVAULT_DATA_DIR ?= $(CURDIR)/data

.PHONY: setup assets run test lint bench clean

setup: $(VENV)/.installed $(TLS_VENV)/.installed assets

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(TLS_VENV)/.installed: tls-scan-requirements.txt
	$(PYTHON) -m venv $(TLS_VENV)
	$(TLS_VENV)/bin/pip install --quiet --disable-pip-version-check -r tls-scan-requirements.txt
	touch $@

# Front-end libraries from npm (lock file committed), copied to where Django serves them.
assets: dashvault/static/vendor/echarts.min.js

dashvault/static/vendor/echarts.min.js: package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	mkdir -p dashvault/static/vendor
	cp node_modules/echarts/dist/echarts.min.js $@

run: setup
	$(BIN)/dashvault migrate --verbosity 0
	$(BIN)/dashvault demo
	@echo "Open https://localhost:8443/ (self-signed certificate: accept it once)."
	$(BIN)/dashvault serve --host 127.0.0.1 --port 8443

# With CI=true the PostgreSQL, Redis and browser tests must run (they fail instead of skipping),
# and the suite runs a second time on PostgreSQL.
test: setup
	$(BIN)/ruff check dashvault tests bench
	bash .ci/security-checks
	$(BIN)/mypy dashvault
	DASHVAULT_DATA_DIR=$$(mktemp -d) $(BIN)/dashvault makemigrations --check --dry-run
	$(BIN)/pytest
	@if [ "$$CI" = "true" ] || [ -n "$$DASHVAULT_TEST_POSTGRES_URL" ]; then \
	  echo "== the same suite on PostgreSQL =="; \
	  DASHVAULT_TEST_ON_POSTGRES=1 $(BIN)/pytest -m "not browser and not servers"; \
	fi

lint:
	$(BIN)/ruff check dashvault tests bench
	$(BIN)/ruff format --check dashvault tests
	$(BIN)/mypy dashvault

# Benchmarks of issue 3: every bench/*.py script in turn (bench/_*.py are their helpers), each
# on its own throwaway data; the target fails when any script misses a target. `--quick` on a
# script gives a short trial run; run them on a quiet machine for the figures.
bench: setup
	@status=0; for script in bench/[!_]*.py; do \
	  echo "== $$script =="; \
	  $(BIN)/python $$script || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) $(TLS_VENV) node_modules dashvault/static/vendor
