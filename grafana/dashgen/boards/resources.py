"""System resources: what each process uses. CPU, memory, file descriptors, GC and event-loop
lag for the API and every worker; the database pool and query latency; the Redis backlog."""

from __future__ import annotations

from ..catalog import RESOURCES
from ..kit import Board, Q, low_is_good, timeseries_panel
from ..promql import agg, quantile, rate, sel

#: per-process views: one line per process (``by (instance)``, unique on both metric paths)
_PROC = ("service_name", "instance")
_PROC_LEGEND = "{{service_name}} {{instance}}"
_POOL = ("db_client_connection_pool_name",)


def board() -> Board:
    b = Board(
        RESOURCES,
        "What each process uses: CPU, memory, file descriptors, threads, garbage collection "
        "and event-loop lag for the API and every worker (one line per process; a restarted "
        "process is a new line), then the database pools and query latency, and the Redis "
        "stream backlog. Host, PostgreSQL and Redis servers: their exporters, on the "
        "Observability stack dashboard's scrape targets.",
        time_from="now-3h",
    )
    b.row("Processes")
    b.add(
        timeseries_panel(
            "CPU per process",
            "CPU cores each process uses (user and system time)",
            "well under 1 core per process (Python runs one thread of Python at a time); a "
            "process pinned at 1 is CPU-bound",
            [Q(rate("process_cpu_time_seconds_total", by=_PROC), _PROC_LEGEND)],
            unit="none",
            w=12,
            limits=low_is_good(0.8, 0.95),
        ),
        timeseries_panel(
            "Memory per process",
            "Resident memory (RSS) of each process",
            "flat after warm-up; a steady climb is a leak",
            [Q(agg("max", sel("process_memory_usage_bytes"), _PROC), _PROC_LEGEND)],
            unit="bytes",
            w=12,
        ),
        timeseries_panel(
            "Open file descriptors",
            "File descriptors each process holds open (sockets, files)",
            "flat; growth with flat traffic is a connection leak",
            [Q(agg("max", sel("process_open_file_descriptor_count"), _PROC), _PROC_LEGEND)],
            w=12,
        ),
        timeseries_panel(
            "Threads",
            "Threads per process (the event loop, the SDK's exporters, the thread pool)",
            "flat",
            [Q(agg("max", sel("process_thread_count"), _PROC), _PROC_LEGEND)],
            w=12,
        ),
    )
    b.row("Runtime")
    b.add(
        timeseries_panel(
            "Event-loop lag p99",
            "99th percentile of how late the event loop ran a timer due every second, per process",
            "milliseconds; 100 ms and more means something blocks the loop (CPU-bound parsing, "
            "synchronous I/O) and every request or task on it waits",
            [
                Q(
                    quantile(0.99, "trawl_event_loop_lag_seconds", by=_PROC),
                    _PROC_LEGEND,
                )
            ],
            unit="s",
            w=12,
            limits=low_is_good(0.1, 1),
        ),
        timeseries_panel(
            "Heartbeat age",
            "Seconds since each process's event loop last ticked (it ticks every second)",
            "around 1 s (plus up to one export interval); a line that grows is a stuck loop, a "
            "line that ends is a process that stopped",
            [
                Q(
                    "time() - " + agg("max", sel("trawl_event_loop_last_tick_seconds"), _PROC),
                    _PROC_LEGEND,
                )
            ],
            unit="s",
            w=12,
            limits=low_is_good(15, 30),
        ),
        timeseries_panel(
            "GC collections by generation",
            "Garbage collections per second by generation",
            "generation 0 often, generation 2 rarely; frequent gen-2 collections mean many "
            "long-lived objects",
            [
                Q(
                    rate(
                        "cpython_gc_collections_total", by=("service_name", "cpython_gc_generation")
                    ),
                    "{{service_name}} gen {{cpython_gc_generation}}",
                )
            ],
            unit="ops",
            w=12,
        ),
        timeseries_panel(
            "Time in GC",
            "Share of wall time each process spends in garbage collection",
            "under 1 %",
            [Q(rate("trawl_gc_pause_time_seconds_total", by=_PROC), _PROC_LEGEND)],
            unit="percentunit",
            w=12,
            limits=low_is_good(0.01, 0.05),
        ),
    )
    b.row("Database")
    b.add(
        timeseries_panel(
            "Pool connections",
            "Connections of each pool by state (idle, used), summed over processes, against "
            "the most the pools may open",
            "used well below max; used at max means requests wait for a connection",
            [
                Q(
                    agg(
                        "sum",
                        sel("db_client_connection_count"),
                        (*_POOL, "db_client_connection_state"),
                    ),
                    "{{db_client_connection_pool_name}} {{db_client_connection_state}}",
                ),
                Q(
                    agg("sum", sel("db_client_connection_max"), _POOL),
                    "{{db_client_connection_pool_name}} max",
                ),
            ],
            w=8,
        ),
        timeseries_panel(
            "Pool waits and timeouts",
            "Requests waiting for a pooled connection now, and requests that timed out "
            "waiting, per interval",
            "both 0",
            [
                Q(
                    agg("sum", sel("db_client_connection_pending_requests"), _POOL),
                    "{{db_client_connection_pool_name}} waiting",
                ),
                Q(
                    rate("db_client_connection_timeouts_total", by=_POOL, fn="increase"),
                    "{{db_client_connection_pool_name}} timeouts",
                ),
            ],
            w=8,
            limits=low_is_good(1, 1),
        ),
        timeseries_panel(
            "Connection wait p95",
            "95th percentile of the time to get a connection from the pool",
            "milliseconds; seconds mean the pool is exhausted",
            [
                Q(
                    quantile(0.95, "db_client_connection_wait_time_seconds", by=_POOL),
                    "{{db_client_connection_pool_name}}",
                )
            ],
            unit="s",
            w=8,
            limits=low_is_good(0.1, 1),
        ),
    )
    op = "db_client_operation_duration_seconds"
    b.add(
        timeseries_panel(
            "Query latency p95 by operation",
            "95th percentile of database operations by statement keyword; exemplars open the "
            "trace of a slow query",
            "milliseconds for SELECT, INSERT and UPDATE; a jump on one keyword points at a "
            "missing index or a lock",
            [
                Q(
                    quantile(0.95, op, by=("db_system_name", "db_operation_name")),
                    "{{db_system_name}} {{db_operation_name}}",
                    exemplar=True,
                )
            ],
            unit="s",
            w=12,
            limits=low_is_good(0.1, 1),
        ),
        timeseries_panel(
            "Queries and failures",
            "Database operations per second by keyword, and failed ones by driver error type",
            "no failures",
            [
                Q(rate(f"{op}_count", by=("db_operation_name",)), "{{db_operation_name}}"),
                Q(
                    rate(f"{op}_count", 'error_type!=""', by=("error_type",)),
                    "failed {{error_type}}",
                ),
            ],
            unit="ops",
            w=12,
        ),
    )
    b.row("Redis")
    b.add(
        timeseries_panel(
            "Redis stream backlog",
            "Messages in the Redis task stream and messages delivered to workers but not yet "
            "acknowledged",
            "pending near the running tasks; length bounded by TRAWL_STREAM_MAXLEN (a stream "
            "that only grows is not being trimmed)",
            [
                Q(agg("max", sel("trawl_queue_stream_length")), "length"),
                Q(agg("max", sel("trawl_queue_stream_pending")), "pending"),
            ],
            w=24,
        ),
    )
    return b
