"""The dashboard recording rules (grafana/prometheus/rules/dashboards.yml): named by convention,
labelled as the dashboards expect, and computing what they claim (``promtool test rules``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import promql_parser
import yaml

from grafana.dashgen.generate import RULES_FILE
from grafana.dashgen.rules import RULES
from tests.dashboards.model import allowed_labels
from tests.stack.conftest import require_tool
from tests.support import promql


def test_the_rule_file_holds_exactly_the_rules_of_the_code() -> None:
    doc = yaml.safe_load(RULES_FILE.read_text())
    recorded = {r["record"]: r["expr"] for g in doc["groups"] for r in g["rules"]}
    assert recorded == {r.record: r.expr for r in RULES}


def test_names_follow_the_convention() -> None:
    for r in RULES:
        assert re.fullmatch(r"trawl:[a-z0-9_]+:[a-z0-9_]+", r.record), r.record


def test_declared_labels_are_the_outer_aggregation_or_the_inputs() -> None:
    for r in RULES:
        node = promql_parser.parse(r.expr)
        if isinstance(node, promql_parser.AggregateExpr):
            assert set(node.modifier.labels) == set(r.labels), r.record
        else:  # a function over one recorded series keeps its labels
            (metric,) = promql.metric_names(r.expr)
            inputs = allowed_labels(metric)
            assert inputs is not None and r.labels == inputs, r.record


def test_inputs_exist() -> None:
    for r in RULES:
        for metric in promql.metric_names(r.expr):
            assert allowed_labels(metric) is not None, f"{r.record} reads unknown {metric}"


_TEST = """\
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # two API processes serving the same route: 1 and 2 requests per second
      - series: 'http_server_request_duration_seconds_count{{deployment_environment_name="prod",
          service_name="trawl-api", http_route="/v1/jobs", http_request_method="POST",
          http_response_status_code="201", instance="a"}}'
        values: '0+60x20'
      - series: 'http_server_request_duration_seconds_count{{deployment_environment_name="prod",
          service_name="trawl-api", http_route="/v1/jobs", http_request_method="GET",
          http_response_status_code="201", instance="b"}}'
        values: '0+120x20'
      - series: 'http_server_request_duration_seconds_bucket{{deployment_environment_name="prod",
          service_name="trawl-api", http_route="/v1/jobs", http_request_method="POST",
          http_response_status_code="201", instance="a", le="0.1"}}'
        values: '0+30x20'
      - series: 'http_server_request_duration_seconds_bucket{{deployment_environment_name="prod",
          service_name="trawl-api", http_route="/v1/jobs", http_request_method="POST",
          http_response_status_code="500", instance="b", le="0.1"}}'
        values: '0+90x20'
      # an SLO whose hourly error ratio is 0.001 for 30 minutes, then 0.003
      - series: 'slo:sli_error:ratio_rate1h{{slo="api-availability",
          deployment_environment_name="prod"}}'
        values: '0.001x29 0.003x29'
    promql_expr_test:
      - expr: trawl:http_server_requests:rate5m
        eval_time: 10m
        exp_samples:
          - labels: 'trawl:http_server_requests:rate5m{{deployment_environment_name="prod",
              service_name="trawl-api", http_route="/v1/jobs", http_response_status_code="201"}}'
            value: 3
      - expr: trawl:http_server_request_duration_seconds_bucket:rate5m
        eval_time: 10m
        exp_samples:
          - labels: 'trawl:http_server_request_duration_seconds_bucket:rate5m{{
              deployment_environment_name="prod", service_name="trawl-api", http_route="/v1/jobs",
              le="0.1"}}'
            value: 2
      - expr: trawl:slo_sli_error:ratio_avg30d
        eval_time: 60m
        exp_samples:
          - labels: 'trawl:slo_sli_error:ratio_avg30d{{slo="api-availability",
              deployment_environment_name="prod"}}'
            value: 0.002
"""


def test_promtool_checks_and_unit_tests_the_rules(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    check = subprocess.run(
        [promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = tmp_path / "dashboards_test.yml"
    test.write_text(_TEST.format(rules=RULES_FILE))
    run = subprocess.run(
        [promtool, "test", "rules", str(test)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # and the test can fail: a wrong expected value is reported
    test.write_text(_TEST.format(rules=RULES_FILE).replace("value: 3\n", "value: 4\n"))
    run = subprocess.run([promtool, "test", "rules", str(test)], capture_output=True, check=False)
    assert run.returncode != 0
