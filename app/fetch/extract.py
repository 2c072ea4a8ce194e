"""Extraction with parsel.

Named fields, each a CSS or XPath selector giving text, HTML or an attribute, one or many.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from cssselect import SelectorError
from lxml import etree
from parsel import Selector
from parsel.csstranslator import css2xpath

SelectorType = Literal["css", "xpath"]
Output = Literal["text", "html", "attribute"]


class SelectorInvalid(ValueError):
    """A selector that cannot be compiled; the message says why."""


class ExtractionError(Exception):
    """The page could not be parsed or a selector failed on it."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    selector: str
    type: SelectorType = "css"
    output: Output = "text"
    attribute: str | None = None
    many: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FieldRule:
        return cls(
            selector=raw["selector"],
            type=raw.get("type", "css"),
            output=raw.get("output", "text"),
            attribute=raw.get("attribute"),
            many=bool(raw.get("many", False)),
        )

    def xpath(self) -> str:
        """The rule as XPath; raises ``SelectorInvalid`` when it does not compile. Translated
        and checked once per distinct rule (a job applies the same rules to every page)."""
        return _translated(self)


@lru_cache(maxsize=1024)
def _translated(rule: FieldRule) -> str:
    try:
        expr = css2xpath(rule.selector) if rule.type == "css" else rule.selector
        etree.XPath(expr)
    except (SelectorError, etree.XPathError) as exc:
        raise SelectorInvalid(f"invalid {rule.type} selector: {exc}") from exc
    return expr


#: Every text node under an element, as plain strings (parsel's ``.//text()`` without a
#: Selector object per text node).
_TEXTS = etree.XPath(".//text()", smart_strings=False)


def _values(node: Selector, rule: FieldRule) -> list[str]:
    if rule.output == "attribute":
        value = node.attrib.get(rule.attribute or "")
        return [] if value is None else [value]
    if rule.output == "html":
        return [node.get()]
    root = node.root
    if isinstance(root, str):  # text nodes and attribute values come back as strings
        return [root.strip()]
    texts: list[str] = _TEXTS(root)
    return [" ".join(t.strip() for t in texts if t.strip())]


def extract(html: str, rules: dict[str, FieldRule], base_url: str | None = None) -> dict[str, Any]:
    """Apply every rule to ``html``. A rule that matches nothing yields ``None`` (or ``[]``)."""
    try:
        page = Selector(text=html, base_url=base_url or "")
    except (ValueError, etree.LxmlError) as exc:
        raise ExtractionError(f"could not parse the page: {exc}") from exc
    data: dict[str, Any] = {}
    for name, rule in rules.items():
        try:
            nodes = page.xpath(rule.xpath())
        except (SelectorInvalid, ValueError, etree.XPathError) as exc:
            raise ExtractionError(f"field {name!r}: {exc}") from exc
        values = [v for node in nodes for v in _values(node, rule)]
        data[name] = values if rule.many else (values[0] if values else None)
    return data
