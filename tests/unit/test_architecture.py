"""The unit-of-work rule of docs/architecture.md, checked on the source: routes and
repositories never commit (the import rules are import-linter contracts, run by make lint);
and the test layout: every folder of tests runs."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEVER_COMMIT = sorted(
    [*(ROOT / "app" / "api").rglob("*.py"), *(ROOT / "app").glob("*/repository.py")]
)


def _commits(path: Path) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("commit", "begin")
    ]


@pytest.mark.parametrize("path", NEVER_COMMIT, ids=lambda p: str(p.relative_to(ROOT)))
def test_routes_and_repositories_never_commit(path: Path) -> None:
    assert _commits(path) == []


def test_the_rule_sees_a_commit() -> None:
    services = [p for p in (ROOT / "app").glob("*/service.py") if _commits(p)]
    assert len(services) >= 4  # auth, error_group, job, proxy, webhook services do commit
    assert len(NEVER_COMMIT) >= 10


def test_every_test_folder_is_collected() -> None:
    """``pytest`` (``make test``) runs the folders listed in ``testpaths``, in that order (unit
    first): a new folder of tests must be listed there, or it would silently not run."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["pytest"]["ini_options"]["testpaths"])
    folders = {
        f"tests/{d.name}"
        for d in (ROOT / "tests").iterdir()
        if d.is_dir() and any(d.rglob("test_*.py"))
    }
    assert folders == listed
