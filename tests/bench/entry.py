"""How the bench starts the processes under test: ``python -m tests.bench.entry api|worker``.

Exactly ``python -m app.serve`` (the API, as ``make api`` and the image run it) or
``python -m app.worker``, plus the bench's counting hooks on ``SIGUSR1``/``SIGUSR2``
(tests/bench/hooks.py; off unless signalled). ``api --pfi`` serves
``tests.bench.pfi_app:create_app`` instead of ``app.main:create_app`` under the same server
setup (uvicorn options stay whatever ``app.serve`` chooses). ``BENCH_HTTP_METRICS_ONLY=1``
keeps Trawl's HTTP server metric alone (the `http` variant: what prometheus-fastapi-instrumentator
measures, against which it is compared).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tests.bench import hooks


def _serve_pfi() -> None:
    import uvicorn

    run = uvicorn.run

    def run_pfi(app: Any, **kwargs: Any) -> None:
        if app == "app.main:create_app":
            app = "tests.bench.pfi_app:create_app"
        run(app, **kwargs)

    uvicorn.run = run_pfi


def _http_metrics_only() -> None:
    """``http.server.request.duration`` alone: no database metrics, every other instrument
    dropped by a View (its measurements still reach the SDK, at the fast path's cost)."""
    from opentelemetry.sdk.metrics.view import DropAggregation, View

    import otel.instrument
    from otel import _setup

    otel.instrument.instrument_engine = lambda _engine: True  # type: ignore[assignment]
    views = _setup.default_views
    keep = {"http.server.request.duration"}

    def only_http() -> list[View]:
        kept = [v for v in views() if v._instrument_name in keep]
        return [*kept, View(instrument_name="*", aggregation=DropAggregation())]

    _setup.default_views = only_http  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    hooks.install_signal_handlers()
    role, rest = argv[0], argv[1:]
    if role == "api":
        from app import serve

        if os.environ.get("BENCH_HTTP_METRICS_ONLY") == "1":
            _http_metrics_only()
        if "--pfi" in rest:
            rest.remove("--pfi")
            _serve_pfi()
        serve.main(rest)
    elif role == "worker":
        from app import worker

        worker.main()
    else:
        raise SystemExit(f"unknown role {role!r}: api or worker")


if __name__ == "__main__":
    main(sys.argv[1:])
