"""A real Alertmanager 0.25 running the repository's configuration (rendered by render.py with the
sink on loopback, as a drill does) delivers to the real sink (grafana/alert-sink/sink.py) over
loopback HTTP and SMTP: every receiver gets its notification with the runbook, dashboard and
Grafana Explore links, and the inhibitions mute what they should. Alerts are posted to
Alertmanager's API the way Prometheus posts them."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.alerting.amconfig import alert, render_module
from tests.alerting.rules import ROOT
from tests.stack.conftest import Process, free_port, require_tool, wait_for

GRAFANA = "http://grafana.test:3000"
LOGQL = '{service_name="trawl-worker", deployment_environment_name="prod"} | detected_level="error"'
TRACEQL = '{ resource.service.name = "trawl-worker" && status = error }'


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The sink and an Alertmanager on free loopback ports; stopped at the end."""
    am_exe = require_tool("prometheus-alertmanager")
    http_port, smtp_port, am_port = free_port(), free_port(), free_port()
    started: list[Process] = []
    sink = Process(
        [
            sys.executable,
            str(ROOT / "grafana/alert-sink/sink.py"),
            "--http-port",
            str(http_port),
            "--smtp-port",
            str(smtp_port),
        ],
        tmp_path / "sink.log",
    )
    started.append(sink)
    render = render_module()
    out = tmp_path / "am"
    render.write(
        render.render(
            {"GRAFANA_ROOT_URL": GRAFANA},
            mount_dir=str(out),
            sink_http=f"http://127.0.0.1:{http_port}",
            sink_smtp=f"127.0.0.1:{smtp_port}",
        ),
        out,
    )
    am = Process(
        [
            am_exe,
            f"--config.file={out / 'alertmanager.yml'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
            f"--storage.path={tmp_path / 'am-data'}",
        ],
        tmp_path / "am.log",
    )
    started.append(am)
    urls = {"sink": f"http://127.0.0.1:{http_port}", "am": f"http://127.0.0.1:{am_port}"}
    try:
        wait_for(lambda: httpx.get(urls["sink"] + "/healthz").status_code == 200, "sink up")
        wait_for(lambda: httpx.get(urls["am"] + "/-/ready").status_code == 200, "am ready")
        yield urls
    finally:
        for p in started:
            p.stop()
        print(am.output())


def _notifications(sink: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(sink + "/notifications").json()
    return items


def _find(
    items: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    return next((i for i in items if predicate(i)), None)


def _slack(items: list[dict[str, Any]], receiver: str, alertname: str) -> dict[str, Any] | None:
    return _find(
        items,
        lambda i: (
            i["path"] == f"/slack/{receiver}"
            and alertname in i["payload"]["attachments"][0]["title"]
        ),
    )


def _explore(url: str) -> dict[str, Any]:
    pane: dict[str, Any] = next(
        iter(json.loads(parse_qs(urlsplit(url).query)["panes"][0]).values())
    )
    return pane


@pytest.mark.slow
def test_every_receiver_gets_its_notification_with_links_and_inhibitions_apply(
    stack: dict[str, str],
) -> None:
    env = {"deployment_environment_name": "prod"}
    evidence = {"logql": LOGQL, "traceql": TRACEQL}
    disk = {"instance": "node-exporter:9100", "mountpoint": "/", "device": "/dev/vda1"}
    alerts = [
        # one per route
        alert(
            "TrawlQueueStuck",
            "critical",
            labels={**env, "service_name": "trawl-worker"},
            annotations=evidence,
        ),
        alert("TrawlTasksReaped", "warning", labels={**env, "service_name": "trawl-worker"}),
        alert(
            "TrawlNewErrorGroup",
            "ticket",
            labels={**env, "service_name": "trawl-api", "trawl_error_group": "3f2a9c1b7d4e5f60"},
            annotations={"error_group": "3f2a9c1b7d4e5f60"},
        ),
        alert("Watchdog", "none", annotations={"dashboard_url": "/d/trawl-alerts?orgId=1"}),
        alert(
            "TrawlEscalation",
            "critical",
            labels={**env, "escalated_alertname": "TrawlApiSlow", "service_name": "trawl-api"},
            annotations={"escalated_runbook_url": "docs/monitoring/runbooks/TrawlApiSlow.md"},
        ),
        # a critical alert mutes its warning twin
        alert("HostDiskFillingUp", "critical", labels=disk),
        alert("HostDiskFillingUp", "warning", labels=disk),
        # a silent worker service mutes what is computed from its data, in its environment only
        alert(
            "TrawlServiceSilent",
            "critical",
            labels={**env, "service_name": "trawl-worker", "data_source": "trawl-worker"},
        ),
        alert(
            "TrawlQueueBacklogGrowing",
            "warning",
            labels={**env, "service_name": "trawl-worker", "data_source": "trawl-worker"},
        ),
        alert(
            "TrawlWebhookDeadLetters",
            "warning",
            labels={
                "deployment_environment_name": "staging",
                "service_name": "trawl-worker",
                "data_source": "trawl-worker",
            },
        ),
        # a dead collector mutes the silence of the services behind it
        alert("OtelCollectorDown", "critical", labels={"instance": "otel-collector:8888"}),
        alert(
            "TrawlServiceSilent",
            "critical",
            labels={
                "deployment_environment_name": "staging",
                "service_name": "trawl-api",
                "data_source": "trawl-api",
            },
        ),
    ]
    posted = httpx.post(stack["am"] + "/api/v2/alerts", json=alerts, timeout=10)
    assert posted.status_code == 200, posted.text

    def delivered() -> list[dict[str, Any]] | None:
        items = _notifications(stack["sink"])
        wanted = [
            _find(items, lambda i: i["channel"] == "pagerduty"),
            _slack(items, "slack-critical", "TrawlQueueStuck"),
            _slack(items, "slack-warning", "TrawlTasksReaped"),
            _slack(items, "escalation", "TrawlApiSlow"),
            _find(items, lambda i: i["path"] == "/deadmansswitch"),
            _find(
                items,
                lambda i: i["channel"] == "email" and "tickets@trawl.local" in i["payload"]["to"],
            ),
            _find(
                items,
                lambda i: i["channel"] == "email" and "secondary@trawl.local" in i["payload"]["to"],
            ),
            _slack(items, "slack-warning", "TrawlWebhookDeadLetters"),
        ]
        return items if all(wanted) else None

    # the ticket route waits longest: group_wait 1m
    items = wait_for(delivered, "a notification on every receiver", timeout=120)

    # ---- PagerDuty: one event per critical group, with the links
    pd = [i["payload"] for i in items if i["channel"] == "pagerduty"]
    stuck = next(p for p in pd if p["payload"]["summary"].endswith("TrawlQueueStuck summary"))
    assert stuck["routing_key"] == "local-sink"
    assert stuck["event_action"] == "trigger"
    assert stuck["payload"]["severity"] == "critical"
    assert stuck["payload"]["summary"] == "[prod] TrawlQueueStuck summary"
    links = {link["text"]: link["href"] for link in stuck["links"]}
    assert links["Runbook"] == "docs/monitoring/runbooks/TrawlQueueStuck.md"
    assert links["Dashboard"].startswith(GRAFANA + "/d/trawl-queue?var-env=prod&from=")
    assert _explore(links["Logs (Grafana Explore)"])["queries"][0]["expr"] == LOGQL
    assert _explore(links["Failing traces (Grafana Explore)"])["queries"][0]["query"] == TRACEQL

    # ---- Slack, critical channel: the same alert, links in mrkdwn
    slack = _slack(items, "slack-critical", "TrawlQueueStuck")
    assert slack is not None
    attachment = slack["payload"]["attachments"][0]
    assert slack["payload"]["channel"] == "#trawl-incidents"
    assert attachment["title"] == "[FIRING:1] TrawlQueueStuck · prod · trawl-worker"
    assert attachment["title_link"].startswith(GRAFANA + "/d/trawl-queue?")
    assert attachment["color"] == "danger"
    mrkdwn = dict(
        (label, url) for url, label in re.findall(r"<([^|>]+)\|([^>]+)>", attachment["text"])
    )
    assert _explore(mrkdwn["Logs"])["range"]["to"] == "now"
    assert "Runbook: `docs/monitoring/runbooks/TrawlQueueStuck.md`" in attachment["text"]

    # ---- the ticket: an e-mail to the ticket system, with the error group's evidence
    ticket = next(
        i["payload"] for i in items if "tickets@trawl.local" in i["payload"].get("to", [])
    )
    assert ticket["subject"].startswith("[Trawl ticket] [FIRING:1] TrawlNewErrorGroup · prod")
    assert "<code>3f2a9c1b7d4e5f60</code>" in ticket["html"]
    assert (
        "span.trawl.error.group" in ticket["text"]
    )  # the group's traces link, url-encoded? no: text
    # ---- escalation: the secondary's channel and mailbox
    escalation = _slack(items, "escalation", "TrawlApiSlow")
    assert escalation is not None
    esc_text = escalation["payload"]["attachments"][0]["text"]
    assert 'escalated_alertname="TrawlApiSlow"' in esc_text
    assert "docs/monitoring/runbooks/TrawlApiSlow.md" in esc_text
    # ---- the dead-man's switch heartbeat
    heartbeat = next(i["payload"] for i in items if i["path"] == "/deadmansswitch")
    assert [a["labels"]["alertname"] for a in heartbeat["alerts"]] == ["Watchdog"]

    # ---- inhibitions, as Alertmanager reports them
    state = httpx.get(stack["am"] + "/api/v2/alerts").json()

    def inhibited(name: str, **labels: str) -> bool:
        match = [
            a
            for a in state
            if a["labels"]["alertname"] == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]
        assert len(match) == 1, (name, labels, match)
        return bool(match[0]["status"]["inhibitedBy"])

    assert inhibited("HostDiskFillingUp", severity="warning")
    assert not inhibited("HostDiskFillingUp", severity="critical")
    assert inhibited("TrawlQueueBacklogGrowing")
    assert not inhibited("TrawlWebhookDeadLetters")  # another environment
    assert inhibited("TrawlServiceSilent", deployment_environment_name="staging")
    assert not inhibited("TrawlQueueStuck")
    # and nothing was sent for the muted ones (their group_wait, 30 s, is long past)
    everything = json.dumps(_notifications(stack["sink"]))
    assert "TrawlQueueBacklogGrowing" not in everything
    warnings = [
        i
        for i in _notifications(stack["sink"])
        if i["path"] == "/slack/slack-warning" and "HostDiskFillingUp" in str(i["payload"])
    ]
    assert warnings == []
    disk_pages = [
        i for i in items if i["channel"] == "pagerduty" and "HostDiskFillingUp" in str(i["payload"])
    ]
    assert disk_pages, "the critical twin itself pages"


def test_the_sink_answers_like_the_services_it_stands_in_for(tmp_path: Path) -> None:
    """PagerDuty gets 202 and a dedup key, Slack "ok", anything else 200; GET lists them."""
    port, smtp = free_port(), free_port()
    p = Process(
        [
            sys.executable,
            str(ROOT / "grafana/alert-sink/sink.py"),
            "--http-port",
            str(port),
            "--smtp-port",
            str(smtp),
        ],
        tmp_path / "sink.log",
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(base + "/healthz").status_code == 200, "sink up")
        r = httpx.post(base + "/pagerduty/v2/enqueue", json={"dedup_key": "k1"})
        assert r.status_code == 202 and r.json()["dedup_key"] == "k1"
        r = httpx.post(base + "/slack/slack-warning", json={"attachments": [{"title": "t"}]})
        assert r.status_code == 200 and r.text == "ok"
        assert httpx.post(base + "/deadmansswitch", json={"alerts": []}).status_code == 200
        items = httpx.get(base + "/notifications").json()
        assert [i["channel"] for i in items] == ["pagerduty", "slack", "webhook"]
        assert (
            httpx.get(base + f"/notifications?after={items[1]['id']}").json()[0]["channel"]
            == "webhook"
        )
        assert httpx.delete(base + "/notifications").status_code == 204
        assert httpx.get(base + "/notifications").json() == []
        logged = [json.loads(line) for line in p.output().splitlines() if line.startswith("{")]
        assert [line.get("sink.channel") for line in logged[1:]] == [
            "pagerduty",
            "slack",
            "webhook",
        ]
    finally:
        p.stop()
