from __future__ import annotations

import io
import json
import logging

import pytest

import otel
from otel.redact import (
    is_sensitive_key,
    redact_db_message,
    redact_text,
    redact_traceback,
    redact_url,
    redact_value,
)


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


# Each case: text with a planted secret SEKRET… -> what must remain.
MASKED = [
    ("https://h/x?key=SEKRET1&q=ok", "https://h/x?key=***&q=ok"),
    (
        "https://h/x?credential=SEKRET2&private_key=SEKRET3",
        "https://h/x?credential=***&private_key=***",
    ),
    ("https://h/x?pwd=SEKRET4&auth=SEKRET5&page=2", "https://h/x?pwd=***&auth=***&page=2"),
    ("https://h/x?access_token=SEKRET6&sig=SEKRET7", "https://h/x?access_token=***&sig=***"),
    (  # URL-encoded, nested in another parameter
        "https://h/login?next=https%3A%2F%2Fa%2F%3Fpassword%3DSEKRET8%26page%3D2",
        "https://h/login?next=https%3A%2F%2Fa%2F%3Fpassword%3D***%26page%3D2",
    ),
    (
        "https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=SEKRET9%2F20240101%2Fus-east-1&X-Amz-Signature=SEKRET10&X-Amz-Date=20240101",
        "https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Date=20240101",
    ),
    (
        'Authorization: Digest username="bob", realm="r", nonce="SEKRET11", response="SEKRET12"',
        "Authorization: Digest ***",
    ),
    ('then Digest username="bob", response="SEKRET13" ok', "then Digest *** ok"),
    ("Proxy-Authorization: Basic SEKRET14dXNlcg==", "Proxy-Authorization: Basic ***"),
    ("Cookie: a=SEKRET15; sessionid=SEKRET16", "Cookie: ***"),
    (
        "{'authorization': 'Bearer SEKRET17', 'accept': '*/*'}",
        "{'authorization': 'Bearer ***', 'accept': '*/*'}",
    ),
    (
        "https://hooks.slack.com/services/T0AB12CD/B0EF34GH/SEKRET18abcdefghijklmnopqrst",
        "https://hooks.slack.com/services/***/***/***",
    ),
    (
        "https://discord.com/api/webhooks/112233445566778899/SEKRET19-abcDEF_ghiJKL",
        "https://discord.com/api/webhooks/112233445566778899/***",
    ),
    (
        "https://acme.webhook.office.com/webhookb2/ab12-cd@ef34-gh/IncomingWebhook/SEKRET20beef01/x9",
        "https://acme.webhook.office.com/webhookb2/***/IncomingWebhook/***/x9",
    ),
    (
        "https://api.telegram.org/bot123456:SEKRET21-secret_part/sendMessage",
        "https://api.telegram.org/bot***/sendMessage",
    ),
    ("https://chat.example/hooks/SEKRET22x7k9w2m4q8", "https://chat.example/hooks/***"),
    ("postgresql://trawl:SEKRET23@db:5432/trawl", "postgresql://***@db:5432/trawl"),
    (
        "key trawl_sk_SEKRET24abcdefghij and whsec_SEKRET25abcdefgh==",
        "key trawl_sk_*** and whsec_***",
    ),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SEKRET26abcdefghijk", "***"),
    ("-----BEGIN RSA PRIVATE KEY-----\nSEKRET27\n-----END RSA PRIVATE KEY-----", "***"),
    ("https://h/cb#access_token=SEKRET28&state=x", "https://h/cb#access_token=***&state=x"),
    ("boto3 failed for AKIAIOSFODNN7EXAMPLE in us-east-1", "boto3 failed for *** in us-east-1"),
    ("temporary ASIAY34FZKBOKMUTVV7A expired", "temporary *** expired"),
]

# Ordinary data that must come out unchanged.
UNCHANGED = [
    "https://react.dev/reference/react/hooks/useState",
    "https://example.com/services/pricing?page=2&sort=asc",
    "http://127.0.0.1:8000/v1/jobs/job_01HZXABCDEF123456789ABCDEF/results",
    "https://shop.example/p/12345?color=red&size=42",
    "connection refused at 12:30:45",
    "duplicate key value violates unique constraint",
    "api_key_id=key_01HZX token_type=bearer",
    "monkey=banana&keyboard=qwerty",
    "https://example.org/a@b",
    "SELECT api_key.id FROM api_key WHERE api_key.key_hash = $1",
    "AKIAS is a word, and so is ASIATIC",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_planted_secrets_are_masked(text: str, expected: str) -> None:
    out = redact_text(text)
    assert out == expected
    assert "SEKRET" not in out


@pytest.mark.parametrize("text", UNCHANGED)
def test_ordinary_data_is_not_mangled(text: str) -> None:
    assert redact_text(text) == text


def test_one_redact_url() -> None:
    import app.job.processing as processing

    assert not hasattr(processing, "redact_url") or processing.redact_url is redact_url
    assert redact_url("http://u:S1@h:1/p?api_key=S2&x=1") == "http://***@h:1/p?api_key=***&x=1"


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("api_key", True),
        ("X-Api-Key", True),
        ("apiKey", True),
        ("private_key", True),
        ("X-Amz-Credential", True),
        ("X-Amz-Security-Token", True),
        ("pwd", True),
        ("client_secret", True),
        ("session_id", True),
        ("JSESSIONID", True),
        ("auth", True),
        ("api_key_id", False),
        ("trawl.api_key.id", False),
        ("token_type", False),
        ("author", False),
        ("monkey", False),
        ("trawl.error.group", False),
        ("url.full", False),
    ],
)
def test_sensitive_keys_by_word(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


class _Url:
    def __str__(self) -> str:
        return "http://bob:S1@proxy:3128"


def test_non_string_values_are_redacted() -> None:
    assert redact_value("proxy", _Url()) == "http://***@proxy:3128"
    assert redact_value("err", ValueError("password=S2")) == "password=***"
    assert redact_value("raw", b"token=S3") == "b'token=***'"
    assert redact_value("urls", ("http://a:S4@h", 3)) == ["http://***@h", 3]
    assert redact_value("n", 5) == 5 and redact_value("ok", True) is True


def test_non_string_extras_are_redacted_in_logs() -> None:
    buf = io.StringIO()
    otel.configure_logging("INFO", stream=buf, otlp=False)
    logging.getLogger("app.r").info(
        "x", extra={"proxy": _Url(), "error": ValueError("api_key=S5"), "n": 2}
    )
    doc = json.loads(buf.getvalue())
    assert doc["proxy"] == "http://***@proxy:3128"
    assert doc["error"] == "api_key=***"
    assert doc["n"] == 2
    assert "S1" not in buf.getvalue() and "S5" not in buf.getvalue()


def test_database_errors_lose_their_literals() -> None:
    message = (
        "(sqlalchemy.dialects.postgresql.asyncpg.Error) invalid input for query argument $1: "
        "'S1' (expected int)\n[SQL: SELECT CAST($1 AS INTEGER)]\n[parameters: ('S1',)]"
    )
    out = redact_db_message(message)
    assert "S1" not in out
    assert "[SQL: SELECT CAST($1 AS INTEGER)]" in out  # the parameterised SQL stays
    trace = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/x.py", line 3, in f\n'
        "    await conn.execute(stmt, params)\n"
        "asyncpg.exceptions.DataError: invalid input for query argument $1: 'S2'\n\n"
        "sqlalchemy.exc.IntegrityError: (psycopg2.errors.UniqueViolation) duplicate key\n"
        "DETAIL:  Key (email)=(S3@example.org) already exists.\n"
    )
    out = redact_traceback(trace)
    assert "S2" not in out and "S3" not in out
    assert 'File "/srv/app/x.py", line 3, in f' in out  # frames are kept
