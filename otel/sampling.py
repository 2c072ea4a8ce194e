"""A root request's sampling decided before any span is built.

At 10 % sampling nine requests in ten are not sampled, and under a parent-based sampler nothing
below an unsampled root can be sampled either. The SDK still builds the root's span: it draws
the ids, asks the sampler (four layers of calls and a ``SamplingResult``), builds a
``SpanContext`` and a ``NonRecordingSpan``, and copies the context twice, for a span that is
then never recorded. :class:`RootSampling` takes the same decision with the same rule first:

* it draws the trace id from the provider's own id generator and applies the root sampler's
  rule to it (``TraceIdRatioBased``: the low 64 bits under the rate's bound; ``always_off``:
  never), exactly as the SDK's sampler would for that id;
* not sampled: the caller builds the ``NonRecordingSpan`` itself (:func:`unsampled_span`);
* sampled: the trace id is handed to the SDK through :class:`PresetIdGenerator`, so the SDK
  draws that id, asks its sampler, gets the same answer and records the span as usual.

It applies only where the result is certain: a ``ParentBased`` sampler whose root is the SDK's
``TraceIdRatioBased`` or ``always_off``, a root span (no span in the context), and the preset id
generator installed by :func:`otel.configure`. Anything else (``always_on``, a custom sampler)
goes through the SDK as before.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ParentBased,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

__all__ = [
    "PresetIdGenerator",
    "RootSampling",
    "root_sampling",
    "unsampled_span",
]

_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


class PresetIdGenerator(IdGenerator):
    """The SDK's random ids, except that the calling thread may name the next trace id."""

    def __init__(self, inner: IdGenerator | None = None) -> None:
        self.inner = inner or RandomIdGenerator()
        self._local = threading.local()

    def generate_span_id(self) -> int:
        return self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        preset: int = getattr(self._local, "trace_id", 0)
        if preset:
            self._local.trace_id = 0
            return preset
        return self.inner.generate_trace_id()

    def preset(self, trace_id: int) -> None:
        """The next :meth:`generate_trace_id` in this thread returns ``trace_id`` (0: none)."""
        self._local.trace_id = trace_id


class RootSampling:
    """The root sampler's decision for a fresh trace id, taken before any span exists."""

    __slots__ = ("bound", "ids")

    def __init__(self, ids: PresetIdGenerator, bound: int) -> None:
        self.ids = ids
        self.bound = bound

    def decide(self) -> tuple[int, bool]:
        """A new trace id and whether the provider's sampler samples a root span with it."""
        trace_id = self.ids.inner.generate_trace_id()
        return trace_id, (trace_id & TraceIdRatioBased.TRACE_ID_LIMIT) < self.bound


def root_sampling(provider: Any) -> RootSampling | None:
    """For an SDK provider whose root decision can be taken ahead (see the module's doc), the
    object that takes it; else None."""
    if not isinstance(provider, TracerProvider):
        return None
    sampler, ids = provider.sampler, provider.id_generator
    if not isinstance(ids, PresetIdGenerator) or not isinstance(sampler, ParentBased):
        return None
    root = getattr(sampler, "_root", None)
    if type(root) is TraceIdRatioBased:
        return RootSampling(ids, root.bound)
    if root is ALWAYS_OFF:
        return RootSampling(ids, 0)
    return None  # always_on (every root sampled: nothing to skip) or a sampler of its own


def unsampled_span(sampling: RootSampling, trace_id: int) -> NonRecordingSpan:
    """What the SDK would return for a root span its sampler dropped: ids, no recording."""
    context = SpanContext(
        trace_id, sampling.ids.inner.generate_span_id(), is_remote=False, trace_flags=_UNSAMPLED
    )
    return NonRecordingSpan(context)
