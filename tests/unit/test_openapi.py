"""The OpenAPI document declares the problems: every error response of every operation is an
``application/problem+json`` ``Problem``, but for the health reports' 503 (readiness answers
its report; detailed health its report, or a problem when the key cannot be checked). The fuzz
that holds the answers to it: tests/integration/test_api_contract.py.
"""

from __future__ import annotations

from typing import Any

from app.main import create_app
from tests.support.config import make_settings

PROBLEM = {"$ref": "#/components/schemas/Problem"}
#: Errors that are reports, not problems: the health endpoints' 503 bodies.
REPORTS = {("/health/ready", "503"), ("/health/detailed", "503")}


def _document() -> dict[str, Any]:
    app = create_app(make_settings("sqlite+aiosqlite:///unused.db", "redis://127.0.0.1:1/0"))
    return dict(app.openapi())


def test_every_error_response_is_a_problem() -> None:
    doc = _document()
    assert set(doc["components"]["schemas"]["Problem"]["required"]) == {
        "type",
        "title",
        "status",
        "detail",
    }
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    errors = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                errors += 1
                content = response["content"]
                if (path, status) in REPORTS:
                    assert "application/json" in content, (path, status)
                    continue
                assert set(content) == {"application/problem+json"}, (path, method, status)
                assert content["application/problem+json"]["schema"] == PROBLEM, (path, method)
    assert errors > 60


def test_what_each_operation_declares() -> None:
    doc = _document()

    def declared(method: str, path: str) -> set[str]:
        return {s for s in doc["paths"][path][method]["responses"] if int(s) >= 400}

    assert declared("post", "/v1/jobs") == {"401", "409", "413", "422", "503"}
    assert declared("get", "/v1/jobs") == {"400", "401", "422", "503"}
    assert declared("post", "/v1/jobs/{job_id}/cancel") == {"401", "404", "409", "422", "503"}
    assert declared("delete", "/v1/api-keys/{key_id}") == {"401", "403", "404", "422", "503"}
    assert declared("patch", "/v1/proxies/{proxy_id}") == {"401", "403", "404", "413", "422", "503"}
    assert declared("post", "/v1/webhook-deliveries/{delivery_id}/redeliver") >= {"404", "409"}
    assert declared("get", "/health/detailed") >= {"401", "403", "503"}
    unavailable = doc["paths"]["/health/detailed"]["get"]["responses"]["503"]["content"]
    assert unavailable["application/problem+json"]["schema"] == PROBLEM
    assert declared("get", "/health") == set()


def test_every_v1_operation_declares_the_database_unavailable() -> None:
    """An unavailable database answers 503 (a problem, with ``Retry-After``) on every ``/v1``
    operation; the probes that never read it do not declare it."""
    doc = _document()
    v1 = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/v1/"):
                continue
            v1 += 1
            declared = operation["responses"].get("503")
            assert declared is not None, (method, path)
            assert declared["content"]["application/problem+json"]["schema"] == PROBLEM
            assert "Retry-After" in declared["description"], (method, path)
    assert v1 > 15
    assert "503" not in doc["paths"]["/health"]["get"]["responses"]


def test_every_operation_that_takes_a_key_declares_how() -> None:
    """Generated clients learn to send ``Authorization: Bearer``: every operation that can
    answer 401 names the scheme; the probes that take none do not."""
    doc = _document()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "http", "scheme": "bearer"}
    keyed = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if "401" not in operation["responses"]:
                assert "security" not in operation, (method, path)
                continue
            keyed += 1
            assert {"ApiKey": []} in operation["security"], (method, path)
            for requirement in operation["security"]:
                assert set(requirement) <= set(schemes), (method, path)
    assert keyed > 15
    assert doc["paths"]["/health/detailed"]["get"]["security"] == [
        {"ApiKey": []},
        {"HealthToken": []},
    ]
    assert "security" not in doc["paths"]["/health/ready"]["get"]
