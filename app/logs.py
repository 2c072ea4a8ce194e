"""Process-wide logging setup for the API and the worker."""

from __future__ import annotations

import logging
import sys

from app.settings import Settings

_configured = False


def setup_logging(settings: Settings) -> None:
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # httpx logs every request URL at INFO; URLs are span data, not log lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _configured = True
