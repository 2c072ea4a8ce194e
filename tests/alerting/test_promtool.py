"""Prometheus 2.42's own tools on the rules: `promtool check rules` on every rule file,
`promtool test rules` on every unit-test file (grafana/prometheus/tests/*.test.yml, run from
their directory as the before-stop hook does), and the coverage of those tests: every alert has
a case where it fires and one where it does not. Also: the SLO rule files are what their spec
generates."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.alerting.rules import PROM_TESTS, ROOT, prometheus_rule_files, prometheus_rules
from tests.stack.conftest import require_tool

TEST_FILES = sorted(PROM_TESTS.glob("*.test.yml"))


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    files = [str(p) for p in prometheus_rule_files()]
    out = subprocess.run(
        [promtool, "check", "rules", *files], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(files)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file: Path) -> None:
    promtool = require_tool("promtool")
    out = subprocess.run(
        [promtool, "test", "rules", test_file.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=test_file.parent,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def _cases() -> dict[str, dict[str, int]]:
    """alert name -> {"fires": n, "silent": n} over every unit-test file."""
    cases: dict[str, dict[str, int]] = defaultdict(lambda: {"fires": 0, "silent": 0})
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "fires" if case.get("exp_alerts") else "silent"
                cases[case["alertname"]][kind] += 1
    return cases


# Watchdog is `vector(1)`: it cannot not fire (its tests assert it fires at any time)
ALWAYS_FIRING = {"Watchdog"}


def test_every_prometheus_alert_has_a_firing_and_a_silent_case() -> None:
    cases = _cases()
    names = {r.name for r in prometheus_rules() if r.is_alert}
    missing = {
        name: dict(cases[name])
        for name in sorted(names)
        if not cases[name]["fires"] or not (cases[name]["silent"] or name in ALWAYS_FIRING)
    }
    assert not missing, f"alerts without a firing and a non-firing promtool case: {missing}"


def test_unit_tests_load_the_real_rule_files() -> None:
    for path in TEST_FILES:
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]:
            target = (path.parent / rule_file).resolve()
            assert target.parent == (ROOT / "grafana/prometheus/rules").resolve(), rule_file
            assert target.is_file(), rule_file


def test_slo_rule_files_are_generated_from_their_spec() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "grafana/prometheus/slo/generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
