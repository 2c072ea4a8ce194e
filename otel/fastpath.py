"""A cheaper ``record``/``add`` for the SDK's histograms and counters.

The SDK spends about 7 µs per measurement before it touches the aggregation: it builds a
``Measurement``, copies and validates the attributes, hashes them into a sorted tuple and walks
the reader storages and views. On a status read that is three measurements (the request's
duration, the query's duration, the pool wait), about 5 % of the request; on a page, about
twenty.

For an attribute set it has seen before, the fast path skips all of that: it keeps, per
instrument, the SDK's own aggregation objects for that attribute set (one per reader and view)
and hands them the value directly. Everything the SDK decides is decided by the SDK, on the
first measurement of each attribute set, through the ordinary path: views and their attribute
filters, the cardinality limit, aggregation and temporality. The fast path only replays the
aggregation step, and only where that step reads nothing but the value:

* explicit-bucket histogram, sum and drop aggregations (anything else: the ordinary path);
* cumulative storage (a delta reader replaces its aggregations at every collection: the
  ordinary path);
* no exemplar to offer (exemplar filter ``always_off``, or ``trace_based`` outside a sampled
  span; a sampled span's measurement takes the ordinary path and gets its exemplar);
* no explicit ``context`` argument, a finite non-negative int or float, hashable attribute
  values, the meter enabled.

Anything unexpected (an SDK whose internals moved, say) falls back to the ordinary path, so the
fast path can only make a measurement cheaper, never lose or change it. The unit tests compare
both paths' exported points for the pinned SDK.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

__all__ = ["active", "install", "uninstall"]

_log = logging.getLogger("otel")

#: Attribute sets remembered per instrument; the rest take the ordinary path.
MAX_KEYS = 512
_SLOT = "_otel_fast"
_UNCACHEABLE = object()

_lock = threading.Lock()
#: (class, method) -> (the method it had, whether it was the class's own or inherited)
_originals: dict[tuple[type, str], tuple[Callable[..., Any], bool]] = {}


class _Value:
    """What the replayed aggregations read of a measurement: its value."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


class _State:
    """Per instrument: the reader storages it was resolved against, the exemplar mode, and
    the aggregations per attribute key."""

    __slots__ = ("aggs", "storages", "trace_based")

    def __init__(self, storages: object, trace_based: bool) -> None:
        self.storages = storages
        self.trace_based = trace_based
        self.aggs: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _replayable() -> tuple[type, ...]:
    from opentelemetry.sdk.metrics._internal import aggregation as a

    return (a._ExplicitBucketHistogramAggregation, a._SumAggregation, a._DropAggregation)


def _new_state(inst: Any) -> _State | object:
    from opentelemetry.sdk.metrics._internal.exemplar import (
        AlwaysOffExemplarFilter,
        TraceBasedExemplarFilter,
    )

    consumer = inst._measurement_consumer
    exemplar_filter = consumer._sdk_config.exemplar_filter
    if isinstance(exemplar_filter, AlwaysOffExemplarFilter):
        return _State(consumer._reader_storages, trace_based=False)
    if type(exemplar_filter) is TraceBasedExemplarFilter:
        return _State(consumer._reader_storages, trace_based=True)
    return _UNCACHEABLE  # always_on or a custom filter: every measurement may be an exemplar


def _resolve(inst: Any, state: _State, attributes: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """The SDK's aggregations for ``attributes`` (created by the ordinary path just before),
    or None when this attribute set must keep taking the ordinary path."""
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

    replayable = _replayable()
    found = []
    for storage in state.storages.values():  # type: ignore[attr-defined]
        for match in storage._get_or_init_view_instrument_match(inst):
            if match._reset_on_collect:
                return None
            keys = match._view._attribute_keys
            attrs = dict(attributes or {})
            if keys is not None:
                attrs = {k: v for k, v in attrs.items() if k in keys}
            agg = match._attributes_aggregation.get(_hash_attributes(attrs))
            if agg is None or not isinstance(agg, replayable):
                return None  # past the cardinality limit (overflow), or not replayable
            found.append(agg)
    return tuple(found)


def _fast(original: Callable[..., Any], signed: bool) -> Callable[..., Any]:
    """``original`` with the fast path in front; ``signed``: negative amounts are valid (an
    up-down counter's)."""
    get_span = trace.get_current_span
    low = -math.inf if signed else 0

    def measure(self: Any, amount: Any, attributes: Any = None, context: Any = None) -> None:
        state = self.__dict__.get(_SLOT)
        if (
            state is _UNCACHEABLE
            or context is not None
            or type(amount) not in (int, float)
            or not low <= amount < math.inf
            or (self._meter_config is not None and not self._meter_config.is_enabled)
        ):
            original(self, amount, attributes, context)
            return
        try:
            if state is None or state.storages is not self._measurement_consumer._reader_storages:
                state = _new_state(self)
                self.__dict__[_SLOT] = state
                if state is _UNCACHEABLE:
                    original(self, amount, attributes, context)
                    return
            if state.trace_based and get_span().get_span_context().trace_flags.sampled:
                original(self, amount, attributes, context)  # its exemplar
                return
            key = tuple(attributes.items()) if attributes else ()
            aggs = state.aggs.get(key)
        except Exception:  # unhashable attribute values, moved internals: the ordinary path
            original(self, amount, attributes, context)
            return
        if aggs is None:
            original(self, amount, attributes, context)
            try:
                if len(state.aggs) < MAX_KEYS:
                    resolved = _resolve(self, state, attributes)
                    if resolved is not None:
                        state.aggs[key] = resolved
            except Exception:
                _log.debug("fast metric path unavailable for %s", self.name, exc_info=True)
                self.__dict__[_SLOT] = _UNCACHEABLE
            return
        value = _Value(amount)
        for agg in aggs:
            agg.aggregate(value, False)

    measure._otel_fast = True  # type: ignore[attr-defined]
    return measure


def _targets() -> list[tuple[type, str, bool]]:
    from opentelemetry.sdk.metrics._internal import instrument as i

    return [
        (i._Histogram, "record", False),
        (i._Counter, "add", False),
        (i._UpDownCounter, "add", True),
    ]


def install() -> bool:
    """Put the fast path on the SDK's histogram and counter classes (every provider in the
    process). Idempotent; returns False (and changes nothing) when the SDK does not look as
    expected."""
    try:
        with _lock:
            for cls, name, signed in _targets():
                method = getattr(cls, name)
                if getattr(method, "_otel_fast", False):
                    continue
                _originals[(cls, name)] = (method, name in cls.__dict__)
                setattr(cls, name, _fast(method, signed))
        return True
    except Exception:
        _log.warning("fast metric path not installed", exc_info=True)
        return False


def uninstall() -> None:
    """Restore the SDK's own methods (tests compare both paths)."""
    with _lock:
        for (cls, name), (method, own) in _originals.items():
            if own:
                setattr(cls, name, method)
            elif name in cls.__dict__:
                delattr(cls, name)
        _originals.clear()


def active() -> bool:
    """True when the fast path is installed."""
    from opentelemetry.sdk.metrics._internal import instrument as i

    return bool(getattr(i._Histogram.record, "_otel_fast", False))
