"""``python -m app.canary`` (every interval, metrics on TRAWL_CANARY_LISTEN_PORT),
``--once`` (one run, exit 0 on success), ``--load`` (no metrics server: the demo load generator)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from prometheus_client import start_http_server

from app.canary.runner import Canary, CanaryMetrics
from app.canary.settings import CanarySettings


async def _serve(settings: CanarySettings) -> None:
    metrics = CanaryMetrics()
    if settings.listen_port:
        start_http_server(settings.listen_port, settings.listen_host, registry=metrics.registry)
        logging.getLogger("trawl.canary").info(
            "canary metrics on http://%s:%d/metrics", settings.listen_host, settings.listen_port
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await Canary(settings).run_forever(metrics, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.canary", description=__doc__)
    parser.add_argument("--once", action="store_true", help="one run; exit 0 when it succeeds")
    parser.add_argument("--load", action="store_true", help="no metrics endpoint (load generator)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = CanarySettings()  # required fields come from the environment
    if args.load:
        settings = settings.model_copy(update={"listen_port": 0})
    if args.once:
        run = asyncio.run(Canary(settings).run_once())
        print(f"{run.result} in {run.duration_s:.2f}s {run.detail}".rstrip())
        return 0 if run.result == "success" else 1
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
