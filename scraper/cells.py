"""Extract the lines of text that a reader of a table cell can see.

Line breaks come from ``<br>`` elements, from block elements and from the literal text
``<br>`` (a Markdown author's ``<br/>`` inside a code span renders as that text and is
read as a line break too). Hidden elements, ``<style>``/``<script>`` and footnote
markers are skipped. Space-like characters become plain spaces and zero-width
characters are removed, so two renderings of the same value compare equal.
"""

from __future__ import annotations

import re

from lxml import etree

BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "dd", "details",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
        "ol", "p", "pre", "section", "summary", "table", "tbody", "tfoot", "thead",
        "tr", "ul",
    }
)
SKIPPED_TAGS = frozenset(
    {"style", "script", "template", "noscript", "head", "title", "svg", "math", "select"}
)
HIDDEN_CLASSES = frozenset(
    {
        "sr-only", "visually-hidden", "visuallyhidden", "screen-reader-text",
        "screen-reader-only", "d-none", "hidden", "hide",
    }
)
# Declarations that hide an element, by property; the last declaration of a
# property wins, as in CSS.
_HIDING_VALUES = {
    "display": re.compile(r"^none\b"),
    "visibility": re.compile(r"^(?:hidden|collapse)\b"),
    "content-visibility": re.compile(r"^hidden\b"),
    "opacity": re.compile(r"^(?=[0-9.])0*(?:\.0*)?%?(?:\s*!important)?$"),
    "font-size": re.compile(r"^0+(?:\.0*)?(?:px|em|rem|pt|%)?(?:\s*!important)?$"),
}
_FOOTNOTE_MARKER = re.compile(r"^\s*(?:\[\s*\d{1,3}\s*\]|\d{1,3}|[*†‡§¶#]{1,3}|[a-z])\s*$")
_LITERAL_BR = re.compile(r"<br\s*/?>", re.I)

# Zero-width characters and bidirectional marks: invisible, but they make two
# spellings of the same version compare unequal.
_ZERO_WIDTH = dict.fromkeys(
    map(
        ord,
        "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u200e\u200f"
        "\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    ),
    None,
)
_SPACES = dict.fromkeys(
    map(ord, "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
             "\u2009\u200a\u202f\u205f\u3000\t\r\f\v"),
    " ",
)
_SPACE_RUN = re.compile(r" {2,}")
_BREAK = "\n"


def cell_lines(cell: etree._Element) -> list[str]:
    """Return the visible, normalised, non-empty lines of a cell's text."""
    pieces: list[str] = []
    _collect(cell, pieces, in_pre=False, top=True)
    return split_lines("".join(pieces))


def cell_text(cell: etree._Element) -> str:
    """Return the visible text of a cell as one line."""
    return " ".join(cell_lines(cell))


def split_lines(text: str) -> list[str]:
    """Normalise ``text`` and return its non-empty lines."""
    text = _LITERAL_BR.sub(_BREAK, text)
    lines = (normalize_space(line) for line in text.split(_BREAK))
    return [line for line in lines if line]


def normalize_space(text: str) -> str:
    """Map space-like characters to a space, drop zero-width ones, collapse runs."""
    text = text.translate(_ZERO_WIDTH).translate(_SPACES).replace("\n", " ")
    return _SPACE_RUN.sub(" ", text).strip()


def is_hidden(element: etree._Element) -> bool:
    """Return whether a reader cannot see ``element`` (judged from its own markup)."""
    tag = element.tag
    if not isinstance(tag, str):
        return True  # A comment or processing instruction.
    if tag.lower() in SKIPPED_TAGS:
        return True
    attributes = element.attrib
    if "hidden" in attributes:
        return True
    if tag == "input" and attributes.get("type", "").lower() == "hidden":
        return True
    style = attributes.get("style")
    if style and _style_hides(style):
        return True
    classes = attributes.get("class")
    return bool(classes) and not HIDDEN_CLASSES.isdisjoint(classes.split())


def _style_hides(style: str) -> bool:
    declarations: dict[str, str] = {}
    for declaration in style.split(";"):
        name, _, value = declaration.partition(":")
        declarations[name.strip().lower()] = value.strip().lower()
    return any(
        pattern.match(declarations[name])
        for name, pattern in _HIDING_VALUES.items()
        if name in declarations
    )


def _is_footnote_marker(element: etree._Element) -> bool:
    if element.tag != "sup":
        return False
    for link in element.iter("a"):
        if link.get("href", "").startswith("#") or "data-footnote-ref" in link.attrib:
            return True
    text = "".join(element.itertext())
    return bool(_FOOTNOTE_MARKER.match(text))


def _collect(element: etree._Element, pieces: list[str], in_pre: bool, top: bool) -> None:
    hidden = is_hidden(element) or _is_footnote_marker(element)
    if not hidden:
        tag = element.tag
        if tag == "br":
            pieces.append(_BREAK)
        elif tag == "table" and not top:
            _collect_nested_table(element, pieces)
        else:
            block = tag in BLOCK_TAGS
            in_pre = in_pre or tag == "pre"
            if block:
                pieces.append(_BREAK)
            _append_text(element.text, pieces, in_pre)
            for child in element:
                _collect(child, pieces, in_pre, top=False)
            if block:
                pieces.append(_BREAK)
    if not top:
        _append_text(element.tail, pieces, in_pre)


def _append_text(text: str | None, pieces: list[str], in_pre: bool) -> None:
    if not text:
        return
    if in_pre:
        pieces.append(text)
    else:
        pieces.append(text.replace("\n", " "))


def _collect_nested_table(table: etree._Element, pieces: list[str]) -> None:
    # Each row of a two-column table inside a cell becomes one "key = value" line.
    # Rows of any other shape become their cells side by side, which the cell
    # parser then rejects.
    for row in table_rows(table):
        texts = [cell_text(cell) for cell in row_cells(row)]
        texts = [text for text in texts if text]
        pieces.append(_BREAK)
        if len(texts) == 2:
            pieces.append(f"{texts[0]} = {texts[1]}")
        else:
            pieces.append(" ".join(texts))
        pieces.append(_BREAK)


def table_rows(table: etree._Element) -> list[etree._Element]:
    """Return the rows of ``table`` itself, never those of a table nested in a cell."""
    rows = table.xpath("./tr | ./thead/tr | ./tbody/tr | ./tfoot/tr")
    return [row for row in rows if not is_hidden(row)]


def row_cells(row: etree._Element) -> list[etree._Element]:
    """Return the ``td`` and ``th`` cells of ``row`` that are visible."""
    return [cell for cell in row.xpath("./td | ./th") if not is_hidden(cell)]
