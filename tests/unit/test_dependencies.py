"""constraints.txt pins every package a fresh ``make install`` installs, at the version this
environment runs: what CI tested is what a new machine and the Docker image get."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
TOOLING = {"pip", "setuptools", "wheel"}


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_name(name)] = version
    return pins


def _closure(root: str, extras: set[str]) -> dict[str, str]:
    """Every distribution ``root[extras]`` needs, transitively, with its installed version."""
    seen: dict[str, str] = {}
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        dist = metadata.distribution(name)
        for raw in dist.requires or []:
            req = Requirement(raw)
            active = not req.marker or any(
                req.marker.evaluate({"extra": e}) for e in (wanted or {""})
            )
            key = _name(req.name)
            if active and key not in seen:
                seen[key] = metadata.version(req.name)
                todo.append((req.name, set(req.extras)))
    return seen


def test_constraints_pin_every_installed_dependency_at_its_version() -> None:
    pins = _pins()
    needed = _closure("trawl", {"dev", "sentry"})
    assert {"schemathesis", "import-linter", "promql-parser", "sentry-sdk"} <= needed.keys()
    missing = sorted(n for n in needed.keys() - pins.keys() if n not in TOOLING)
    assert missing == [], "not pinned: run make lock"
    differ = {n: (v, pins[n]) for n, v in needed.items() if n in pins and pins[n] != v}
    assert differ == {}, "installed != pinned: make install, or make lock"
    assert all(v for v in pins.values()), "every line is name==version"
