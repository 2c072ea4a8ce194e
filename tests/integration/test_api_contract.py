"""The API keeps its OpenAPI contract: a property-based fuzz (schemathesis) of every operation
of a real server answers no 5xx, and every status code, content type and body it answers is
the one the document declares (the problems under ``application/problem+json``), for an admin
key, a client key and no key at all.

Bounded in time: a fixed number of examples per operation (``EXAMPLES``), no shrinking.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from tests.support.config import ADMIN_KEY, make_settings
from tests.support.databases import Databases
from tests.support.net import free_port
from tests.support.processes import child, terminate
from tests.support.wait import eventually_blocking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXAMPLES = int(os.environ.get("TRAWL_FUZZ_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api(
    databases: Databases, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """``python -m app.serve`` on a database of its own; (base URL, a client's key)."""
    port = free_port()
    data = tmp_path_factory.mktemp("fuzz")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAWL_")}
    env.update(
        DATABASE_URL=databases.new(),
        REDIS_URL=redis_url,
        TRAWL_ENVIRONMENT="test",
        TRAWL_ADMIN_API_KEY=ADMIN_KEY,
        TRAWL_REDIS_PREFIX=f"trawl-fuzz-{port}",
        TRAWL_DATA_DIR=str(data),
        # no DNS for the fuzzer's host names; nothing is fetched (no worker runs)
        TRAWL_ALLOW_PRIVATE_TARGETS="true",
        OTEL_SDK_DISABLED="true",
    )
    base = f"http://127.0.0.1:{port}"
    log: Path = data / "api.log"
    args = ["-m", "app.serve", "--port", str(port), "--no-access-log"]
    with child(args, env, log) as proc, httpx.Client(base_url=base, timeout=10) as client:

        def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            return client.get("/health/ready").status_code == 200

        eventually_blocking(ready, 60, what="the API ready", retry_on=(httpx.HTTPError,))
        assert client.get("/openapi.json").json() == DOCUMENT
        auth = {"authorization": f"Bearer {ADMIN_KEY}"}
        created = client.post("/v1/api-keys", json={"name": "fuzz-client"}, headers=auth)
        assert created.status_code == 201, created.text
        yield base, created.json()["key"]
        terminate(proc, timeout_s=30)


def _document() -> dict[str, Any]:
    """The OpenAPI document, built in process (no lifespan needed): the operations to test are
    known at collection time. The fixture checks that the server serves this very document."""
    app = create_app(make_settings("sqlite+aiosqlite:///unused.db", "redis://127.0.0.1:1/0"))
    return dict(app.openapi())


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_declared_and_none_is_a_server_error(
    case: Any, api: tuple[str, str]
) -> None:
    base, client_key = api
    for authorization in (f"Bearer {ADMIN_KEY}", f"Bearer {client_key}", None):
        headers = {} if authorization is None else {"authorization": authorization}
        case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)
