# Trawl: every job has one entry point here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export TRAWL_ADMIN_API_KEY ?= trawl-local-admin-key-change-me-0123456789

.PHONY: help install lock run api worker migrate healthcheck-worker canary test test-sqlite test-postgres test-unit lint typecheck ci fmt clean up down logs smoke dashboards bench drill

help:
	@echo "make run     - API + worker with embedded defaults (SQLite, embedded Redis)"
	@echo "make test    - the whole test suite (SQLite; PostgreSQL too when reachable); test-unit: seconds"
	@echo "make ci      - what CI runs: lint (ruff, import contracts) + typecheck + test"
	@echo "make api | worker | migrate | healthcheck-worker | canary | lint | typecheck | fmt | clean"
	@echo "make dashboards - regenerate grafana/dashboards/*.json and the dashboard rules from grafana/dashgen"
	@echo "make up      - the observability stack in Docker (docs/monitoring/setup.md); DEMO=1 adds load"
	@echo "make down | logs | smoke (proves a trace in Tempo, logs in Loki, metrics in Prometheus)"
	@echo "make drill   - live alert drills: real faults, real Prometheus + Alertmanager, notifications timed (docs/monitoring/drills.md; var/drill/)"
	@echo "make bench   - telemetry overhead, health, log latency, memory: docs/performance.md (BENCH_QUICK=1: short, to var/bench/)"

# constraints.txt pins every dependency to what CI tested; the Docker image installs the same.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Re-pin constraints.txt after changing pyproject.toml: resolve every dependency (all extras) in
# a fresh venv, keeping the current pins (UPGRADE=1: the newest allowed versions instead), and
# freeze it, so the file pins exactly what a fresh install gets, nothing left over.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet $(if $(UPGRADE),,-c constraints.txt) -e '.[dev,sentry,bench]'
	{ sed -n '1,2p' constraints.txt; $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | grep -v '^trawl'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

install: $(VENV)/.installed

# Local development: loopback and private targets are allowed unless the environment says
# otherwise (TRAWL_ALLOW_PRIVATE_TARGETS=false make run), so the README example can scrape a
# page on 127.0.0.1. Without OTEL_EXPORTER_OTLP_ENDPOINT there is no collector to send to (no
# `make up`), so export stays off instead of failing every few seconds.
run: install
	@if [ -z "$$OTEL_EXPORTER_OTLP_ENDPOINT" ]; then \
	  echo "telemetry export off: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318) to send it"; \
	  export OTEL_TRACES_EXPORTER=$${OTEL_TRACES_EXPORTER:-none} OTEL_METRICS_EXPORTER=$${OTEL_METRICS_EXPORTER:-none} \
	         OTEL_LOGS_EXPORTER=$${OTEL_LOGS_EXPORTER:-none}; \
	fi; TRAWL_ALLOW_PRIVATE_TARGETS=$${TRAWL_ALLOW_PRIVATE_TARGETS:-true} $(PY) -m app.run

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

# The unit tests alone: no I/O, seconds (tests/README.md).
test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Python that belongs to the stack rather than the app (run by compose services or make up)
STACK_PY := grafana/smoke grafana/alertmanager grafana/alert-sink grafana/prometheus/slo grafana/dashgen

# ruff, then the architecture's import contracts ([tool.importlinter] in pyproject.toml).
lint: install
	$(PY) -m ruff check app otel tests $(STACK_PY)
	$(PY) -m ruff format --check app otel tests $(STACK_PY)
	$(VENV)/bin/lint-imports --no-cache

typecheck: install
	$(PY) -m mypy

# Everything CI checks (.ci/run calls this after starting PostgreSQL and Redis).
ci: lint typecheck test

fmt: install
	$(PY) -m ruff format app otel tests $(STACK_PY)
	$(PY) -m ruff check --fix app otel tests $(STACK_PY)

# Dashboards as code: grafana/dashgen writes grafana/dashboards/*.json and
# grafana/prometheus/rules/dashboards.yml (docs/monitoring/dashboards.md). Commit the result;
# tests/dashboards fails when the committed files differ from what the code generates.
dashboards: install
	$(PY) -m grafana.dashgen

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .hypothesis

# End-to-end canary against a running API (settings: TRAWL_CANARY_*, docs/monitoring/setup.md).
canary: install
	$(PY) -m app.canary

# Benchmarks (docs/performance.md): 15 to 25 minutes on 2 cores (the machine's speed varies); needs wrk, valgrind (the
# instruction counts; skipped without it), redis-server and
# PostgreSQL's server binaries (a cluster of its own; BENCH_POSTGRES_URL: an existing server). The [bench] extra is installed here
# only: scrapy, prometheus-fastapi-instrumentator and py-spy are never runtime dependencies.
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) -m tests.bench $(if $(filter 1 true yes,$(BENCH_QUICK)),--quick) $(BENCH_ARGS)

# Live alert drills (docs/monitoring/drills.md): lanes of the whole stack on loopback (Debian's
# Prometheus, Alertmanager, exporters; PostgreSQL clusters and redis-servers of their own), real
# faults, notifications timed end to end. About 20 minutes on 2 cores; writes var/drill/.
# DRILL_ARGS: e.g. --only workers-stopped,redis-down
drill: install
	$(PY) -m tests.drill $(DRILL_ARGS)

# --- the observability stack (docker-compose.otel.yml; docs/monitoring/setup.md) -------------
STACK := grafana/bin/stack.sh
up: install
	@PY=$(PY) $(STACK) up
down:
	@$(STACK) down
logs:
	@$(STACK) logs
smoke:
	@$(STACK) smoke
