"""Dockerfile contract (docker build cannot run here): multi-stage, slim, non-root, HEALTHCHECK,
and the dependency pins CI installs."""

from __future__ import annotations

import re

from tests.stack.conftest import ROOT, load_yaml

DOCKERFILE = (ROOT / "Dockerfile").read_text()
LINES = [ln.strip() for ln in DOCKERFILE.splitlines() if ln.strip() and not ln.startswith("#")]


def test_multi_stage_from_a_pinned_slim_python() -> None:
    stages = [ln for ln in LINES if ln.startswith("FROM ")]
    assert len(stages) >= 2
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1))
    compose = load_yaml(ROOT / "docker-compose.otel.yml")
    assert compose["x-images"]["python"] == base.group(1)
    assert "COPY --from=build" in DOCKERFILE


def test_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    users = [ln for ln in LINES if ln.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0", "USER 0:0")
    assert any(ln.startswith("HEALTHCHECK ") for ln in LINES)
    assert "/health/ready" in DOCKERFILE
    assert LINES.index(users[-1]) > max(i for i, ln in enumerate(LINES) if ln.startswith("RUN "))


def test_installs_the_pins_ci_tested() -> None:
    assert "-c constraints.txt" in DOCKERFILE
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt -e '.[dev]'" in makefile
    pins = {
        ln.split("==")[0].lower().replace("_", "-")
        for ln in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in ln
    }
    for dep in (
        "fastapi",
        "uvicorn",
        "sqlalchemy",
        "redis",
        "httpx",
        "opentelemetry-sdk",
        "prometheus-client",
        "alembic",
        "asyncpg",
    ):
        assert dep in pins, dep
    assert all(
        "==" in ln
        for ln in (ROOT / "constraints.txt").read_text().splitlines()
        if ln and not ln.startswith("#")
    )


def test_one_image_for_every_app_command() -> None:
    compose = load_yaml(ROOT / "docker-compose.otel.yml")
    commands = {
        n: s["command"] for n, s in compose["services"].items() if s.get("image") == "trawl:local"
    }
    assert {"api", "worker", "migrate", "canary"} <= set(commands)
    assert commands["worker"] == ["python", "-m", "app.worker"]
    assert commands["migrate"] == ["python", "-m", "app.db.migrate"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
