"""The API under uvicorn, logging JSON from its first line: ``python -m app.serve`` (``make api``).

uvicorn's own command line installs plain-text handlers on its loggers before the app exists;
here the JSON handlers are in place first and uvicorn is told to leave logging alone, so the
start-up lines, the access log and server errors are JSON lines like every other (the access
log with the request's ``trace.id`` and ``http.request.id``). ``uvicorn app.main:create_app
--factory`` still works: the app adopts uvicorn's loggers when it starts, after uvicorn's first
few lines, and without the bound on request heads (app/http_protocol.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

import otel
from app.http_protocol import BoundedHttpToolsProtocol
from app.settings import get_settings

SERVICE_NAME = "trawl-api"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-access-log", action="store_true", help="no line per request")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    otel.configure_logging("INFO", service_name=SERVICE_NAME)  # a settings error logs as JSON
    settings = get_settings()
    otel.configure_logging(settings.log_level, service_name=SERVICE_NAME)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_config=None,  # keep our handlers: uvicorn's loggers propagate to them
        http=BoundedHttpToolsProtocol,  # httptools, with a bound on request heads
        access_log=not args.no_access_log,
    )


if __name__ == "__main__":
    main()
