"""Extraction (app/fetch/extract.py): what each output gives, on a page with nested markup,
comments and entities; rules are translated once and a bad selector is a clear error."""

from __future__ import annotations

import pytest

from app.fetch.extract import ExtractionError, FieldRule, extract

PAGE = (
    "<html><body>"
    "<div class='it'><h2>First <b>bold</b><!-- hidden --> tail</h2>"
    "<a href='/p1'>one &amp; two</a><p class='d'> d1 </p></div>"
    "<div class='it'><h2>Second</h2><a href='/p2'>three</a><p class='d'>d2</p></div>"
    "</body></html>"
)


def test_outputs() -> None:
    rules = {
        "titles": FieldRule(".it h2", many=True),
        "links": FieldRule(".it a", output="attribute", attribute="href", many=True),
        "first_html": FieldRule(".d", output="html"),
        "own_text": FieldRule(".d::text"),
        "xpath": FieldRule("//a/text()", type="xpath", many=True),
        "missing": FieldRule(".nope"),
        "missing_many": FieldRule(".nope", many=True),
    }
    assert extract(PAGE, rules, "http://site.test/") == {
        "titles": ["First bold tail", "Second"],  # descendant text joined, comments left out
        "links": ["/p1", "/p2"],
        "first_html": '<p class="d"> d1 </p>',
        "own_text": "d1",
        "xpath": ["one & two", "three"],
        "missing": None,
        "missing_many": [],
    }


def test_a_rule_is_translated_once() -> None:
    rule = FieldRule(".it h2")
    assert rule.xpath() is FieldRule(".it h2").xpath()  # the cached translation


def test_an_invalid_selector_is_a_clear_error() -> None:
    with pytest.raises(ExtractionError, match="field 'bad'"):
        extract(PAGE, {"bad": FieldRule("div[", type="css")})
