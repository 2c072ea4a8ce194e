"""A loopback OTLP/HTTP receiver (protobuf) for over-the-wire tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

MESSAGES = {
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
}
RESOURCE_FIELDS = {
    "/v1/traces": "resource_spans",
    "/v1/metrics": "resource_metrics",
    "/v1/logs": "resource_logs",
}


@dataclass
class Receiver:
    url: str
    received: dict[str, list[Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, path: str) -> list[Any]:
        with self.lock:
            return list(self.received.get(path, []))

    def resources(self, path: str) -> list[dict[str, Any]]:
        """Resource attributes of every resource block received on ``path``."""
        return resource_attrs(self.get(path), RESOURCE_FIELDS[path])


@contextmanager
def serve() -> Iterator[Receiver]:
    rec = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            cls = MESSAGES.get(self.path)
            if cls is None:
                self.send_response(404)
                self.end_headers()
                return
            msg = cls()
            msg.ParseFromString(body)
            with rec.lock:
                rec.received.setdefault(self.path, []).append(msg)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield rec
    finally:
        srv.shutdown()
        srv.server_close()


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def resource_attrs(requests: list[Any], field_name: str) -> list[dict[str, Any]]:
    return [attrs(r.resource.attributes) for req in requests for r in getattr(req, field_name)]
