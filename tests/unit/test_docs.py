"""Documentation that must stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = []
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None) or [f"TRAWL_{name.upper()}"]
        if not any(f"`{alias}`" in text for alias in aliases):
            missing.append(name)
    assert missing == []
