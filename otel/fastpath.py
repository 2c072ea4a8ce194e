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
* exemplar filter ``always_off`` or ``trace_based`` (the default): inside a sampled span the
  measurement is offered to each aggregation's own exemplar reservoir, as the SDK offers it,
  with the span's ids (``always_on`` or a custom filter: the ordinary path);
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
from time import time_ns
from typing import Any

from otel._current import SPAN_KEY, get_context

__all__ = ["FrozenAttributes", "active", "install", "uninstall"]

_log = logging.getLogger("otel")

#: Attribute sets remembered per instrument; the rest take the ordinary path.
MAX_KEYS = 512
_SLOT = "_otel_fast"
#: ``TraceFlags.SAMPLED``, tested with ``&`` (the ``sampled`` property is a call)
_SAMPLED = 0x01

_lock = threading.Lock()
#: (class, method) -> (the method it had, whether it was the class's own or inherited)
_originals: dict[tuple[type, str], tuple[Callable[..., Any], bool]] = {}


class _Value:
    """What a replayed aggregation that is not inlined reads of a measurement: its value."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


class _Offer:
    """What an exemplar reservoir reads of a measurement (the SDK's ``Measurement`` fields)."""

    __slots__ = ("attributes", "context", "time_unix_nano", "value")

    def __init__(self, value: float, attributes: Any, context: Any) -> None:
        self.value = value
        self.time_unix_nano = time_ns()
        # the SDK offers a copy (the caller may change its dict afterwards); a frozen set
        # cannot change
        frozen = type(attributes) is FrozenAttributes
        self.attributes = attributes if frozen or not attributes else dict(attributes)
        self.context = context


class FrozenAttributes(dict):  # type: ignore[type-arg]
    """An attribute set that its owner keeps and passes again and again (a route's, a
    statement's): read-only, with the fast path's key computed once instead of per call."""

    __slots__ = ("key",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key = tuple(self.items())

    def _read_only(self, *_args: Any, **_kwargs: Any) -> None:
        raise TypeError("FrozenAttributes is read-only")

    __setitem__ = __delitem__ = __ior__ = _read_only  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles rebuild, never mutate
        return (FrozenAttributes, (dict(self),))


#: How the aggregations of one attribute set are replayed: inline (the SDK's own
#: ``aggregate`` step, written out: no call, no measurement object), or through ``aggregate``;
#: either way without the exemplar, which is offered after (inside a sampled span only).
_HISTOGRAMS, _SUMS, _OTHER = 0, 1, 2


class _State:
    """Per instrument: the reader storages it was resolved against, its meter's config, the
    exemplar mode, and the aggregations per attribute key; ``aggs`` is None when the instrument
    must always take the ordinary path."""

    __slots__ = ("aggs", "config", "storages", "trace_based")

    def __init__(self, storages: object, config: Any, trace_based: bool, cacheable: bool) -> None:
        self.storages = storages
        self.config = config
        self.trace_based = trace_based
        self.aggs: dict[tuple[Any, ...], tuple[int, tuple[Any, ...]]] | None = (
            {} if cacheable else None
        )


def _aggregation_types() -> tuple[type, type, type]:
    from opentelemetry.sdk.metrics._internal import aggregation as a

    return (a._ExplicitBucketHistogramAggregation, a._SumAggregation, a._DropAggregation)


def _new_state(inst: Any) -> _State:
    from opentelemetry.sdk.metrics._internal.exemplar import (
        AlwaysOffExemplarFilter,
        TraceBasedExemplarFilter,
    )

    consumer = inst._measurement_consumer
    storages = consumer._reader_storages
    config = inst._meter_config
    exemplar_filter = consumer._sdk_config.exemplar_filter
    if config is not None and not hasattr(getattr(config, "_config", None), "is_enabled"):
        return _State(storages, config, trace_based=False, cacheable=False)
    if isinstance(exemplar_filter, AlwaysOffExemplarFilter):
        return _State(storages, config, trace_based=False, cacheable=True)
    if type(exemplar_filter) is TraceBasedExemplarFilter:
        return _State(storages, config, trace_based=True, cacheable=True)
    # always_on or a custom filter: every measurement may be an exemplar
    return _State(storages, config, trace_based=False, cacheable=False)


def _resolve(
    inst: Any, state: _State, attributes: dict[str, Any] | None
) -> tuple[int, tuple[Any, ...]] | None:
    """The SDK's aggregations for ``attributes`` (created by the ordinary path just before),
    with how to replay them, or None when this attribute set must keep taking the ordinary
    path."""
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

    histogram, total, drop = _aggregation_types()
    found: list[Any] = []
    for storage in state.storages.values():  # type: ignore[attr-defined]
        for match in storage._get_or_init_view_instrument_match(inst):
            if match._reset_on_collect:
                return None
            keys = match._view._attribute_keys
            attrs = dict(attributes or {})
            if keys is not None:
                attrs = {k: v for k, v in attrs.items() if k in keys}
            agg = match._attributes_aggregation.get(_hash_attributes(attrs))
            if agg is None or not isinstance(agg, (histogram, total, drop)):
                return None  # past the cardinality limit (overflow), or not replayable
            if type(agg) is not drop:  # a dropped stream aggregates nothing
                found.append(agg)
    if all(type(a) is histogram and getattr(a, "_record_min_max", False) for a in found):
        return _HISTOGRAMS, tuple(found)
    if all(type(a) is total for a in found):
        return _SUMS, tuple(found)
    return _OTHER, tuple(found)


def _fast(original: Callable[..., Any], signed: bool) -> Callable[..., Any]:  # noqa: C901
    """``original`` with the fast path in front; ``signed``: negative amounts are valid (an
    up-down counter's)."""
    from bisect import bisect_left

    low = -math.inf if signed else 0
    inf = math.inf
    numbers = (int, float)

    # one function on purpose: each call saved is about a thousand instructions per measurement
    def measure(  # noqa: C901
        self: Any, amount: Any, attributes: Any = None, context: Any = None
    ) -> None:
        state = self._otel_fast
        if state is None or state.storages is not self._measurement_consumer._reader_storages:
            _first(self, original, measure, amount, attributes, context)
            return
        config = state.config
        if (
            state.aggs is None
            or context is not None
            or type(amount) not in numbers
            or not low <= amount < inf
            or (config is not None and not config._config.is_enabled)
        ):
            original(self, amount, attributes, context)
            return
        if type(attributes) is FrozenAttributes:
            entry = state.aggs.get(attributes.key)
        elif attributes:
            try:
                entry = state.aggs.get(tuple(attributes.items()))
            except TypeError:  # an unhashable attribute value: the SDK's path
                original(self, amount, attributes, context)
                return
        else:
            entry = state.aggs.get(())
        if entry is None:
            _learn(self, state, original, amount, attributes)
            return
        kind, aggs = entry
        if kind == _HISTOGRAMS:  # _ExplicitBucketHistogramAggregation.aggregate, inline
            for agg in aggs:
                with agg._lock:
                    counts = agg._value
                    if counts is None:
                        counts = agg._value = agg._get_empty_bucket_counts()
                    agg._sum += amount
                    if amount < agg._min:
                        agg._min = amount
                    if amount > agg._max:
                        agg._max = amount
                    counts[bisect_left(agg._boundaries, amount)] += 1
        elif kind == _SUMS:  # _SumAggregation.aggregate, inline
            for agg in aggs:
                with agg._lock:
                    value = agg._value
                    agg._value = amount if value is None else value + amount
        else:
            measurement = _Value(amount)
            for agg in aggs:
                agg.aggregate(measurement, False)
        if state.trace_based:
            # the trace-based filter's condition (TraceBasedExemplarFilter.should_sample): the
            # current span is sampled (ended or not); then the exemplar, as the SDK offers it
            try:
                ctx = get_context()
                span = ctx.get(SPAN_KEY)
                if span is not None and span.get_span_context().trace_flags & _SAMPLED:
                    offer = _Offer(amount, attributes, ctx)
                    for agg in aggs:
                        agg._sample_exemplar(offer, True)
            except Exception:  # the value is recorded; an exemplar is never worth an error
                _log.debug("exemplar not offered for %s", self.name, exc_info=True)

    measure._otel_fast = True  # type: ignore[attr-defined]
    return measure


def _first(
    inst: Any,
    original: Callable[..., Any],
    measure: Callable[..., None],
    amount: Any,
    attributes: Any,
    context: Any,
) -> None:
    """The instrument's first measurement (or the first after its reader storages changed):
    make its state, then measure as usual; anything unexpected leaves it on the SDK's path."""
    try:
        inst.__dict__[_SLOT] = _new_state(inst)
    except Exception:
        _log.debug("fast metric path unavailable for %s", inst.name, exc_info=True)
        original(inst, amount, attributes, context)
        return
    measure(inst, amount, attributes, context)


def _learn(
    inst: Any, state: _State, original: Callable[..., Any], amount: Any, attributes: Any
) -> None:
    """An attribute set not seen before: the SDK's path, then remember its aggregations."""
    original(inst, amount, attributes, None)
    aggs = state.aggs
    if aggs is None or len(aggs) >= MAX_KEYS:
        return
    try:
        resolved = _resolve(inst, state, attributes)
        if resolved is not None:
            aggs[tuple(attributes.items()) if attributes else ()] = resolved
    except Exception:  # moved internals: this instrument keeps the SDK's path
        _log.debug("fast metric path unavailable for %s", inst.name, exc_info=True)
        state.aggs = None


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
                if _SLOT not in cls.__dict__:
                    setattr(cls, _SLOT, None)  # an instrument without state yet
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
            if _SLOT in cls.__dict__:
                delattr(cls, _SLOT)
        _originals.clear()


def active() -> bool:
    """True when the fast path is installed."""
    from opentelemetry.sdk.metrics._internal import instrument as i

    return bool(getattr(i._Histogram.record, "_otel_fast", False))
