"""The Loki ruler's rules (grafana/loki/rules/fake/), checked statically: there is no Loki binary
on these machines. The ruler reads Prometheus-format rule groups with LogQL expressions; these
tests check that they only select on the labels Loki indexes (anything else is structured
metadata and matches nothing in a stream selector), that they are well-formed, and that the
secret detector matches real secrets but not what the app's redaction makes of them.
(Annotations, severities and runbooks are checked with the Prometheus rules in
test_rule_contract.py.)"""

from __future__ import annotations

import re

import pytest

from otel.redact import redact_text
from tests.alerting.rules import LOKI_RULES, Rule, load, loki_rules

# grafana/loki/loki.yaml: distributor.otlp_config.default_resource_attributes_as_index_labels
INDEX_LABELS = {"service_name", "service_namespace", "deployment_environment_name"}
RULES = loki_rules()


def _by_name(name: str) -> Rule:
    return next(r for r in RULES if r.name == name)


def test_the_ruler_directory_holds_the_two_log_alerts() -> None:
    assert LOKI_RULES.name == "fake"  # the tenant id when auth is off (auth_enabled: false)
    config = load(LOKI_RULES.parents[1] / "loki.yaml")
    assert config["auth_enabled"] is False
    assert config["ruler"]["storage"]["local"]["directory"] == "/etc/loki/rules"
    assert {r.name for r in RULES} == {"TrawlErrorLogBurst", "TrawlSecretInLogs"}
    assert all(r.is_alert for r in RULES)


def _outside_backticks(expr: str) -> str:
    return re.sub(r"`[^`]*`", "``", expr)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_stream_selectors_use_only_index_labels(rule: Rule) -> None:
    expr = _outside_backticks(rule.body["expr"])
    streams = re.findall(r"\{([^{}]*)\}", expr)
    assert streams, expr
    for stream in streams:
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', stream)
        assert matchers, stream
        assert {label for label, _, _ in matchers} <= INDEX_LABELS, stream
        # Loki refuses a selector whose matchers all match the empty string
        assert any(op in ("=", "=~") and value not in ("", ".*") for _, op, value in matchers)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_aggregations_group_on_index_labels_and_ranges_are_set(rule: Rule) -> None:
    expr = _outside_backticks(rule.body["expr"])
    for group in re.findall(r"by\s*\(([^)]*)\)", expr):
        assert {g.strip() for g in group.split(",")} <= INDEX_LABELS, group
    assert re.search(r"\[\d+[smh]\]", expr), "a range vector is required for an alert"
    for open_, close in ("()", "{}", "[]"):
        assert expr.count(open_) == expr.count(close), (open_, expr)
    assert rule.body["expr"].count("`") % 2 == 0


def test_error_burst_counts_error_levels_per_service() -> None:
    expr = _by_name("TrawlErrorLogBurst").body["expr"]
    assert 'detected_level=~"error|critical|fatal"' in expr
    assert "sum by (service_name, service_namespace, deployment_environment_name)" in expr
    assert re.search(r"\)\s*>\s*50\s*$", expr.strip())


def _secret_regex() -> re.Pattern[str]:
    expr = _by_name("TrawlSecretInLogs").body["expr"]
    m = re.search(r"\|~\s*`([^`]*)`", expr)
    assert m, expr
    return re.compile(m.group(1))


# Shapes of real secrets (built here so that no scanner mistakes this file for a leak).
PLANTED = [
    "api key " + "trawl_sk_" + "A1b2C3d4E5f6G7h8",
    "secret=" + "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "token " + "xoxb-" + "123456789012-abcdefABCDEF",
    "posting to https://hooks.slack.com/services/"
    + "T0123ABCD/B0456EFGH/"
    + "abcdefghij0123456789ABCD",
    "gh " + "ghp_" + "a" * 36,
    "charge with " + "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "aws " + "AKIA" + "IOSFODNN7EXAMPLE",
    "jwt "
    + "eyJhbGciOiJIUzI1NiJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEow...",
    "Authorization: Bearer " + "abcdefghijklmnopqrstuvwxyz012345",
    "proxy http://user:" + "s3cretpw" + "@proxy.example.com:8080",
]

INNOCENT = [
    'GET /v1/jobs/job_01J8X7 200 "trace.id": "4bf92f3577b34da6a3ce929d0e0e4736"',
    "fetched https://example.com/products?page=2 in 0.31s",
    "webhook delivered to https://client.example.com/hooks/trawl",
    "proxy pool residential: 3 healthy",
    "key trawl_sk_*** used by trawl.api_key.id=key_01J8",
    "Authorization: Bearer ***",
    "connecting to postgresql://***@postgres:5432/trawl",
]


@pytest.mark.parametrize("line", PLANTED, ids=range(len(PLANTED)))
def test_secret_detector_matches_real_secret_shapes(line: str) -> None:
    assert _secret_regex().search(line), line


@pytest.mark.parametrize("line", PLANTED, ids=range(len(PLANTED)))
def test_secret_detector_ignores_what_the_app_redaction_masked(line: str) -> None:
    """What otel/redact.py masks no longer matches (no alert for a correctly masked secret);
    what it lets through (today: AWS access key ids) still does: then the alert is the only
    line of defence."""
    redacted = redact_text(line)
    if redacted == line:
        assert _secret_regex().search(redacted), f"neither masked nor detected: {line!r}"
    else:
        assert not _secret_regex().search(redacted), redacted


@pytest.mark.parametrize("line", INNOCENT, ids=range(len(INNOCENT)))
def test_secret_detector_ignores_ordinary_lines(line: str) -> None:
    assert not _secret_regex().search(line), line
