from __future__ import annotations

import io
import json
import logging

import otel
from otel.redact import redact_text, redact_value


def test_url_credentials() -> None:
    assert redact_text("via http://user:pa55@proxy.example:8080/x") == (
        "via http://***@proxy.example:8080/x"
    )
    assert redact_text("socks5://u@host") == "socks5://***@host"
    assert redact_text("https://example.org/a@b") == "https://example.org/a@b"


def test_bearer_and_kv() -> None:
    assert redact_text("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer ***"
    assert redact_text("GET /x?api_key=SECRET1&page=2") == "GET /x?api_key=***&page=2"
    assert redact_text('{"password": "hunter2"}') == '{"password": "***"}'
    assert redact_text("nothing to see") == "nothing to see"


def test_sensitive_keys() -> None:
    assert redact_value("Authorization", "Bearer x") == "***"
    assert redact_value("api_key", "k") == "***"
    assert redact_value("Cookie", "s=1") == "***"
    assert redact_value("proxy_url", "http://a:b@h") == "http://***@h"
    assert redact_value("headers", {"X-Api-Key": "k", "Accept": "*/*"}) == {
        "X-Api-Key": "***",
        "Accept": "*/*",
    }


def test_logs_are_redacted() -> None:
    buf = io.StringIO()
    otel.configure_logging("INFO", stream=buf, otlp=False)
    logging.getLogger("app.r").info(
        "fetch via %s with Bearer tok123456",
        "http://bob:secret@proxy:3128",
        extra={"password": "p", "proxy.url": "http://bob:secret@proxy:3128", "n": 1},
    )
    doc = json.loads(buf.getvalue())
    assert doc["message"] == "fetch via http://***@proxy:3128 with Bearer ***"
    assert doc["password"] == "***"
    assert doc["proxy.url"] == "http://***@proxy:3128"
    assert doc["n"] == 1
    assert "secret" not in buf.getvalue()
