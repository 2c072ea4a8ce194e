"""The Python port of the collector's Prometheus name translation passes upstream's own tests.

tests/support/prom_translate.py is the oracle for the OTLP side of
tests/integration/test_metric_names.py; these are the expectations of
github.com/prometheus/otlptranslator (which the collector's Prometheus exporters use), replayed
case by case, plus the collector-contrib ``pkg/translator/prometheus`` receiver-name cases that
the current rules still give.
"""

from __future__ import annotations

import pytest

from tests.support.otlptranslator_cases import LABEL_CASES, METRIC_CASES
from tests.support.prom_translate import (
    LabelNamer,
    MetricNamer,
    MetricType,
    TranslationError,
    unit_name,
)


@pytest.mark.parametrize("case", METRIC_CASES, ids=lambda c: c[0])
def test_metric_namer_matches_upstream(case: tuple[object, ...]) -> None:
    _, namespace, suffixes, utf8, name, unit, kind, want, want_unit, want_error = case
    assert isinstance(namespace, str) and isinstance(name, str) and isinstance(unit, str)
    namer = MetricNamer(
        namespace=namespace, with_metric_suffixes=bool(suffixes), utf8_allowed=bool(utf8)
    )
    metric_type = MetricType(kind)
    if want_error is not None:
        with pytest.raises(TranslationError) as err:
            namer.build(name, unit, metric_type)
        assert str(err.value) == want_error
        got = ""
    else:
        got = namer.build(name, unit, metric_type)
    assert got == want
    if suffixes:
        built_unit = unit_name(unit, utf8_allowed=bool(utf8))
        assert built_unit == want_unit
        assert built_unit in got


def _expect(sanitized: str, *overrides: str) -> str:
    return next((o for o in overrides if o), sanitized)


@pytest.mark.parametrize("case", LABEL_CASES, ids=lambda c: c[0] or "<empty>")
def test_label_namer_matches_upstream(case: tuple[object, ...]) -> None:
    label, sanitized, multi, underscore, both, error, multi_error, utf8_error = case
    assert isinstance(label, str) and isinstance(sanitized, str)
    assert isinstance(multi, str) and isinstance(underscore, str) and isinstance(both, str)

    def check(namer: LabelNamer, want: str, want_error: object) -> bool:
        if want_error is not None:
            with pytest.raises(TranslationError) as err:
                namer.build(label)
            assert str(err.value) == want_error
            return False
        assert namer.build(label) == want
        return True

    # as upstream: the "sanitizing leading underscore" variants run when the plain one passed
    if check(LabelNamer(), sanitized, error):
        check(LabelNamer(underscore_label_sanitization=True), _expect(sanitized, underscore), None)
    if check(
        LabelNamer(preserve_multiple_underscores=True),
        _expect(sanitized, multi),
        multi_error if multi_error is not None else error,
    ):
        check(
            LabelNamer(preserve_multiple_underscores=True, underscore_label_sanitization=True),
            _expect(sanitized, both, underscore, multi),
            None,
        )
    if utf8_error is not None:
        check(LabelNamer(utf8_allowed=True), "", utf8_error)
    else:
        check(LabelNamer(utf8_allowed=True), label, None)


#: collector-contrib pkg/translator/prometheus normalize_name_test.go (TestOtelReceivers and
#: friends): names real receivers produce, which the current translator still gives.
CONTRIB_CASES = [
    ("system.filesystem.usage", "By", MetricType.GAUGE, "system_filesystem_usage_bytes"),
    ("system.io", "By", MetricType.MONOTONIC_COUNTER, "system_io_bytes_total"),
    (
        "network_transmitted_bytes_total",
        "By",
        MetricType.MONOTONIC_COUNTER,
        "network_transmitted_bytes_total",
    ),
    ("system.network.dropped", "{packets}", MetricType.GAUGE, "system_network_dropped"),
    (
        "system.network.dropped",
        "{packets}",
        MetricType.MONOTONIC_COUNTER,
        "system_network_dropped_total",
    ),
    ("system.network.dropped", "packets", MetricType.GAUGE, "system_network_dropped_packets"),
    (
        "system.network.packets.dropped",
        "packets",
        MetricType.GAUGE,
        "system_network_packets_dropped",
    ),
    ("system.network.packets", "packets", MetricType.GAUGE, "system_network_packets"),
    ("hw.gpu.memory.utilization", "1", MetricType.GAUGE, "hw_gpu_memory_utilization_ratio"),
    ("hw.fan.speed_ratio", "1", MetricType.GAUGE, "hw_fan_speed_ratio"),
    ("objects", "1", MetricType.MONOTONIC_COUNTER, "objects_total"),
    ("hw.cpu.speed_limit", "Hz", MetricType.GAUGE, "hw_cpu_speed_limit_hertz"),
    ("broken.metric.speed", "km/h", MetricType.GAUGE, "broken_metric_speed_km_per_hour"),
    (
        "astro.light.speed_limit",
        "m/s",
        MetricType.GAUGE,
        "astro_light_speed_limit_meters_per_second",
    ),
    ("broken.metric.success_ratio", "%", MetricType.GAUGE, "broken_metric_success_ratio_percent"),
    ("broken.metric.success_percent", "%", MetricType.GAUGE, "broken_metric_success_percent"),
    ("test.metric.no_unit", "", MetricType.GAUGE, "test_metric_no_unit"),
    ("test.metric.spaces", "   \t  ", MetricType.GAUGE, "test_metric_spaces"),
    ("unsupported.metric.temperature", "°F", MetricType.GAUGE, "unsupported_metric_temperature_F"),
    (
        "active_directory.ds.replication.network.io",
        "By",
        MetricType.MONOTONIC_COUNTER,
        "active_directory_ds_replication_network_io_bytes_total",
    ),
    (
        "active_directory.ds.replication.object.rate",
        "{objects}/s",
        MetricType.GAUGE,
        "active_directory_ds_replication_object_rate_per_second",
    ),
    ("apache.current_connections", "connections", MetricType.GAUGE, "apache_current_connections"),
    ("apache.workers", "connections", MetricType.GAUGE, "apache_workers_connections"),
    ("system.cpu.utilization", "1", MetricType.GAUGE, "system_cpu_utilization_ratio"),
    (
        "system.disk.operation_time",
        "s",
        MetricType.MONOTONIC_COUNTER,
        "system_disk_operation_time_seconds_total",
    ),
    (
        "mongodbatlas.process.oplog.rate",
        "GiBy/h",
        MetricType.GAUGE,
        "mongodbatlas_process_oplog_rate_gibibytes_per_hour",
    ),
    (
        "mongodbatlas.process.db.query_targeting.scanned_per_returned",
        "{scanned}/{returned}",
        MetricType.GAUGE,
        "mongodbatlas_process_db_query_targeting_scanned_per_returned",
    ),
    ("nginx.requests", "requests", MetricType.GAUGE, "nginx_requests"),
    ("redis.latest_fork", "us", MetricType.GAUGE, "redis_latest_fork_microseconds"),
    ("envoy__rule_engine_zlib_buf_error", "", MetricType.GAUGE, "envoy_rule_engine_zlib_buf_error"),
    ("3.14 digits", "", MetricType.GAUGE, "_3_14_digits"),
]


@pytest.mark.parametrize("case", CONTRIB_CASES, ids=lambda c: c[0])
def test_metric_namer_matches_collector_contrib(case: tuple[str, str, MetricType, str]) -> None:
    name, unit, kind, want = case
    assert MetricNamer().build(name, unit, kind) == want


def test_the_two_known_differences_of_the_scrape_exporter() -> None:
    """What issue 8 reported, seen through the collector's rules: a unit word already in the
    name is not appended again, and ``1`` on a gauge appends ``_ratio``. The Python scrape
    exporter does neither, which is why the catalogue uses neither."""
    assert (
        MetricNamer().build("db.client.connections.usage", "connections", MetricType.GAUGE)
        == "db_client_connections_usage"
    )
    assert MetricNamer().build("trawl.health.status", "1", MetricType.GAUGE) == (
        "trawl_health_status_ratio"
    )
