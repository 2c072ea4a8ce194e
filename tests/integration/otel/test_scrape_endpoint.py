"""The telemetry package in the real world: the semantic-conventions default seen by a fresh
interpreter, and the Prometheus scrape endpoint on real ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

import otel
from otel import _setup
from tests.support.net import free_port


def test_semconv_opt_in_default() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OTEL_SEMCONV_STABILITY_OPT_IN"}
    code = "import os, otel; print(os.environ['OTEL_SEMCONV_STABILITY_OPT_IN'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "http,database"
    env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http/dup"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "http/dup"


def test_scrape_port_per_role_unless_the_standard_variable_sets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.delenv("OTEL_EXPORTER_PROMETHEUS_PORT", raising=False)
    role_port = free_port()
    tel = otel.configure("trawl-worker", service_version="1", prometheus_port=role_port)
    assert tel.prometheus_address == ("127.0.0.1", role_port)
    body = otel.prometheus_exposition()
    assert body is not None and b'service_name="trawl-worker"' in body[0]
    _setup.reset()
    # the endpoint is closed at shutdown: the port can be taken again
    explicit = free_port()
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(explicit))
    tel = otel.configure("trawl-worker", service_version="1", prometheus_port=role_port)
    assert tel.prometheus_address == ("127.0.0.1", explicit)
    _setup.reset()
    assert otel.prometheus_exposition() is None


def test_a_taken_scrape_port_is_logged_and_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
        monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(taken.getsockname()[1]))
        with caplog.at_level("WARNING", logger="otel"):
            tel = otel.configure("trawl-api", service_version="1")
    assert tel.enabled and tel.prometheus_address is None
    assert any("not started" in r.getMessage() for r in caplog.records)
