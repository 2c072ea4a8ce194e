"""Every route rejects a NUL in its path and query parameters (app/api/routing.py). The behaviour
itself is tested over HTTP (tests/integration/test_jobs_api.py); this holds the wiring: a router
added without ``route_class=CheckedRoute`` would skip the check."""

from __future__ import annotations

import pytest
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.routing import CheckedRoute, reject_nul
from app.main import create_app
from tests.support.config import make_settings


def test_every_api_route_checks_for_nul() -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///unused.db", "redis://127.0.0.1:1/0", metrics_endpoint_enabled=True
    )
    # FastAPI resolves included routers lazily: walk them down to the routes as declared
    declared = (c.original_route for c in iter_route_contexts(create_app(settings).routes))
    routes = [r for r in declared if isinstance(r, APIRoute)]
    assert len(routes) > 20
    unchecked = [r.path for r in routes if not isinstance(r, CheckedRoute)]
    assert unchecked == []


def _request(path: str, query: bytes = b"", params: dict[str, str] | None = None) -> Request:
    return Request(
        {"type": "http", "path": path, "query_string": query, "path_params": params or {}}
    )


@pytest.mark.parametrize(
    ("path", "query", "params", "loc"),
    [
        ("/v1/jobs/a\x00b", b"", {"job_id": "a\x00b"}, ("path", "job_id")),
        ("/v1/jobs", b"limit=5&cursor=x%00y", {}, ("query", "cursor")),
        ("/v1/jobs", b"cursor=x\x00y", {}, ("query", "cursor")),
    ],
)
def test_a_nul_in_a_parameter_is_a_validation_error(
    path: str, query: bytes, params: dict[str, str], loc: tuple[str, str]
) -> None:
    with pytest.raises(RequestValidationError) as raised:
        reject_nul(_request(path, query, params))
    assert raised.value.errors()[0]["loc"] == loc


@pytest.mark.parametrize("query", [b"", b"limit=5&cursor=abc", b"q=%2500"])
def test_parameters_without_nul_pass(query: bytes) -> None:
    reject_nul(_request("/v1/jobs/job_1", query, {"job_id": "job_1"}))
