# Trawl: every job has one entry point here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export TRAWL_ADMIN_API_KEY ?= trawl-local-admin-key-change-me-0123456789

.PHONY: help install run api worker migrate healthcheck-worker test test-sqlite test-postgres lint typecheck fmt clean

help:
	@echo "make run     - API + worker with embedded defaults (SQLite, embedded Redis)"
	@echo "make test    - the whole test suite (SQLite; PostgreSQL too when reachable)"
	@echo "make api | worker | migrate | healthcheck-worker | lint | typecheck | fmt | clean"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Local development only: lets `make run` scrape loopback/private pages (the README example).
# Local development: loopback targets allowed. Without OTEL_EXPORTER_OTLP_ENDPOINT there is no
# collector to send to (no `make up`), so export stays off instead of failing every few seconds.
run: install
	@if [ -z "$$OTEL_EXPORTER_OTLP_ENDPOINT" ]; then \
	  echo "telemetry export off: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318) to send it"; \
	  export OTEL_TRACES_EXPORTER=$${OTEL_TRACES_EXPORTER:-none} OTEL_METRICS_EXPORTER=$${OTEL_METRICS_EXPORTER:-none} \
	         OTEL_LOGS_EXPORTER=$${OTEL_LOGS_EXPORTER:-none}; \
	fi; TRAWL_ALLOW_PRIVATE_TARGETS=true $(PY) -m app.run

api: install
	$(PY) -m app.serve --host 127.0.0.1 --port 8000

worker: install
	$(PY) -m app.worker

migrate: install
	$(PY) -m app.db.migrate

# Exit 0 when this host's worker heartbeat is fresh (a container HEALTHCHECK; docs/health.md).
healthcheck-worker: install
	$(PY) -m app.healthcheck worker

# The suite runs on SQLite, then again on PostgreSQL. TEST_POSTGRES_URL picks the server;
# without it 127.0.0.1:5432 is tried, and skipped when absent unless TRAWL_REQUIRE_POSTGRES=1.
test: install test-sqlite test-postgres

test-sqlite: install
	TEST_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS)

test-postgres: install
	TEST_DB=postgres $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check app otel tests
	$(PY) -m ruff format --check app otel tests

typecheck: install
	$(PY) -m mypy

fmt: install
	$(PY) -m ruff format app otel tests
	$(PY) -m ruff check --fix app otel tests

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
