"""Alerting as code: rules, Alertmanager, runbooks. Nothing here touches the database, so these
tests run in the SQLite pass of `make test` only."""

from __future__ import annotations

import os

# the PostgreSQL pass re-runs the suite for the database: nothing to learn here
collect_ignore_glob = ["test_*.py"] if os.environ.get("TEST_DB") == "postgres" else []
