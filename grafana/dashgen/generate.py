"""Render every dashboard and the dashboard rules to the files Grafana and Prometheus load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import rules
from .boards import BOARDS

_GRAFANA = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = _GRAFANA / "dashboards"
RULES_FILE = _GRAFANA / "prometheus" / "rules" / "dashboards.yml"


def build_all() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model, in display order."""
    out: dict[str, dict[str, Any]] = {}
    for make in BOARDS:
        model = make().build()
        if model["uid"] in out:
            raise ValueError(f"two dashboards have uid {model['uid']}")
        out[model["uid"]] = model
    return out


def render_all() -> dict[Path, str]:
    """Every generated file -> its exact content."""
    files = {
        DASHBOARDS_DIR / f"{uid}.json": json.dumps(model, indent=2, sort_keys=True) + "\n"
        for uid, model in build_all().items()
    }
    files[RULES_FILE] = rules.render()
    return files


def write_all() -> list[Path]:
    """Write the generated files; remove dashboards JSON the code no longer makes. Returns
    the files that changed."""
    files = render_all()
    changed = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
    for stale in sorted(DASHBOARDS_DIR.glob("*.json")):
        if stale not in files:
            stale.unlink()
            changed.append(stale)
    return changed


def stale_files() -> list[Path]:
    """Generated files whose committed content differs from the code's (or that are extra)."""
    files = render_all()
    out = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    out += [p for p in sorted(DASHBOARDS_DIR.glob("*.json")) if p not in files]
    return out
