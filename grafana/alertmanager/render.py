"""Write the Alertmanager configuration to run: receivers from the environment, else the local sink.

    python grafana/alertmanager/render.py OUT_DIR [--env-file var/stack.env]
        [--mount-dir /etc/alertmanager] [--sink-http URL] [--sink-smtp HOST:PORT]

OUT_DIR gets `alertmanager.yml`, `templates/*.tmpl` and `secrets/*` (mode 600). `--mount-dir` is
where Alertmanager sees OUT_DIR (compose mounts var/alertmanager at /etc/alertmanager; a process
on the host passes OUT_DIR itself). The committed grafana/alertmanager/alertmanager.yml routes
every notification to the local sink (compose service `alert-sink`); each receiver switches to
its real endpoint when its variable is set, in the environment or as `<NAME>_FILE` (a file that
holds the value):

    ALERTMANAGER_PAGERDUTY_ROUTING_KEY    PagerDuty Events API v2 routing key
    ALERTMANAGER_PAGERDUTY_URL            default https://events.pagerduty.com/v2/enqueue
    ALERTMANAGER_SLACK_WEBHOOK_URL        Slack incoming webhook, for every Slack receiver...
    ALERTMANAGER_SLACK_CRITICAL_WEBHOOK_URL / _WARNING_ / _ESCALATION_   ...or one per channel
    ALERTMANAGER_SMTP_SMARTHOST           host:port of the mail relay (STARTTLS required)
    ALERTMANAGER_SMTP_FROM, ALERTMANAGER_SMTP_USERNAME, ALERTMANAGER_SMTP_PASSWORD
    ALERTMANAGER_EMAIL_TO                 info e-mail recipients
    ALERTMANAGER_TICKETS_EMAIL_TO         the ticket system's inbound address
    ALERTMANAGER_ESCALATION_EMAIL_TO      the secondary on-call
    ALERTMANAGER_DEADMANSSWITCH_URL       the dead-man's switch ping URL
    GRAFANA_ROOT_URL                      links in notifications (default http://localhost:3000)
    TRAWL_RUNBOOK_BASE_URL                e.g. https://github.com/you/trawl/blob/main/ : runbooks
                                          become links (unset: their repository path is shown)

`--sink-http` / `--sink-smtp` move the sink itself (a drill's loopback servers). Nothing but
addresses, recipients, secrets and link bases changes: routes, timers, inhibitions and templates
are the committed ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "alertmanager.yml"
TEMPLATES = HERE / "templates"
SINK_HTTP = "http://alert-sink:9095"
SINK_SMTP = "alert-sink:2525"
MOUNT = "/etc/alertmanager"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
SLACK_RECEIVERS = {
    "slack-critical": "CRITICAL",
    "slack-warning": "WARNING",
    "escalation": "ESCALATION",
}
RECIPIENTS = {
    "email-info": "ALERTMANAGER_EMAIL_TO",
    "tickets": "ALERTMANAGER_TICKETS_EMAIL_TO",
    "escalation": "ALERTMANAGER_ESCALATION_EMAIL_TO",
}


class RenderError(ValueError):
    """A setting that cannot work (e.g. a *_FILE that does not exist)."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (var/stack.env); blank lines and comments ignored."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def setting(env: Mapping[str, str], name: str) -> str | None:
    """``name`` from the environment, or the content of the file named by ``name``_FILE."""
    if env.get(name):
        return env[name].strip()
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise RenderError(f"{name}_FILE={path}: {exc.strerror}") from exc
    return None


@dataclass
class Rendered:
    config: dict[str, Any]
    secrets: dict[str, str]
    links: str
    channels: dict[str, str] = field(default_factory=dict)  # channel -> "sink" | "configured"


def links_template(grafana_url: str, runbook_base: str | None) -> str:
    lines = [
        "{{/* Base URLs of the links in notifications. Written by grafana/alertmanager/render.py"
        " from\n     GRAFANA_ROOT_URL and TRAWL_RUNBOOK_BASE_URL; this is its output with neither"
        " set. */}}",
        f'{{{{ define "trawl.grafana_url" }}}}{grafana_url.rstrip("/")}{{{{ end }}}}',
    ]
    if runbook_base:
        base = runbook_base if runbook_base.endswith("/") else runbook_base + "/"
        lines += [
            f'{{{{ define "trawl.runbook.url" }}}}{base}{{{{ . }}}}{{{{ end }}}}',
            f'{{{{ define "trawl.runbook.slack" }}}}<{base}{{{{ . }}}}|Runbook>{{{{ end }}}}',
            f'{{{{ define "trawl.runbook.html" }}}}<a href="{base}{{{{ . }}}}">Runbook</a>'
            "{{ end }}",
        ]
    else:
        lines += [
            '{{ define "trawl.runbook.url" }}{{ . }}{{ end }}',
            '{{ define "trawl.runbook.slack" }}Runbook: `{{ . }}`{{ end }}',
            '{{ define "trawl.runbook.html" }}Runbook: <code>{{ . }}</code>{{ end }}',
        ]
    return "\n".join(lines) + "\n"


def _receiver(config: dict[str, Any], name: str) -> dict[str, Any]:
    for receiver in config["receivers"]:
        if receiver["name"] == name:
            return receiver  # type: ignore[no-any-return]
    raise RenderError(f"receiver {name!r} is not in {CONFIG.name}")


def _pagerduty(config: dict[str, Any], env: Mapping[str, str], r: Rendered) -> None:
    key = setting(env, "ALERTMANAGER_PAGERDUTY_ROUTING_KEY")
    if key:
        config["global"]["pagerduty_url"] = setting(env, "ALERTMANAGER_PAGERDUTY_URL") or (
            PAGERDUTY_URL
        )
    r.secrets["pagerduty-routing-key"] = key or "local-sink"
    r.channels["pagerduty"] = "configured" if key else "sink"


def _slack(env: Mapping[str, str], sink_http: str, r: Rendered) -> None:
    shared = setting(env, "ALERTMANAGER_SLACK_WEBHOOK_URL")
    for receiver, suffix in SLACK_RECEIVERS.items():
        url = setting(env, f"ALERTMANAGER_SLACK_{suffix}_WEBHOOK_URL") or shared
        r.secrets[f"slack-{suffix.lower()}-webhook-url"] = url or f"{sink_http}/slack/{receiver}"
        r.channels[f"slack ({receiver})"] = "configured" if url else "sink"


def _email(config: dict[str, Any], env: Mapping[str, str], r: Rendered) -> None:
    glob = config["global"]
    host = setting(env, "ALERTMANAGER_SMTP_SMARTHOST")
    if host:
        glob["smtp_smarthost"] = host
        require_tls = (env.get("ALERTMANAGER_SMTP_REQUIRE_TLS") or "true").lower()
        glob["smtp_require_tls"] = require_tls not in ("false", "0", "no")
        glob["smtp_from"] = setting(env, "ALERTMANAGER_SMTP_FROM") or glob["smtp_from"]
        user = setting(env, "ALERTMANAGER_SMTP_USERNAME")
        password = setting(env, "ALERTMANAGER_SMTP_PASSWORD")
        if user:
            glob["smtp_auth_username"] = user
        if password:
            r.secrets["smtp-password"] = password
            glob["smtp_auth_password_file"] = f"{MOUNT}/secrets/smtp-password"
    r.channels["email"] = "configured" if host else "sink"
    for receiver, variable in RECIPIENTS.items():
        to = setting(env, variable)
        if to:
            for email in _receiver(config, receiver).get("email_configs", []):
                email["to"] = to


def _deadmansswitch(config: dict[str, Any], env: Mapping[str, str], r: Rendered) -> None:
    url = setting(env, "ALERTMANAGER_DEADMANSSWITCH_URL")
    if url:
        # Alertmanager 0.25 has no url_file for webhooks: the URL is in the rendered file (0600)
        _receiver(config, "deadmansswitch")["webhook_configs"][0]["url"] = url
    r.channels["dead-man's switch"] = "configured" if url else "sink"


def _mount(value: Any, mount_dir: str) -> Any:
    """Point every /etc/alertmanager/... path at where Alertmanager sees the output dir."""
    if isinstance(value, dict):
        return {k: _mount(v, mount_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_mount(v, mount_dir) for v in value]
    if isinstance(value, str) and value.startswith(MOUNT + "/"):
        return mount_dir.rstrip("/") + value[len(MOUNT) :]
    return value


def render(
    env: Mapping[str, str],
    *,
    mount_dir: str = MOUNT,
    sink_http: str = SINK_HTTP,
    sink_smtp: str = SINK_SMTP,
) -> Rendered:
    text = CONFIG.read_text().replace(SINK_HTTP, sink_http.rstrip("/"))
    text = text.replace(SINK_SMTP, sink_smtp)
    config: dict[str, Any] = yaml.safe_load(text)
    r = Rendered(
        config=config,
        secrets={},
        links=links_template(
            setting(env, "GRAFANA_ROOT_URL") or "http://localhost:3000",
            setting(env, "TRAWL_RUNBOOK_BASE_URL"),
        ),
    )
    _pagerduty(config, env, r)
    _slack(env, sink_http.rstrip("/"), r)
    _email(config, env, r)
    _deadmansswitch(config, env, r)
    r.config = _mount(config, mount_dir)
    return r


def write(r: Rendered, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    secrets = out / "secrets"
    secrets.mkdir(exist_ok=True)
    secrets.chmod(0o700)
    for name, value in r.secrets.items():
        path = secrets / name
        path.write_text(value + "\n")
        path.chmod(0o600)
    templates = out / "templates"
    templates.mkdir(exist_ok=True)
    for tmpl in TEMPLATES.glob("*.tmpl"):
        if tmpl.name != "links.tmpl":
            shutil.copyfile(tmpl, templates / tmpl.name)
    (templates / "links.tmpl").write_text(r.links)
    header = f"# Rendered by grafana/alertmanager/render.py from {CONFIG.name}: do not edit.\n"
    config = out / "alertmanager.yml"
    config.write_text(header + yaml.safe_dump(r.config, sort_keys=False, width=10_000))
    config.chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--env-file", type=Path, help="KEY=VALUE file read under the environment")
    parser.add_argument("--mount-dir", default=MOUNT, help="where Alertmanager sees OUT")
    parser.add_argument("--sink-http", default=SINK_HTTP, help="base URL of the HTTP sink")
    parser.add_argument("--sink-smtp", default=SINK_SMTP, help="host:port of the SMTP sink")
    args = parser.parse_args(argv)
    env = {**(read_env_file(args.env_file) if args.env_file else {}), **os.environ}
    try:
        rendered = render(
            env, mount_dir=args.mount_dir, sink_http=args.sink_http, sink_smtp=args.sink_smtp
        )
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    write(rendered, args.out)
    summary = ", ".join(f"{k}: {v}" for k, v in rendered.channels.items())
    print(f"Alertmanager config written to {args.out} ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
