"""grafana/alertmanager/: `amtool check-config`, `amtool config routes test` for every severity
and the escalation, the timers the 2-minute budget needs, the renderer (receivers from the
environment, else the local sink) and the templates through `amtool template render`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest
import yaml

from tests.alerting.amconfig import render_module
from tests.alerting.rules import AM_CONFIG, AM_DIR, ROOT, alerts, load
from tests.stack.conftest import require_tool

CONFIG = load(AM_CONFIG)


def _amtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("amtool"), *args], capture_output=True, text=True, check=False, cwd=cwd
    )


# ------------------------------------------------------------------------------- check-config


def test_amtool_check_config_of_the_committed_file() -> None:
    out = _amtool("check-config", str(AM_CONFIG))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "8 receivers" in out.stdout and "8 inhibit rules" in out.stdout


@pytest.mark.parametrize("configured", [False, True], ids=["sink", "real receivers"])
def test_amtool_check_config_of_rendered_configs(tmp_path: Path, configured: bool) -> None:
    render = render_module()
    env = _real_env(tmp_path) if configured else {}
    render.write(render.render(env, mount_dir=str(tmp_path / "out")), tmp_path / "out")
    out = _amtool("check-config", str(tmp_path / "out/alertmanager.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


# ------------------------------------------------------------------------------- routes


ROUTES = [
    ({"severity": "critical", "alertname": "TrawlQueueStuck"}, "pagerduty,slack-critical"),
    ({"severity": "warning", "alertname": "TrawlTasksReaped"}, "slack-warning"),
    ({"severity": "ticket", "alertname": "TrawlNewErrorGroup"}, "tickets"),
    ({"severity": "info", "alertname": "TrawlWorkersSaturated"}, "email-info"),
    ({"severity": "none", "alertname": "Watchdog"}, "deadmansswitch"),
    (
        {
            "severity": "critical",
            "alertname": "TrawlEscalation",
            "escalated_alertname": "TrawlQueueStuck",
        },
        "escalation",
    ),
    ({"severity": "none", "alertname": "SomethingElse"}, "blackhole"),
    ({"alertname": "NoSeverity"}, "slack-warning"),
]


@pytest.mark.parametrize(("labels", "receivers"), ROUTES, ids=[r for _, r in ROUTES])
def test_amtool_routes(labels: dict[str, str], receivers: str) -> None:
    pairs = [f"{k}={v}" for k, v in labels.items()]
    out = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        f"--verify.receivers={receivers}",
        *pairs,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == receivers


def test_amtool_routes_test_fails_on_a_wrong_receiver() -> None:
    """The check above can fail: a warning is not routed to PagerDuty."""
    out = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        "--verify.receivers=pagerduty",
        "severity=warning",
    )
    assert out.returncode != 0


def test_every_severity_the_rules_use_has_its_own_route() -> None:
    routed = {
        m.split("=", 1)[1].strip('"')
        for route in CONFIG["route"]["routes"]
        for m in route.get("matchers", [])
        if m.startswith("severity=")
    }
    used = {r.body["labels"]["severity"] for r in alerts()}
    assert used <= routed, used - routed


def _route(receiver: str) -> dict[str, Any]:
    return next(r for r in CONFIG["route"]["routes"] if r["receiver"] == receiver)


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(text[:-1]) * units[text[-1]]


def test_critical_timers_fit_the_budget_and_repeats_go_by_severity() -> None:
    root = CONFIG["route"]
    assert "alertname" in root["group_by"]
    for receiver in ("pagerduty", "slack-critical", "escalation"):
        route = _route(receiver)
        assert _seconds(route["group_wait"]) <= 10, receiver
        assert _seconds(route["group_interval"]) <= 60, receiver
    assert _route("pagerduty").get("continue") is True
    repeat = {r: _seconds(_route(r)["repeat_interval"]) for r in ("pagerduty", "escalation")}
    repeat |= {r: _seconds(_route(r)["repeat_interval"]) for r in ("slack-warning", "tickets")}
    assert repeat["escalation"] < repeat["pagerduty"] < repeat["slack-warning"] < repeat["tickets"]
    watchdog = _route("deadmansswitch")
    assert _seconds(watchdog["repeat_interval"]) <= 60  # a heartbeat every minute


def test_inhibitions_mute_twins_silent_services_and_what_is_behind_the_collector() -> None:
    rules = CONFIG["inhibit_rules"]
    twin = next(r for r in rules if r["source_matchers"] == ['severity="critical"'])
    assert 'severity=~"warning|ticket|info"' in twin["target_matchers"]
    assert "alertname" in twin["equal"]
    silent = next(r for r in rules if r["source_matchers"] == ['alertname="TrawlServiceSilent"'])
    assert set(silent["equal"]) == {"data_source", "deployment_environment_name"}
    collector = [r for r in rules if r["source_matchers"] == ['alertname="OtelCollectorDown"']]
    assert any(r["target_matchers"] == ['alertname="TrawlServiceSilent"'] for r in collector)


def test_data_source_labels_name_a_service() -> None:
    for rule in alerts():
        source = rule.body.get("labels", {}).get("data_source")
        assert source in (None, "trawl-api", "trawl-worker"), (rule.name, source)


# ------------------------------------------------------------------------------- renderer


def _real_env(tmp: Path) -> dict[str, str]:
    (tmp / "pd-key").write_text("R0UT1NGKEY\n")
    return {
        "ALERTMANAGER_PAGERDUTY_ROUTING_KEY_FILE": str(tmp / "pd-key"),
        "ALERTMANAGER_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B1/shared",
        "ALERTMANAGER_SLACK_ESCALATION_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B2/esc",
        "ALERTMANAGER_SMTP_SMARTHOST": "smtp.example.org:587",
        "ALERTMANAGER_SMTP_FROM": "alerts@example.org",
        "ALERTMANAGER_SMTP_USERNAME": "alerts",
        "ALERTMANAGER_SMTP_PASSWORD": "smtp-pw",
        "ALERTMANAGER_EMAIL_TO": "ops@example.org",
        "ALERTMANAGER_TICKETS_EMAIL_TO": "tickets@example.org",
        "ALERTMANAGER_ESCALATION_EMAIL_TO": "secondary@example.org",
        "ALERTMANAGER_DEADMANSSWITCH_URL": "https://hc-ping.example.org/abc",
        "GRAFANA_ROOT_URL": "https://grafana.example.org/",
        "TRAWL_RUNBOOK_BASE_URL": "https://github.com/acme/trawl/blob/main",
    }


def _receiver(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in config["receivers"] if r["name"] == name)


def test_render_without_secrets_sends_everything_to_the_sink(tmp_path: Path) -> None:
    render = render_module()
    out = tmp_path / "out"
    rendered = render.render({})
    render.write(rendered, out)
    assert set(rendered.channels.values()) == {"sink"}
    config = yaml.safe_load((out / "alertmanager.yml").read_text())
    committed = load(AM_CONFIG)
    assert config == committed  # nothing but secrets written: the committed config as is
    secrets = out / "secrets"
    assert (secrets / "slack-critical-webhook-url").read_text().strip() == (
        "http://alert-sink:9095/slack/slack-critical"
    )
    assert (secrets / "pagerduty-routing-key").read_text().strip() == "local-sink"
    for path in secrets.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert (out / "alertmanager.yml").stat().st_mode & 0o777 == 0o600
    assert (out / "templates/links.tmpl").read_text() == (
        AM_DIR / "templates/links.tmpl"
    ).read_text()
    assert (out / "templates/trawl.tmpl").read_text() == (
        AM_DIR / "templates/trawl.tmpl"
    ).read_text()


def test_render_switches_each_receiver_to_its_configured_endpoint(tmp_path: Path) -> None:
    render = render_module()
    rendered = render.render(_real_env(tmp_path))
    config, secrets = rendered.config, rendered.secrets
    assert set(rendered.channels.values()) == {"configured"}
    glob = config["global"]
    assert glob["pagerduty_url"] == "https://events.pagerduty.com/v2/enqueue"
    assert glob["smtp_smarthost"] == "smtp.example.org:587"
    assert glob["smtp_require_tls"] is True
    assert glob["smtp_from"] == "alerts@example.org"
    assert glob["smtp_auth_username"] == "alerts"
    assert glob["smtp_auth_password_file"] == "/etc/alertmanager/secrets/smtp-password"
    assert secrets["smtp-password"] == "smtp-pw"
    assert secrets["pagerduty-routing-key"] == "R0UT1NGKEY"  # from the *_FILE
    assert secrets["slack-warning-webhook-url"].endswith("/B1/shared")
    assert secrets["slack-escalation-webhook-url"].endswith("/B2/esc")
    assert _receiver(config, "tickets")["email_configs"][0]["to"] == "tickets@example.org"
    assert _receiver(config, "escalation")["email_configs"][0]["to"] == "secondary@example.org"
    dms = _receiver(config, "deadmansswitch")["webhook_configs"][0]
    assert dms["url"] == "https://hc-ping.example.org/abc"
    assert "alert-sink" not in json.dumps(config)
    assert "https://grafana.example.org}}" not in rendered.links
    assert '"trawl.grafana_url" }}https://grafana.example.org{{' in rendered.links
    assert "https://github.com/acme/trawl/blob/main/{{ . }}" in rendered.links
    # nothing but addresses, secrets and recipients changed
    assert config["route"] == CONFIG["route"]
    assert config["inhibit_rules"] == CONFIG["inhibit_rules"]


def test_render_moves_the_sink_and_the_mount_for_a_process_on_the_host(tmp_path: Path) -> None:
    render = render_module()
    rendered = render.render(
        {},
        mount_dir=str(tmp_path),
        sink_http="http://127.0.0.1:19595",
        sink_smtp="127.0.0.1:12525",
    )
    text = json.dumps(rendered.config)
    assert "/etc/alertmanager" not in text and "alert-sink" not in text
    assert rendered.config["global"]["smtp_smarthost"] == "127.0.0.1:12525"
    assert (
        rendered.config["global"]["pagerduty_url"] == "http://127.0.0.1:19595/pagerduty/v2/enqueue"
    )
    slack = _receiver(rendered.config, "slack-critical")["slack_configs"][0]
    assert slack["api_url_file"] == f"{tmp_path}/secrets/slack-critical-webhook-url"
    assert (
        rendered.secrets["slack-critical-webhook-url"]
        == "http://127.0.0.1:19595/slack/slack-critical"
    )


def test_render_refuses_a_secret_file_that_does_not_exist(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(ROOT / ".venv/bin/python"), str(AM_DIR / "render.py"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ALERTMANAGER_PAGERDUTY_ROUTING_KEY_FILE": str(tmp_path / "nope")},
    )
    assert out.returncode == 2
    assert "ALERTMANAGER_PAGERDUTY_ROUTING_KEY_FILE" in out.stderr
    assert not (tmp_path / "out").exists()


def test_make_up_renders_the_config_alertmanager_runs() -> None:
    stack_sh = (ROOT / "grafana/bin/stack.sh").read_text()
    assert "grafana/alertmanager/render.py var/alertmanager" in stack_sh
    assert "need_docker up; ensure_env; render_alertmanager" in stack_sh
    compose = load(ROOT / "docker-compose.otel.yml")
    volumes = compose["services"]["alertmanager"]["volumes"]
    assert "./var/alertmanager:/etc/alertmanager:ro" in volumes
    assert compose["services"]["alertmanager"]["depends_on"]["alert-sink"]
    assert "alert-sink" in compose["services"]


# ------------------------------------------------------------------------------- templates


def _data(**alert_overrides: Any) -> dict[str, Any]:
    annotations = {
        "summary": "Trawl jobs are not moving in prod",
        "description": "The oldest ready task waited 6m 0s <for a worker> & more",
        "runbook_url": "docs/monitoring/runbooks/TrawlQueueStuck.md",
        "dashboard_url": "/d/trawl-queue?var-env=prod",
        "logql": '{service_name="trawl-worker", deployment_environment_name="prod"}'
        ' | detected_level=~"error|critical"',
        "traceql": '{ resource.service.name = "trawl-worker" && kind = consumer'
        " && status = error }",
        "error_group": "3f2a9c1b7d4e5f60",
    }
    labels = {
        "alertname": "TrawlQueueStuck",
        "severity": "critical",
        "deployment_environment_name": "prod",
        "service_name": "trawl-worker",
    }
    one = {
        "status": "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": "2026-01-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": "0123456789abcdef",
    }
    one.update(alert_overrides)
    return {
        "receiver": "slack-critical",
        "status": one["status"],
        "alerts": [one],
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": one["labels"],
        "commonAnnotations": one["annotations"],
        "externalURL": "http://alertmanager:9093",
    }


def _render(tmp: Path, text: str, data: dict[str, Any], kind: str = "text") -> str:
    path = tmp / "data.json"
    path.write_text(json.dumps(data))
    out = _amtool(
        "template",
        "render",
        f"--template.glob={AM_DIR / 'templates'}/*.tmpl",
        f"--template.text={text}",
        f"--template.data={path}",
        f"--template.type={kind}",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _explore(url: str) -> dict[str, Any]:
    query = parse_qs(urlsplit(url).query)
    pane: dict[str, Any] = next(iter(json.loads(query["panes"][0]).values()))
    return pane


def test_slack_message_links_runbook_dashboard_logs_traces_and_error_group(tmp_path: Path) -> None:
    text = _render(tmp_path, '{{ template "trawl.slack.text" . }}', _data())
    assert "*Trawl jobs are not moving in prod*" in text
    assert "Runbook: `docs/monitoring/runbooks/TrawlQueueStuck.md`" in text
    links = dict((label, url) for url, label in _slack_links(text))
    start_ms = 1767261600000  # 2026-01-01T10:00:00Z
    dash = urlsplit(links["Dashboard"])
    assert f"{dash.scheme}://{dash.netloc}{dash.path}" == "http://localhost:3000/d/trawl-queue"
    assert parse_qs(dash.query) == {
        "var-env": ["prod"],
        "from": [str(start_ms - 15 * 60_000)],
        "to": ["now"],
    }
    logs = _explore(links["Logs"])
    assert logs["datasource"] == "loki"
    assert logs["queries"][0]["datasource"] == {"type": "loki", "uid": "loki"}
    assert logs["queries"][0]["expr"] == _data()["alerts"][0]["annotations"]["logql"]
    assert logs["range"] == {"from": str(start_ms - 15 * 60_000), "to": "now"}
    traces = _explore(links["Failing traces"])
    assert traces["queries"][0]["queryType"] == "traceql"
    assert traces["queries"][0]["datasource"] == {"type": "tempo", "uid": "tempo"}
    assert traces["queries"][0]["query"] == _data()["alerts"][0]["annotations"]["traceql"]
    group = _explore(links["its traces"])
    assert group["queries"][0]["query"] == '{ span.trawl.error.group = "3f2a9c1b7d4e5f60" }'
    group_logs = _explore(links["its logs"])
    assert group_logs["queries"][0]["expr"].endswith('trawl_error_group="3f2a9c1b7d4e5f60"')
    silence = parse_qs(urlsplit(links["Silence"]).query)
    assert silence["matcher"] == ["alertname=TrawlQueueStuck", "deployment_environment_name=prod"]


def _slack_links(text: str) -> list[tuple[str, str]]:
    import re

    return re.findall(r"<([^|>]+)\|([^>]+)>", text)


def test_resolved_alert_links_end_after_the_alert(tmp_path: Path) -> None:
    data = _data(status="resolved", endsAt="2026-01-01T10:30:00Z")
    text = _render(tmp_path, '{{ template "trawl.slack.text" . }}', data)
    logs = _explore(dict((label, url) for url, label in _slack_links(text))["Logs"])
    end_ms = 1767263400000 + 5 * 60_000
    assert logs["range"]["to"] == str(end_ms)
    assert ":large_green_circle:" in text


def test_title_pagerduty_email_and_escalation_templates(tmp_path: Path) -> None:
    data = _data()
    title = _render(tmp_path, '{{ template "trawl.slack.title" . }}', data)
    assert title.strip() == "[FIRING:1] TrawlQueueStuck · prod · trawl-worker"
    pd = _render(tmp_path, '{{ template "trawl.pagerduty.description" . }}', data)
    assert pd.strip() == "[prod] Trawl jobs are not moving in prod"
    runbook = _render(tmp_path, '{{ template "trawl.pagerduty.runbook" . }}', data)
    assert runbook.strip() == "docs/monitoring/runbooks/TrawlQueueStuck.md"
    html = _render(tmp_path, '{{ template "trawl.email.html" . }}', data, kind="html")
    assert "&lt;for a worker&gt; &amp; more" in html  # descriptions are escaped
    assert 'href="http://localhost:3000/d/trawl-queue?var-env=prod&from=' in html
    assert "<code>3f2a9c1b7d4e5f60</code>" in html
    esc = _data(
        labels={
            "alertname": "TrawlEscalation",
            "severity": "critical",
            "escalated_alertname": "TrawlQueueStuck",
            "deployment_environment_name": "prod",
        }
    )
    esc_title = _render(tmp_path, '{{ template "trawl.escalation.title" . }}', esc)
    assert esc_title.strip() == "[ESCALATION] TrawlQueueStuck still firing after the page · prod"
    esc_text = _render(tmp_path, '{{ template "trawl.escalation.text" . }}', esc)
    assert 'escalated_alertname="TrawlQueueStuck"' in esc_text
    silence = dict((label, url) for url, label in _slack_links(esc_text))
    matchers = parse_qs(urlsplit(silence["silence this escalation in Grafana"]).query)["matcher"]
    assert "escalated_alertname=TrawlQueueStuck" in matchers
    assert unquote_plus("alertname%3DTrawlEscalation") in matchers
