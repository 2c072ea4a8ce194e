"""Where the OTLP exporters send: the collector endpoint, read from the standard env vars."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from otel._setup import _env, _exporter_names, sdk_disabled

__all__ = ["collector_endpoint"]

_log = logging.getLogger("otel")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SIGNALS = (("traces", "TRACES"), ("metrics", "METRICS"), ("logs", "LOGS"))


def collector_endpoint() -> tuple[str, int] | None:
    """``(host, port)`` of the OTLP collector this process exports to, or ``None``.

    ``None`` when the SDK is disabled, no signal uses the ``otlp`` exporter, or no endpoint
    is set explicitly (``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` wins over
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; traces, then metrics, then logs). Credentials and paths
    in the URL are dropped. Never raises.
    """
    try:
        if sdk_disabled():
            return None
        for signal, env in _SIGNALS:
            if "otlp" not in _exporter_names(signal):
                continue
            raw = _env(f"OTEL_EXPORTER_OTLP_{env}_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_ENDPOINT")
            if raw is not None:
                return _host_port(raw)
    except Exception:
        _log.warning("could not read the OTLP endpoint", exc_info=True)
    return None


def _host_port(raw: str) -> tuple[str, int] | None:
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    host = parts.hostname
    if not host:
        _log.warning("OTLP endpoint has no host; ignored")
        return None
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    if port is None:
        _log.warning("OTLP endpoint has no port and an unknown scheme; ignored")
        return None
    return host, port
