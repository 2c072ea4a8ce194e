"""Metric helpers: bucket layouts, Views and attribute clamping.

The business-metric catalogue lives in the app and uses only the OTel API; this module
only provides the bounded building blocks and the SDK Views installed by ``configure``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

from opentelemetry import metrics
from opentelemetry.metrics import Meter, NoOpMeter
from opentelemetry.sdk.metrics import Histogram, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

__all__ = [
    "DURATION_BUCKETS_S",
    "HTTP_CLIENT_ATTRIBUTE_KEYS",
    "HTTP_METHODS",
    "default_views",
    "meter",
    "normalize_method",
    "safe_attr",
]

OTHER = "_OTHER"

#: Duration buckets in seconds (5 ms .. 120 s). Scrapes through slow proxies and webhook
#: deliveries routinely exceed the 10 s top bucket of the OTel advisory defaults.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)

#: Attributes kept on ``http.client.*`` metrics. ``server.address``/``server.port``/``url.*``
#: are dropped: for a scraper they are every scraped domain (unbounded cardinality).
HTTP_CLIENT_ATTRIBUTE_KEYS: frozenset[str] = frozenset(
    {"http.request.method", "http.response.status_code", "error.type", "network.protocol.version"}
)

#: Known HTTP methods (semconv); anything else is reported as ``_OTHER``.
HTTP_METHODS: frozenset[str] = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY"}
)

_H = TypeVar("_H", bound=Hashable)


def safe_attr(value: _H | None, allowed: frozenset[_H], other: str = OTHER) -> _H | str:
    """Clamp ``value`` to the closed set ``allowed``; anything else becomes ``other``.

    Use it for every metric attribute whose value comes from outside the code
    (status strings, domains, proxy pools ...). Never raises.
    """
    try:
        if value is not None and value in allowed:
            return value
    except TypeError:  # unhashable
        pass
    return other


def normalize_method(method: str | bytes | None) -> str:
    """Upper-case a request method and clamp it to :data:`HTTP_METHODS`."""
    if isinstance(method, bytes):
        method = method.decode("latin-1", "replace")
    if not method:
        return OTHER
    return str(safe_attr(method.upper(), HTTP_METHODS))


def meter(name: str) -> Meter:
    """``name``'s meter on the installed meter provider, or a no-op meter until one is
    installed (:func:`otel.configure`).

    Not OpenTelemetry's placeholder: an instrument made on it is re-created, callbacks and all,
    on every provider installed later, and there it shadows the same instrument made for that
    provider (whose callbacks are then never called)."""
    provider = metrics.get_meter_provider()
    if isinstance(provider, MeterProvider):
        return provider.get_meter(name)
    return NoOpMeter(name)


def _seconds() -> ExplicitBucketHistogramAggregation:
    return ExplicitBucketHistogramAggregation(boundaries=DURATION_BUCKETS_S)


def default_views() -> list[View]:
    """Views installed by :func:`otel.configure`.

    Selectors never overlap (an instrument matched by two Views becomes two streams):

    * ``http.client.request.duration``: seconds buckets, attributes limited to
      :data:`HTTP_CLIENT_ATTRIBUTE_KEYS`.
    * ``http.server.request.duration``, ``db.client.operation.duration``: seconds buckets.
    * ``cpython.gc.collections``: only ``cpython.gc.generation`` (the system-metrics
      instrumentation also sets a deprecated duplicate, ``generation``).
    """
    keys = set(HTTP_CLIENT_ATTRIBUTE_KEYS)
    views = [
        View(
            instrument_type=Histogram,
            instrument_name="http.client.request.duration",
            aggregation=_seconds(),
            attribute_keys=keys,
        ),
        View(
            instrument_type=Histogram,
            instrument_name="http.server.request.duration",
            aggregation=_seconds(),
        ),
        View(
            instrument_type=Histogram,
            instrument_name="db.client.operation.duration",
            aggregation=_seconds(),
        ),
        View(
            instrument_type=ObservableCounter,
            instrument_name="cpython.gc.collections",
            attribute_keys={"cpython.gc.generation"},
        ),
    ]
    return views
