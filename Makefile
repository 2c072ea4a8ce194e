# Trawl: every job has one entry point here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export TRAWL_ADMIN_API_KEY ?= trawl-local-admin-key-change-me-0123456789

.PHONY: help install lock run api worker migrate healthcheck-worker canary test test-sqlite test-postgres lint typecheck fmt clean up down logs smoke bench

help:
	@echo "make run     - API + worker with embedded defaults (SQLite, embedded Redis)"
	@echo "make test    - the whole test suite (SQLite; PostgreSQL too when reachable)"
	@echo "make api | worker | migrate | healthcheck-worker | canary | lint | typecheck | fmt | clean"
	@echo "make up      - the observability stack in Docker (docs/monitoring/setup.md); DEMO=1 adds load"
	@echo "make down | logs | smoke (proves a trace in Tempo, logs in Loki, metrics in Prometheus)"
	@echo "make bench   - telemetry overhead, health, log latency, memory: docs/performance.md (BENCH_QUICK=1: short, to var/bench/)"

# constraints.txt pins every dependency to what CI tested; the Docker image installs the same.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Re-pin constraints.txt to what is installed (after changing pyproject.toml).
lock:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^trawl'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

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
	$(PY) -m ruff check app otel tests grafana/smoke
	$(PY) -m ruff format --check app otel tests grafana/smoke

typecheck: install
	$(PY) -m mypy

fmt: install
	$(PY) -m ruff format app otel tests grafana/smoke
	$(PY) -m ruff check --fix app otel tests grafana/smoke

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

# End-to-end canary against a running API (settings: TRAWL_CANARY_*, docs/monitoring/setup.md).
canary: install
	$(PY) -m app.canary

# Benchmarks (docs/performance.md): about 13 minutes on 2 cores; needs wrk, redis-server and
# PostgreSQL's server binaries (a cluster of its own; BENCH_POSTGRES_URL: an existing server). The [bench] extra is installed here
# only: scrapy, prometheus-fastapi-instrumentator and py-spy are never runtime dependencies.
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) -m tests.bench $(if $(filter 1 true yes,$(BENCH_QUICK)),--quick) $(BENCH_ARGS)

# --- the observability stack (docker-compose.otel.yml; docs/monitoring/setup.md) -------------
STACK := grafana/bin/stack.sh
up:
	@$(STACK) up
down:
	@$(STACK) down
logs:
	@$(STACK) logs
smoke:
	@$(STACK) smoke
