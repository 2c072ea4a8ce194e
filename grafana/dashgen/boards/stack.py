"""The observability stack itself: is telemetry arriving? Scrape targets, the collector,
Prometheus, Loki, Tempo and Alertmanager, and what the app lost before the collector."""

from __future__ import annotations

from ..catalog import STACK
from ..kit import Board, Q, high_is_good, low_is_good, state_panel, timeseries_panel, value_map
from ..promql import agg, rate, ratio

_SIGNALS = (("spans", "spans"), ("metric_points", "metric points"), ("log_records", "log records"))


def _stack_rate(metric: str, *matchers: str, by: tuple[str, ...] = (), fn: str = "rate") -> str:
    """A rate of a stack component's own series (not the app's: no env/service scope)."""
    return rate(metric, *matchers, by=by, fn=fn, scope="")


def _collector(b: Board) -> None:
    b.row("OpenTelemetry Collector")
    b.add(
        timeseries_panel(
            "Accepted by signal",
            "Spans, metric points and log records the collector's receivers accepted per second",
            "follows the app's traffic; a drop to 0 while the app runs means the app cannot "
            "reach the collector (see lost telemetry below)",
            [Q(_stack_rate(f"otelcol_receiver_accepted_{s}"), label) for s, label in _SIGNALS],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Refused and failed at the receivers",
            "Items the receivers refused (the memory limiter pushing back: senders retry) or "
            "failed to pass on, per second",
            "0; refusals mean the collector is over its memory limit",
            [
                Q(_stack_rate(f"otelcol_receiver_{kind}_{s}"), f"{kind} {label}")
                for kind in ("refused", "failed")
                for s, label in _SIGNALS
            ],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Sent by exporter",
            "Items each exporter delivered per second (prometheus_remote_write, otlp_http/tempo, "
            "otlp_http/loki)",
            "each exporter follows what its pipeline accepts",
            [
                Q(
                    _stack_rate(f"otelcol_exporter_sent_{s}", by=("exporter",)),
                    f"{{{{exporter}}}} {label}",
                )
                for s, label in _SIGNALS
            ],
            unit="ops",
            w=8,
        ),
    )
    b.add(
        timeseries_panel(
            "Export failures and drops",
            "Items an exporter failed to send (retried until its limit) and items dropped "
            "because its sending queue was full, per second",
            "0; drops are lost telemetry, failures that persist fill the queue",
            [
                Q(
                    _stack_rate(f"otelcol_exporter_{kind}_{s}", by=("exporter",)),
                    f"{{{{exporter}}}} {verb} {label}",
                )
                for kind, verb in (("send_failed", "failed"), ("enqueue_failed", "dropped"))
                for s, label in _SIGNALS
            ],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Sending queue fill",
            "Each exporter's sending queue size over its capacity",
            "near 0 %; a queue filling up means its backend (Prometheus, Tempo, Loki) is slow "
            "or down, and at 100 % items are dropped",
            [
                Q(
                    ratio(
                        agg("max", "otelcol_exporter_queue_size", ("exporter",)),
                        agg("max", "otelcol_exporter_queue_capacity", ("exporter",)),
                    ),
                    "{{exporter}}",
                )
            ],
            unit="percentunit",
            w=8,
            max_val=1,
            limits=low_is_good(0.5, 0.9),
        ),
        timeseries_panel(
            "Collector memory",
            "The collector's resident memory",
            "flat, below the memory limiter's limit (above it the receivers refuse data)",
            [Q("max(otelcol_process_memory_rss)", "RSS")],
            unit="bytes",
            w=8,
        ),
    )
    b.add(
        timeseries_panel(
            "Telemetry lost before the collector",
            "Spans, log records and metric points the app processes dropped because an export "
            "failed or their queue was full (counted in the process, sent when the collector "
            "is back)",
            "no bars; bars line up with collector outages or an undersized queue",
            [
                Q(
                    rate(
                        "trawl_telemetry_export_failures_total",
                        by=("service_name", "trawl_telemetry_signal", "trawl_telemetry_reason"),
                        fn="increase",
                    ),
                    "{{service_name}} {{trawl_telemetry_signal}} {{trawl_telemetry_reason}}",
                )
            ],
            w=24,
            h=6,
            bars=True,
        ),
    )


def _prometheus(b: Board) -> None:
    b.row("Prometheus")
    b.add(
        timeseries_panel(
            "Ingestion",
            "Samples and exemplars appended to the head block per second (scraped, recorded "
            "and remote-written alike), and remote-write requests per second by status (the "
            "collector's app metrics, Tempo's span metrics)",
            "steady; write requests at 0 while the app runs means the collector cannot write",
            [
                Q(_stack_rate("prometheus_tsdb_head_samples_appended_total"), "samples"),
                Q(_stack_rate("prometheus_tsdb_exemplar_exemplars_appended_total"), "exemplars"),
                Q(
                    _stack_rate(
                        "prometheus_http_requests_total", 'handler="/api/v1/write"', by=("code",)
                    ),
                    "write requests {{code}}",
                ),
            ],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Rejected samples",
            "Samples refused for being out of order or too old for the head block (remote "
            "write answers 400 for them)",
            "0; out-of-order samples mean two writers send the same series",
            [
                Q(_stack_rate("prometheus_tsdb_out_of_order_samples_total"), "out of order"),
                Q(_stack_rate("prometheus_tsdb_out_of_bound_samples_total"), "out of bounds"),
            ],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Series and rule evaluation",
            "Series in the head block, failed rule evaluations and missed rule-group iterations",
            "series flat (a climb is a cardinality leak); failures and misses at 0",
            [
                Q("max(prometheus_tsdb_head_series)", "head series"),
                Q(
                    _stack_rate("prometheus_rule_evaluation_failures_total", fn="increase"),
                    "rule failures",
                ),
                Q(
                    _stack_rate("prometheus_rule_group_iterations_missed_total", fn="increase"),
                    "missed iterations",
                ),
            ],
            w=8,
        ),
    )


def _loki_tempo(b: Board) -> None:
    b.row("Loki and Tempo")
    b.add(
        timeseries_panel(
            "Loki ingestion",
            "Log lines Loki's distributor received per second, and lines it discarded by "
            "reason (rate limits, too old, line too long)",
            "received follows the app's logging; discarded at 0",
            [
                Q(_stack_rate("loki_distributor_lines_received_total"), "received"),
                Q(
                    _stack_rate("loki_discarded_samples_total", by=("reason",)),
                    "discarded {{reason}}",
                ),
            ],
            unit="ops",
            w=6,
        ),
        timeseries_panel(
            "Loki streams and errors",
            "Streams held in memory, and Loki requests answered with a 5xx, by route",
            "streams flat (few labels by design); 5xx at 0",
            [
                Q("sum(loki_ingester_memory_streams)", "streams"),
                Q(
                    _stack_rate(
                        "loki_request_duration_seconds_count", 'status_code=~"5.."', by=("route",)
                    ),
                    "5xx {{route}}",
                ),
            ],
            w=6,
        ),
        timeseries_panel(
            "Tempo ingestion",
            "Spans Tempo's distributor received per second, spans it discarded by reason, and "
            "spans its receivers refused",
            "received follows the app's traffic (times the sampling ratio); discarded and "
            "refused at 0",
            [
                Q(_stack_rate("tempo_distributor_spans_received_total"), "received"),
                Q(
                    _stack_rate("tempo_discarded_spans_total", by=("reason",)),
                    "discarded {{reason}}",
                ),
                Q(_stack_rate("tempo_receiver_refused_spans"), "refused"),
            ],
            unit="ops",
            w=6,
        ),
        timeseries_panel(
            "Tempo traces and span metrics",
            "Live traces in Tempo's ingesters, spans its metrics generator received per second "
            "and the active series it writes (span metrics, service graph)",
            "generator spans follow received spans; active series flat",
            [
                Q("sum(tempo_ingester_live_traces)", "live traces"),
                Q(_stack_rate("tempo_metrics_generator_spans_received_total"), "generator spans/s"),
                Q("sum(tempo_metrics_generator_registry_active_series)", "generator series"),
            ],
            w=6,
        ),
    )


def _targets(b: Board) -> None:
    b.row("Scrape targets and Alertmanager")
    b.add(
        state_panel(
            "Scrape targets",
            "Every job Prometheus scrapes (the stack, the exporters, the probes, the canary): "
            "up or down",
            "all green; a red lane is a component Prometheus cannot reach",
            [Q(agg("min", "up", ("job",)), "{{job}}")],
            mappings=[value_map({"1": ("up", "green"), "0": ("down", "red")})],
            limits=high_is_good(1, 1),
            w=12,
            h=8,
        ),
        timeseries_panel(
            "Alertmanager notifications",
            "Notifications Alertmanager sent per second by integration, and failed ones",
            "failed at 0",
            [
                Q(
                    _stack_rate("alertmanager_notifications_total", by=("integration",)),
                    "sent {{integration}}",
                ),
                Q(
                    _stack_rate("alertmanager_notifications_failed_total", by=("integration",)),
                    "failed {{integration}}",
                ),
            ],
            unit="ops",
            w=12,
            h=8,
        ),
    )


def board() -> Board:
    b = Board(
        STACK,
        "Is telemetry arriving? What Prometheus scrapes, the OpenTelemetry Collector's "
        "receivers, exporters and queues, what the app lost before the collector, Prometheus' "
        "ingestion and rules, Loki's and Tempo's ingestion, and Alertmanager's notifications. "
        "When another dashboard is empty, look here first.",
        time_from="now-3h",
    )
    _targets(b)
    _collector(b)
    _prometheus(b)
    _loki_tempo(b)
    return b
