"""Request bodies carry no NUL character (app/validation.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.auth.schemas import ApiKeyCreate
from app.validation import has_nul


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("plain", False),
        ("a\x00b", True),
        ({"k": ["x", {"deep": "\x00"}]}, True),
        ({"\x00key": 1}, True),
        ([1, 2.5, None, True, "ok"], False),
    ],
)
def test_has_nul_looks_everywhere(value: object, found: bool) -> None:
    assert has_nul(value) is found


def test_a_body_with_nul_does_not_validate() -> None:
    with pytest.raises(ValidationError, match="NUL character"):
        ApiKeyCreate.model_validate({"name": "k\x00"})
    assert ApiKeyCreate.model_validate({"name": "k"}).name == "k"
