"""A lean OTLP/HTTP sink for the bench: ``python -m tests.bench.sink --port N``.

It answers every export with 200 and keeps only what the bench reads:

* per log record, the latency from the record's timestamp (the log call) to its arrival here;
* counts of spans, log records and metric data points, and bytes, per signal;
* the latest value of ``trawl.telemetry.export.failures`` per process and attribute set (what
  each process lost: full queues, failed exports).

``GET /stats`` returns them as JSON; ``POST /reset`` starts a new window (the loss counters are
cumulative per process and are kept). Runs in its own process, pinned off the measured core.
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

LOSS_METRIC = "trawl.telemetry.export.failures"
MAX_LATENCIES = 500_000


def _attr(kv: Any) -> Any:
    which = kv.value.WhichOneof("value")
    return getattr(kv.value, which) if which else None


class Window:
    def __init__(self) -> None:
        self.started = time.time()
        self.latencies_ms: list[float] = []
        self.counts = {"spans": 0, "logs": 0, "points": 0}
        self.bytes = {"traces": 0, "metrics": 0, "logs": 0}
        self.requests = {"traces": 0, "metrics": 0, "logs": 0}
        self.services: dict[str, int] = {}


class Sink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window = Window()
        # (service.name, service.instance.id, signal, reason) -> cumulative lost items
        self.losses: dict[tuple[str, str, str, str], float] = {}

    def traces(self, body: bytes) -> None:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(body)
        n = sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
        with self.lock:
            self.window.counts["spans"] += n
            self.window.bytes["traces"] += len(body)
            self.window.requests["traces"] += 1

    def logs(self, body: bytes) -> None:
        arrived_ns = time.time_ns()
        msg = ExportLogsServiceRequest()
        msg.ParseFromString(body)
        lat: list[float] = []
        per_service: dict[str, int] = {}
        for rl in msg.resource_logs:
            service = _service(rl.resource)[0]
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    t = rec.time_unix_nano or rec.observed_time_unix_nano
                    lat.append((arrived_ns - t) / 1e6)
                    per_service[service] = per_service.get(service, 0) + 1
        with self.lock:
            w = self.window
            if len(w.latencies_ms) < MAX_LATENCIES:
                w.latencies_ms.extend(lat)
            w.counts["logs"] += len(lat)
            w.bytes["logs"] += len(body)
            w.requests["logs"] += 1
            for s, n in per_service.items():
                w.services[s] = w.services.get(s, 0) + n

    def metrics(self, body: bytes) -> None:
        msg = ExportMetricsServiceRequest()
        msg.ParseFromString(body)
        points = 0
        losses: dict[tuple[str, str, str, str], float] = {}
        for rm in msg.resource_metrics:
            service, instance = _service(rm.resource)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    dps = getattr(m, kind).data_points if kind else []
                    points += len(dps)
                    if m.name != LOSS_METRIC or kind != "sum":
                        continue
                    for dp in dps:
                        a = {kv.key: _attr(kv) for kv in dp.attributes}
                        key = (
                            service,
                            instance,
                            str(a.get("trawl.telemetry.signal")),
                            str(a.get("trawl.telemetry.reason")),
                        )
                        value = dp.as_int if dp.WhichOneof("value") == "as_int" else dp.as_double
                        losses[key] = float(value)
        with self.lock:
            self.window.counts["points"] += points
            self.window.bytes["metrics"] += len(body)
            self.window.requests["metrics"] += 1
            self.losses.update(losses)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            w = self.window
            return {
                "window_s": time.time() - w.started,
                "counts": dict(w.counts),
                "bytes": dict(w.bytes),
                "requests": dict(w.requests),
                "log_services": dict(w.services),
                "log_latencies_ms": list(w.latencies_ms),
                "losses": [
                    {"service": k[0], "instance": k[1], "signal": k[2], "reason": k[3], "items": v}
                    for k, v in self.losses.items()
                ],
            }

    def reset(self) -> None:
        with self.lock:
            self.window = Window()


def _service(resource: Any) -> tuple[str, str]:
    a = {kv.key: _attr(kv) for kv in resource.attributes}
    return str(a.get("service.name", "")), str(a.get("service.instance.id", ""))


def serve(port: int) -> None:
    sink = Sink()
    routes = {"/v1/traces": sink.traces, "/v1/logs": sink.logs, "/v1/metrics": sink.metrics}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, code: int, body: bytes = b"", ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            if self.path == "/reset":
                sink.reset()
                self._reply(204)
                return
            handler = routes.get(self.path)
            if handler is None:
                self._reply(404)
                return
            handler(body)
            self._reply(200, b"", "application/x-protobuf")

        def do_GET(self) -> None:
            if self.path == "/stats":
                self._reply(200, json.dumps(sink.stats()).encode())
            else:
                self._reply(404)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.sink")
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
