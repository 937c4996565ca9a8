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
_ROW_GROUPS = frozenset({"thead", "tbody", "tfoot"})
_CELL_TAGS = frozenset({"td", "th"})
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
_ASCII_SPACE_LIKE = "\t\r\f\v"
_SPACES = dict.fromkeys(
    map(ord, "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
             "\u2009\u200a\u2028\u2029\u202f\u205f\u3000" + _ASCII_SPACE_LIKE),
    " ",
)
_SPACE_RUN = re.compile(r" {2,}")
_BREAK = "\n"
# Zero-width and space-like characters in one translation table, which keeps line
# breaks. It maps every other ASCII character to itself because str.translate
# raises and catches a KeyError for each character missing from a table, and that
# costs more than the lookup.
_INVISIBLE_AND_SPACES = {
    **{code: chr(code) for code in range(128)},
    **_ZERO_WIDTH,
    **_SPACES,
}


def cell_lines(cell: etree._Element) -> list[str]:
    """Return the visible, normalised, non-empty lines of a cell's text."""
    pieces: list[str] = []
    if not _is_skipped(cell):
        if cell.tag == "br":
            return []
        _collect(cell, pieces, in_pre=False)
    return split_lines("".join(pieces))


def cell_text(cell: etree._Element) -> str:
    """Return the visible text of a cell as one line."""
    return " ".join(cell_lines(cell))


def split_lines(text: str) -> list[str]:
    """Normalise ``text`` and return its non-empty lines."""
    # A literal <br> is replaced before the characters are mapped, so a zero-width
    # character inside one keeps it from being read as a break.
    if "<" in text:
        text = _LITERAL_BR.sub(_BREAK, text)
    text = _map_spaces(text)
    lines = []
    for line in text.split(_BREAK):
        if "  " in line:
            line = _SPACE_RUN.sub(" ", line)
        # Only spaces are stripped: str.strip() would also remove the control
        # characters U+001C to U+001F and U+0085, which the parser must see to
        # reject the cell.
        line = line.strip(" ")
        if line:
            lines.append(line)
    return lines


def normalize_space(text: str) -> str:
    """Map space-like characters to a space, drop zero-width ones, collapse runs."""
    text = _map_spaces(text).replace("\n", " ")
    if "  " in text:
        text = _SPACE_RUN.sub(" ", text)
    return text.strip(" ")


def _map_spaces(text: str) -> str:
    # Drops zero-width characters and maps space-like ones to a space.
    if text.isascii():
        # No zero-width character is ASCII, and these are the ASCII space-like ones.
        for character in _ASCII_SPACE_LIKE:
            if character in text:
                text = text.replace(character, " ")
        return text
    return text.translate(_INVISIBLE_AND_SPACES)


def is_hidden(element: etree._Element) -> bool:
    """Return whether a reader cannot see ``element`` (judged from its own markup)."""
    tag = element.tag
    if not isinstance(tag, str):
        return True  # A comment or processing instruction.
    if tag.lower() in SKIPPED_TAGS:
        return True
    attributes = element.attrib
    if not attributes:
        return False
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


def _is_skipped(element: etree._Element) -> bool:
    """Return whether ``element`` is hidden or a footnote marker."""
    return is_hidden(element) or (element.tag == "sup" and _is_footnote_marker(element))


def _collect(element: etree._Element, pieces: list[str], in_pre: bool) -> None:
    # Appends the text inside ``element``, which is visible and not a <br>, but not
    # its tail. The caller has checked each child's visibility, so every element is
    # checked once. A child's tail is read as preformatted when the child is
    # inside a <pre> or is one.
    tag = element.tag
    block = tag in BLOCK_TAGS
    if tag == "pre":
        in_pre = True
    if block:
        pieces.append(_BREAK)
    text = element.text
    if text:
        pieces.append(text if in_pre else text.replace("\n", " "))

    for child in element:
        child_pre = in_pre
        if not _is_skipped(child):
            child_tag = child.tag
            if child_tag == "br":
                pieces.append(_BREAK)
            elif child_tag == "table":
                _collect_nested_table(child, pieces)
            else:
                if child_tag == "pre":
                    child_pre = True
                _collect(child, pieces, child_pre)
        tail = child.tail
        if tail:
            pieces.append(tail if child_pre else tail.replace("\n", " "))

    if block:
        pieces.append(_BREAK)


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
    # The rows in document order: those that are children of the table and those of
    # its thead, tbody and tfoot sections.
    rows = []
    for child in table:
        tag = child.tag
        if tag == "tr":
            rows.append(child)
        elif tag in _ROW_GROUPS:
            rows.extend(row for row in child if row.tag == "tr")
    return [row for row in rows if not is_hidden(row)]


def row_cells(row: etree._Element) -> list[etree._Element]:
    """Return the ``td`` and ``th`` cells of ``row`` that are visible."""
    return [
        cell for cell in row if cell.tag in _CELL_TAGS and not is_hidden(cell)
    ]
