"""RFC 9457 problem details for every error the API returns, and their place in the OpenAPI
document: each operation declares the problems it can answer (``responses(401, 404)``), all
with the ``Problem`` schema under ``application/problem+json``, so generated clients handle
them (a schemathesis fuzz checks the declarations: tests/integration/test_api_contract.py)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import otel
from app.db import is_unavailable
from app.errors import AppError
from app.telemetry import capture, instruments

PROBLEM_JSON = "application/problem+json"
#: ``Retry-After`` (seconds) of a request that met an unavailable database: about how long a
#: restart or a failover takes, and long enough that clients retrying do not pile onto it.
DATABASE_RETRY_AFTER_S = 5
log = logging.getLogger("trawl.api")


class Problem(BaseModel):
    """An RFC 9457 problem: every error of this API (``application/problem+json``). Some types
    add members: ``errors`` (validation), ``status_value`` (a finished job)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`/problems/<slug>`: what happened (docs/api.md)")
    title: str
    status: int
    detail: str = Field(description="for people; never carries a submitted value or a secret")
    instance: str | None = Field(default=None, description="the request's path")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="validation problems: `{loc, msg, type}`, one per problem"
    )


#: What each status means when an operation declares it (per-operation detail: docs/api.md).
_MEANING = {
    400: "A parameter this API did not issue (a cursor)",
    401: "Missing, malformed, unknown or revoked API key",
    403: "The API key lacks the admin scope",
    404: "No such resource for this API key",
    409: "Conflicts with the resource's state",
    413: "The request body is larger than TRAWL_MAX_BODY_BYTES",
    422: "The request did not validate; `errors` says where and why",
    503: "A dependency (the database) is unavailable or does not answer in time; retry after "
    "`Retry-After` seconds",
}
_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problems an operation can answer."""
    return {s: {"description": _MEANING[s], "content": dict(_PROBLEM_CONTENT)} for s in statuses}


#: How a caller authenticates (``Authorization: Bearer ...``), for generated clients.
SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`trawl_sk_...`) from `POST /v1/api-keys`, or the admin key "
        "(`TRAWL_ADMIN_API_KEY`). Operations marked admin need the admin scope (403 otherwise).",
    },
    "HealthToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`TRAWL_HEALTH_TOKEN`: reads `/health/detailed` without the database.",
    },
}


def _security(path: str) -> list[dict[str, list[str]]]:
    """Either scheme may be presented to detailed health; every other operation takes a key."""
    if path == "/health/detailed":
        return [{"ApiKey": []}, {"HealthToken": []}]
    return [{"ApiKey": []}]


def _document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the ``Problem`` schema, every validation error (422) as a
    problem, ``413`` on every operation that takes a body, ``503`` (the database is
    unavailable) on every ``/v1`` operation, and the bearer schemes on every operation that
    takes a key (those that declare 401)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schema["components"]["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            declared = operation.setdefault("responses", {})
            if "422" in declared:
                declared["422"] = responses(422)[422]  # FastAPI's default is not our body
            if "requestBody" in operation:
                declared.setdefault("413", responses(413)[413])
            if path.startswith("/v1/"):  # every one reads the database (the API key, at least)
                declared.setdefault("503", responses(503)[503])
            if "401" in declared:  # it takes a key
                operation.setdefault("security", _security(path))
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema


def problem(
    status: int, title: str, detail: str, *, slug: str, instance: str | None = None, **ext: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(ext)
    headers = {"Retry-After": str(ext["retry_after"])} if "retry_after" in ext else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    # Never echo the submitted value back ('input'): it may hold a secret header or key.
    out = []
    for err in errors:
        msg = str(err.get("msg", "invalid"))
        out.append({"loc": list(err.get("loc", [])), "msg": msg, "type": err.get("type", "")})
    return out


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.type_slug,
        instance=request.url.path,
        **exc.extensions,
    )


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "")) or "<unmatched>"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if request.method == "POST" and _route(request) == "/v1/jobs":
        instruments().job_submitted.add(1, {"trawl.submit.outcome": "rejected_invalid"})
    return problem(
        422,
        "Invalid request",
        "The request did not validate; see 'errors'.",
        slug="validation-error",
        instance=request.url.path,
        errors=_clean_errors(exc.errors()),
    )


_HTTP_SLUGS = {
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI's answer to a body that is not UTF-8: like malformed JSON, it does not validate
        unreadable = {"type": "json_invalid", "loc": ("body",), "msg": "not UTF-8 JSON text"}
        return await _validation_error(request, RequestValidationError([unreadable]))
    slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
    title = slug.replace("-", " ").capitalize()
    return problem(exc.status_code, title, str(exc.detail), slug=slug, instance=request.url.path)


class UnhandledErrors:
    """Innermost safety net: an exception that escaped every handler becomes a problem: 503
    with ``Retry-After`` when the database is unavailable (down, unreachable, out of
    connections: :func:`app.db.is_unavailable`), so that clients retry, else 500.

    It runs inside the request-id and telemetry middlewares, so the capture sees the request's
    id, span and key, and the response still carries ``X-Request-ID``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            request = Request(scope)
            capture(
                exc,
                component="api",
                context={
                    "route": _route(request),
                    "method": request.method,
                    "request_id": otel.current_context().get("http.request.id"),
                    "api_key_id": getattr(request.state, "api_key_id", None),
                    "job_id": request.path_params.get("job_id"),
                },
            )
            if started:
                raise
            await _unhandled(exc, request.url.path)(scope, receive, send)


def _unhandled(exc: Exception, path: str) -> JSONResponse:
    if is_unavailable(exc):
        return problem(
            503,
            "Database unavailable",
            "The database is unavailable. Retry after 'Retry-After' seconds.",
            slug="database-unavailable",
            instance=path,
            retry_after=DATABASE_RETRY_AFTER_S,
        )
    return problem(
        500,
        "Internal error",
        "The server failed to handle this request.",
        slug="internal-error",
        instance=path,
    )


def install(app: FastAPI) -> None:
    """Problem responses for every error, and the problems in the OpenAPI document."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(UnhandledErrors)
    app.openapi = lambda: _document(app)  # type: ignore[method-assign]
