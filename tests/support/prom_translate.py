"""A Python port of the OTLP -> Prometheus name translation the collector applies on our
production path (``prometheusremotewrite`` exporter, default ``add_metric_suffixes: true``,
i.e. the ``UnderscoreEscapingWithSuffixes`` strategy).

Ported from Prometheus ``otlptranslator`` (github.com/prometheus/otlptranslator, commit
51da77392288, Apache-2.0): ``MetricNamer``, ``UnitNamer`` and ``LabelNamer``, which the
collector-contrib Prometheus translators use (and from which ``pkg/translator/prometheus``'s
``normalize_name.go`` came). The UTF-8 strategies are ported too so that every upstream test
case runs (tests/unit/test_prom_translate.py replays upstream's own expectations).

:func:`prw_series` then turns a captured OTLP export into the series names and label names the
exporter would remote-write: ``_bucket``/``_sum``/``_count`` for histograms, ``job`` and
``instance`` from the resource, ``le`` on buckets, and the two resource attributes the
collector's ``transform`` processor copies onto every data point (docs/telemetry.md).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

UNIT_MAP = {
    # Time
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    # Bytes
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    # SI
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    # Misc
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
PER_UNIT_MAP = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}


class MetricType(enum.Enum):
    UNKNOWN = "Unknown"
    NON_MONOTONIC_COUNTER = "NonMonotonicCounter"
    MONOTONIC_COUNTER = "MonotonicCounter"
    GAUGE = "Gauge"
    HISTOGRAM = "Histogram"
    EXPONENTIAL_HISTOGRAM = "ExponentialHistogram"
    SUMMARY = "Summary"


class TranslationError(ValueError):
    pass


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _metric_char(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9") or ch == ":"


def _label_char(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9")


def _fields(text: str, is_separator: Any) -> list[str]:
    """Go's ``strings.FieldsFunc``: split around runs of separators, no empty fields."""
    out: list[str] = []
    current: list[str] = []
    for ch in text:
        if is_separator(ch):
            if current:
                out.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        out.append("".join(current))
    return out


def _collapse_underscores(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch == "_" and out and out[-1] == "_":
            continue
        out.append(ch)
    return "".join(out)


def _clean_up_unit(unit: str) -> str:
    mapped = "".join(ch if _metric_char(ch) else "_" for ch in unit)
    return _collapse_underscores(mapped).removeprefix("_")


def build_unit_suffixes(unit: str) -> tuple[str, str]:
    """Main and ``per_`` unit suffixes, before character clean-up."""
    tokens = unit.split("/", 1)
    main = per = ""
    main_otel = tokens[0].strip()
    if main_otel and "{" not in main_otel and "}" not in main_otel:
        main = UNIT_MAP.get(main_otel, main_otel)
    if len(tokens) > 1 and tokens[1] != "":
        per_otel = tokens[1].strip()
        if per_otel and "{" not in per_otel and "}" not in per_otel:
            per = PER_UNIT_MAP.get(per_otel, per_otel)
        if per:
            per = "per_" + per
    return main, per


def _add_unit_tokens(tokens: list[str], main: str, per: str) -> list[str]:
    if main in tokens:
        main = ""
    if per == "per_":
        per = ""
    else:
        per = per.removesuffix("_")
        if per in tokens:
            per = ""
    if per:
        main = main.removesuffix("_")
    if main:
        tokens = [*tokens, main]
    if per:
        tokens = [*tokens, per]
    return tokens


def _normalize_name(name: str, unit: str, kind: MetricType, namespace: str) -> str:
    tokens = _fields(name, lambda ch: not _metric_char(ch))
    main, per = build_unit_suffixes(unit)
    tokens = _add_unit_tokens(tokens, _clean_up_unit(main), _clean_up_unit(per))
    if kind is MetricType.MONOTONIC_COUNTER:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind is MetricType.GAUGE:
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    if namespace:
        tokens = [namespace, *tokens]
    normalized = "_".join(tokens)
    if normalized and normalized[0].isdigit() and normalized[0].isascii():
        normalized = "_" + normalized
    return normalized


def _trim_suffix_and_delimiter(name: str, suffix: str) -> str:
    if name.endswith(suffix) and len(name.encode()) > len(suffix) + 1:
        return name[: -(len(suffix) + 1)]
    return name


@dataclass(frozen=True)
class MetricNamer:
    namespace: str = ""
    with_metric_suffixes: bool = True
    utf8_allowed: bool = False

    def build(self, name: str, unit: str, kind: MetricType) -> str:
        if self.utf8_allowed:
            return self._utf8_name(name, unit, kind)
        return self._compliant_name(name, unit, kind)

    def _compliant_name(self, name: str, unit: str, kind: MetricType) -> str:
        if self.with_metric_suffixes:
            normalized = _normalize_name(name, unit, kind, self.namespace)
        else:

            def separator(ch: str) -> bool:
                return not _metric_char(ch) and ch != "_"

            metric_name = "_".join(_fields(name, separator))
            if self.namespace:
                normalized = "_".join(_fields(self.namespace, separator)) + "_" + metric_name
            elif metric_name and metric_name[0].isdigit() and metric_name[0].isascii():
                normalized = "_" + metric_name
            else:
                normalized = metric_name
        if not normalized:
            raise TranslationError(
                f"normalization for metric {_go_quote(name)} resulted in empty name"
            )
        if normalized != name and set(normalized) == {"_"}:
            raise TranslationError(
                f"normalization for metric {_go_quote(name)} resulted in invalid name "
                f"{_go_quote(normalized)}"
            )
        return normalized

    def _utf8_name(self, name: str, unit: str, kind: MetricType) -> str:
        if self.namespace:
            name = self.namespace + "_" + name
        if not self.with_metric_suffixes:
            return name
        suffixes: list[str] = []  # appended innermost first
        if unit == "1" and kind is MetricType.GAUGE:
            name = _trim_suffix_and_delimiter(name, "ratio")
            suffixes.insert(0, "ratio")
        if kind is MetricType.MONOTONIC_COUNTER:
            name = _trim_suffix_and_delimiter(name, "total")
            suffixes.insert(0, "total")
        main, per = build_unit_suffixes(unit)
        if per:
            name = _trim_suffix_and_delimiter(name, per)
            suffixes.insert(0, per)
        if main and not name.endswith(main):
            name = name + "_" + main
        for suffix in suffixes:
            name = name + "_" + suffix
        return name


def unit_name(unit: str, *, utf8_allowed: bool = False) -> str:
    """``UnitNamer.Build``: the unit as Prometheus metadata (``s/By`` -> ``seconds``...)."""
    main, per = build_unit_suffixes(unit)
    if not utf8_allowed:
        main, per = _clean_up_unit(main), _clean_up_unit(per)
    built = f"{main}_{per}" if main and per else (main or per)
    return built.removeprefix("_").removesuffix("_")


def _sanitize_label(name: str, preserve_multiple_underscores: bool) -> str:
    if preserve_multiple_underscores:
        return "".join(ch if _label_char(ch) else "_" for ch in name)
    reserved = len(name) >= 4 and name.startswith("__") and name.endswith("__")
    if reserved:
        name = name[2:-2]
    out: list[str] = ["__"] if reserved else []
    previous_underscore = False
    for ch in name:
        if _label_char(ch):
            out.append(ch)
            previous_underscore = False
        elif not previous_underscore:
            out.append("_")
            previous_underscore = True
    if reserved:
        out.append("__")
    return "".join(out)


@dataclass(frozen=True)
class LabelNamer:
    utf8_allowed: bool = False
    underscore_label_sanitization: bool = False
    preserve_multiple_underscores: bool = False

    def build(self, label: str) -> str:
        if not label:
            raise TranslationError("label name is empty")
        if self.utf8_allowed:
            if set(label) == {"_"}:
                raise TranslationError(f"label name {_go_quote(label)} contains only underscores")
            return label
        normalized = _sanitize_label(label, self.preserve_multiple_underscores)
        if normalized[0].isdigit() and normalized[0].isascii():
            normalized = "key_" + normalized
        elif (
            self.underscore_label_sanitization
            and normalized.startswith("_")
            and not normalized.startswith("__")
        ):
            normalized = "key" + normalized
        if set(normalized) == {"_"}:
            raise TranslationError(
                f"normalization for label name {_go_quote(label)} resulted in invalid name "
                f"{_go_quote(normalized)}"
            )
        return normalized


# --------------------------------------------------------------------------- OTLP -> PRW

#: What the collector's prometheusremotewrite exporter uses by default.
COLLECTOR_NAMER = MetricNamer(with_metric_suffixes=True, utf8_allowed=False)
COLLECTOR_LABELS = LabelNamer()
#: Resource attributes the collector's ``transform`` processor copies onto every data point
#: (DECISIONS.md; the stack's collector config implements it).
PROMOTED_RESOURCE_ATTRIBUTES = ("service.name", "deployment.environment.name")


@dataclass
class Family:
    """One metric as Prometheus receives it over remote write."""

    name: str  # the family name (``…_total`` for counters, no ``_bucket`` for histograms)
    otlp_name: str
    kind: MetricType
    samples: set[str] = field(default_factory=set)  # sample names: name, name_bucket, …
    labels: set[str] = field(default_factory=set)  # label names across its series


def metric_type(metric: Any) -> MetricType:
    """The translator's type for an OTLP ``Metric`` protobuf."""
    which = metric.WhichOneof("data")
    if which == "gauge":
        return MetricType.GAUGE
    if which == "sum":
        return (
            MetricType.MONOTONIC_COUNTER
            if metric.sum.is_monotonic
            else MetricType.NON_MONOTONIC_COUNTER
        )
    if which == "histogram":
        return MetricType.HISTOGRAM
    if which == "exponential_histogram":
        return MetricType.EXPONENTIAL_HISTOGRAM
    if which == "summary":
        return MetricType.SUMMARY
    return MetricType.UNKNOWN


def _value(any_value: Any) -> Any:
    which = any_value.WhichOneof("value")
    return getattr(any_value, which) if which else None


def _points(metric: Any) -> Iterable[Any]:
    which = metric.WhichOneof("data")
    return getattr(metric, which).data_points if which else []


def prw_series(requests: Iterable[Any]) -> Iterator[Family]:
    """Families of a captured ``ExportMetricsServiceRequest`` stream, one per OTLP metric."""
    for request in requests:
        for rm in request.resource_metrics:
            resource = {kv.key: _value(kv.value) for kv in rm.resource.attributes}
            promoted = {k: resource[k] for k in PROMOTED_RESOURCE_ATTRIBUTES if k in resource}
            identity = {"job", "instance"} if "service.name" in resource else set()
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric_type(metric)
                    name = COLLECTOR_NAMER.build(metric.name, metric.unit, kind)
                    family = Family(name=name, otlp_name=metric.name, kind=kind)
                    family.labels |= identity
                    for point in _points(metric):
                        attrs = {kv.key for kv in point.attributes} | set(promoted)
                        family.labels |= {COLLECTOR_LABELS.build(k) for k in attrs}
                    if kind is MetricType.HISTOGRAM:
                        family.samples |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
                        family.labels.add("le")
                    else:
                        family.samples.add(name)
                    yield family
