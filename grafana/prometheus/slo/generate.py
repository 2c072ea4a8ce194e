"""Generate the SLO rule files (grafana/prometheus/rules/slo-<name>.yml) from slos.yml.

    python grafana/prometheus/slo/generate.py           # write the rule files
    python grafana/prometheus/slo/generate.py --check   # exit 1 if a committed file is stale

One SLO gives two rule groups. The fast group (every 15 s) holds what the fast-burn page needs,
so that a hard outage is not delayed by the evaluation of the long windows: the objective, the
5m and 1h ratios, the 5m event count and the 14.4x page. The slow group (every 1 m) holds the
30m, 2h, 6h, 1d and 3d ratios, their guards, the 6x page and the two ticket tiers. Recording
rules come before the alerts that read them, in the same group, so an alert never sees a
ratio one evaluation old. docs/monitoring/slos.md explains the numbers.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SPEC = HERE / "slos.yml"
RULES = HERE.parent / "rules"
ENV = "{{ $labels.deployment_environment_name }}"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
FAST_WINDOWS = ("5m", "1h")
GUARD_WINDOWS = {"fast": ("5m",), "slow": ("30m", "2h", "6h")}


@dataclass(frozen=True)
class Tier:
    """One burn-rate tier: both windows must burn faster than ``factor``, and the short window
    must hold at least ``min_bad`` bad events (the minimum-traffic guard)."""

    group: str
    severity: str
    factor: float
    long: str
    short: str
    min_bad: int
    budget: str  # the share of the 30-day budget this tier lets burn before it fires


TIERS = (
    Tier("fast", "critical", 14.4, "1h", "5m", 5, "2 % of the 30-day budget in 1 hour"),
    Tier("slow", "critical", 6, "6h", "30m", 10, "5 % of the 30-day budget in 6 hours"),
    Tier("slow", "ticket", 3, "1d", "2h", 10, "10 % of the 30-day budget in 1 day"),
    Tier("slow", "ticket", 1, "3d", "6h", 20, "10 % of the 30-day budget in 3 days"),
)


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so the rule files read like hand-written ones."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _fmt(number: float) -> str:
    return f"{number:g}"


def ratio_rule(slo: dict[str, Any], window: str) -> dict[str, Any]:
    error = slo["error"].replace("$window", window)
    total = slo["total"].replace("$window", window)
    # `or 0 * total`: an environment with traffic but no bad series yet has a ratio of 0, not
    # no ratio at all (a 5xx series only exists after the first 5xx)
    expr = f"(\n  {error}\n  or\n  0 * {total}\n)\n/\n{total}\n"
    record = f"slo:sli_error:ratio_rate{window}"
    return {"record": record, "expr": expr, "labels": {"slo": slo["name"]}}


def events_rule(slo: dict[str, Any], window: str) -> dict[str, Any]:
    total = slo["total"].replace("$window", window).replace("(rate(", "(increase(", 1)
    return {
        "record": f"slo:sli_events:increase{window}",
        "expr": total + "\n",
        "labels": {"slo": slo["name"]},
    }


def _burn(slo: str, window: str) -> str:
    return (
        f'slo:sli_error:ratio_rate{window}{{slo="{slo}"}}\n'
        f'  / on (slo) group_left () (1 - slo:objective:ratio{{slo="{slo}"}})'
    )


def alert_rule(slo: dict[str, Any], tier: Tier) -> dict[str, Any]:
    name = slo["name"]
    expr = (
        f"(\n  {_burn(name, tier.long)}\n  > {_fmt(tier.factor)}\n)\n"
        f"and on (slo, deployment_environment_name)\n"
        f"(\n  {_burn(name, tier.short)}\n  > {_fmt(tier.factor)}\n)\n"
        f"and on (slo, deployment_environment_name)\n"
        f'(\n  slo:sli_error:ratio_rate{tier.short}{{slo="{name}"}}\n'
        f"  * on (slo, deployment_environment_name) slo:sli_events:increase{tier.short}"
        f'{{slo="{name}"}}\n  >= {tier.min_bad}\n)\n'
    )
    sel = f"slo='{name}',deployment_environment_name='%s'"
    long_ratio = (
        f'{{{{ with printf "slo:sli_error:ratio_rate{tier.long}{{{sel}}}" '
        f"$labels.deployment_environment_name | query }}}}"
        "{{ . | first | value | humanizePercentage }}{{ else }}unknown{{ end }}"
    )
    bad_short = (
        f'{{{{ with printf "slo:sli_error:ratio_rate{tier.short}{{{sel}}} * on (slo, '
        f'deployment_environment_name) slo:sli_events:increase{tier.short}{{{sel}}}" '
        f"$labels.deployment_environment_name $labels.deployment_environment_name | query }}}}"
        '{{ . | first | value | printf "%.0f" }}{{ else }}unknown{{ end }}'
    )
    exhausted = (
        '{{ with printf "vector(2592000 / %f)" $value | query }}'
        "{{ . | first | value | humanizeDuration }}{{ else }}unknown{{ end }}"
    )
    budget = _fmt(round((1 - slo["objective"]) * 100, 4))
    kind = "page" if tier.severity == "critical" else "ticket"
    description = (
        f"{long_ratio} of {slo['events']} in {ENV} {slo['bad']} over the last {tier.long} "
        f"(objective {_fmt(slo['objective'] * 100)} %: {budget} % may fail). The error budget "
        f'burns {{{{ $value | printf "%.1f" }}}}x faster than the 30-day rate, over both '
        f"{tier.long} and {tier.short} ({bad_short} bad events in the last {tier.short}); at "
        f"this rate the whole 30-day budget is gone in {exhausted}. This {kind} fires at "
        f"{_fmt(tier.factor)}x: {tier.budget}."
    )
    dashboard = f"/d/{slo['dashboard']}?var-env={ENV}&var-service={slo['service']}"
    return {
        "alert": slo["alert"],
        "expr": expr,
        "labels": {
            "severity": tier.severity,
            "service_name": slo["service"],
            "data_source": slo["data_source"],
            "long_window": tier.long,
            "short_window": tier.short,
        },
        "annotations": {
            "summary": (
                f"{slo['title'][0].upper()}{slo['title'][1:]} SLO of {ENV}: error budget burning "
                f'{{{{ $value | printf "%.1f" }}}}x too fast ({tier.long}/{tier.short} '
                f"windows, {kind})"
            ),
            "description": description,
            "runbook_url": f"docs/monitoring/runbooks/{slo['alert']}.md",
            "dashboard_url": dashboard,
            "logql": slo["logql"].replace("$env", ENV),
            "traceql": slo["traceql"],
        },
    }


def rule_file(slo: dict[str, Any]) -> dict[str, Any]:
    name = slo["name"]
    objective = f"vector({slo['objective']})"
    fast: list[dict[str, Any]] = [
        {"record": "slo:objective:ratio", "expr": objective, "labels": {"slo": name}}
    ]
    fast += [ratio_rule(slo, w) for w in FAST_WINDOWS]
    fast += [events_rule(slo, w) for w in GUARD_WINDOWS["fast"]]
    slow = [ratio_rule(slo, w) for w in WINDOWS if w not in FAST_WINDOWS]
    slow += [events_rule(slo, w) for w in GUARD_WINDOWS["slow"]]
    for tier in TIERS:
        (fast if tier.group == "fast" else slow).append(alert_rule(slo, tier))
    return {
        "groups": [
            {"name": f"slo-{name}-fast", "interval": "15s", "rules": fast},
            {"name": f"slo-{name}-slow", "interval": "1m", "rules": slow},
        ]
    }


def render(slo: dict[str, Any]) -> str:
    header = (
        f"# Generated by grafana/prometheus/slo/generate.py from slos.yml: do not edit.\n"
        f"# SLO {slo['name']}: {_fmt(slo['objective'] * 100)} % of {slo['events']} over 30 days;"
        f" bad = {slo['bad']}.\n# Rationale and alert maths: docs/monitoring/slos.md.\n"
    )
    body = yaml.dump(rule_file(slo), Dumper=_Dumper, sort_keys=False, width=10_000)
    return header + body


def outputs() -> dict[Path, str]:
    spec = yaml.safe_load(SPEC.read_text())
    return {RULES / f"slo-{slo['name']}.yml": render(slo) for slo in spec["slos"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail if a rule file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale SLO rule files (run {Path(__file__).name}): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
