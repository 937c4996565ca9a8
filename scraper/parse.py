"""Find the source's table in a page and parse it into rows.

The table is the one whose header row contains exactly the configured header texts,
wherever it sits in the page and whether or not it has ``thead``/``tbody``. Each data
row becomes a dict of plain strings keyed by the columns' field names, for example::

    {"kubernetes_version": "1.30.4",
     "dependencies": {"cni_version": "1.3.0", "containerd_version": "1.7.13"}}

A value may carry a note in parentheses ("1.28.0 (>= glibc 2.31)"). The note is kept
under ``notes``, keyed by the field path, so the value itself stays a clean version.
Every row must parse completely; anything else raises ParseError naming the row, the
column and the text found.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

from lxml import etree
from packaging.version import InvalidVersion, Version

from .cells import cell_lines, cell_text, is_hidden, normalize_space, row_cells, table_rows
from .config import Column, Source
from .errors import ParseError, TableNotFoundError

log = logging.getLogger(__name__)

Row = dict

NOTES_FIELD = "notes"
MAX_COLSPAN = 1000
MAX_ROWSPAN = 65534
REPLACEMENT_CHARACTER = "\ufffd"
# C0 and C1 control characters other than tab, line feed and carriage return, which
# cell text normalisation has already turned into spaces or line breaks. None belongs
# in a matrix cell, and printed to a terminal some of them move the cursor or set the
# window title, so a cell that contains one is rejected.
_CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_VERSION = r"v?\d+(?:\.\d+)+(?:[-+~][0-9A-Za-z]+(?:[.+~-][0-9A-Za-z]+)*)?"
# re.ASCII: \d would otherwise match digits of other scripts (Arabic-Indic, Devanagari),
# which NFKC does not fold and no version tool reads.
VERSION_PATTERN = re.compile(rf"^{_VERSION}$", re.ASCII)
_VERSION_ANYWHERE = re.compile(rf"(?<![\w.]){_VERSION}(?![\w.])", re.ASCII)
_NOTE_SPLIT = re.compile(r"^(?P<head>[^()]*?)\s*(?:\((?P<note>[^()]*)\))?$")
_VERSION_WITH_MARKER = re.compile(
    rf"^(?P<value>{_VERSION})\s*(?:\[\s*\d{{1,3}}\s*\]|[*†‡§¶])*$", re.ASCII
)
_DIGITS = re.compile(r"\d+")
_KEY_VALUE = re.compile(r"^(?P<key>[A-Za-z0-9_][A-Za-z0-9_.-]*)\s*=\s*(?P<value>.*)$")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")
_TABLE_OPEN = re.compile(r"<table[\s>/]", re.I)
_TABLE_CLOSE = re.compile(r"</table\s*>", re.I)
_HTML_CLOSE = re.compile(r"</html\s*>", re.I)
_NOT_MARKUP = re.compile(
    r"<!--.*?-->|<script\b.*?</script\s*>|<style\b.*?</style\s*>|<template\b.*?</template\s*>",
    re.I | re.S,
)


def parse_page(text: str, source: Source, where: str) -> list[Row]:
    """Parse the page ``text`` of ``source`` and return its rows in version order.

    ``where`` names the page (its final URL) in error messages.
    """
    if source.fetch.require_complete_page:
        check_complete(text, source, where)
    try:
        document = parse_document(text)
    except IncompleteParse as error:
        raise ParseError(
            f"the HTML parser stopped early: {error}",
            source=source.name,
            where=where,
            hint="the page nests elements too deeply or is malformed; nothing was stored",
        ) from None
    table = locate_table(document, source, where)
    return TableReader(source, where).read(table)


class IncompleteParse(Exception):
    """libxml2 gave up part way through the page, so the tree lacks its rest."""


def parse_document(text: str) -> etree._Element:
    """Parse HTML text with lxml; the result always has an ``html`` root.

    Raises IncompleteParse on a fatal parser error, such as nesting deeper than
    libxml2's limit of 256 elements: the parser then drops the rest of the page
    without raising, which would silently lose rows.
    """
    # lxml.etree's HTML parser builds the same tree as lxml.html's. It spares the
    # import of lxml.html and the Python call that lxml.html makes to pick the class
    # of each element object.
    parser = etree.HTMLParser(encoding="utf-8", remove_comments=True)
    data = text.encode("utf-8", errors="surrogatepass")
    if not data.strip():
        return _empty_document()
    try:
        document = etree.fromstring(data, parser)
    except etree.ParserError:
        return _empty_document()
    if document is None:
        return _empty_document()
    fatal = [entry for entry in parser.error_log if entry.level_name == "FATAL"]
    if fatal:
        raise IncompleteParse(f"{fatal[0].message} (line {fatal[0].line})")
    return document


def _empty_document() -> etree._Element:
    return etree.fromstring("<html></html>", etree.HTMLParser())


def check_complete(text: str, source: Source, where: str) -> None:
    """Raise ParseError if the page looks cut short: no ``</html>``, or an unclosed table.

    Comments, scripts and styles are left out of the count, because tags written
    inside them are text, not markup.
    """
    text = _NOT_MARKUP.sub(" ", text)
    opened = len(_TABLE_OPEN.findall(text))
    closed = len(_TABLE_CLOSE.findall(text))
    if not _HTML_CLOSE.search(text) or closed < opened:
        raise ParseError(
            f"the page is incomplete: it has {opened} <table> and {closed} </table> "
            f"tags and {'a' if _HTML_CLOSE.search(text) else 'no'} </html> "
            f"({len(text)} characters)",
            source=source.name,
            where=where,
            hint="the download was probably cut short; if the page really lacks "
            "</html>, set fetch.require_complete_page: false",
        )


def normalize_header(text: str) -> str:
    """Return the form in which header texts are compared: spacing and case folded."""
    return normalize_space(text).casefold()


@dataclass
class _Candidate:
    table: etree._Element
    header_index: int | None
    first_row: list[str]

    def describe(self, number: int) -> str:
        rows = len(table_rows(self.table))
        headers = ", ".join(repr(text) for text in self.first_row) or "no cells"
        return f"table {number}: first row [{headers}], {rows} rows"


def locate_table(document: etree._Element, source: Source, where: str) -> etree._Element:
    """Return the one table whose header row matches the source's column headers."""
    expected = sorted(normalize_header(column.header) for column in source.columns)
    tables = _candidate_tables(document, source, where)
    candidates = [_inspect(table, expected) for table in tables]
    matches = [candidate for candidate in candidates if candidate.header_index is not None]
    if len(matches) == 1:
        return matches[0].table
    wanted = ", ".join(repr(column.header) for column in source.columns)
    listing = "; ".join(c.describe(i + 1) for i, c in enumerate(candidates[:8]))
    if len(candidates) > 8:
        listing += f"; and {len(candidates) - 8} more"
    if not matches:
        raise TableNotFoundError(
            f"matrix table not found: expected a table with headers {wanted}; "
            f"found {len(candidates)} tables" + (f" ({listing})" if listing else ""),
            source=source.name,
            where=where,
            hint="the page layout or URL changed; update the source's columns or url",
        )
    raise TableNotFoundError(
        f"{len(matches)} tables have the headers {wanted} ({listing})",
        source=source.name,
        where=where,
        hint="set table.selector to pick one of them",
    )


def _candidate_tables(
    document: etree._Element, source: Source, where: str
) -> list[etree._Element]:
    if source.selector is None:
        return [table for table in document.iter("table") if is_visible(table)]
    from lxml.cssselect import CSSSelector

    matched = CSSSelector(source.selector)(document)
    if not matched:
        raise TableNotFoundError(
            f"selector {source.selector!r} matched 0 elements",
            source=source.name,
            where=where,
            hint="a selector copied from browser devtools may name a tbody the page "
            "source lacks; remove table.selector to find the table by its headers",
        )
    tables: list[etree._Element] = []
    for element in matched:
        found = _tables_for(element)
        tables.extend(table for table in found if table not in tables and is_visible(table))
    return tables


def is_visible(element: etree._Element) -> bool:
    """Return whether neither ``element`` nor an ancestor hides it from a reader."""
    return not is_hidden(element) and not any(map(is_hidden, element.iterancestors()))


def _tables_for(element: etree._Element) -> list[etree._Element]:
    if element.tag == "table":
        return [element]
    for ancestor in element.iterancestors("table"):
        return [ancestor]
    return list(element.iter("table"))


def _inspect(table: etree._Element, expected: list[str]) -> _Candidate:
    first_row: list[str] = []
    for index, row in enumerate(table_rows(table)):
        texts = [cell_text(cell) for cell in row_cells(row)]
        if index == 0 or not first_row:
            first_row = texts
        if sorted(normalize_header(text) for text in texts) == expected:
            return _Candidate(table, index, texts)
    return _Candidate(table, None, first_row)


def expand_spans(rows: list[etree._Element]) -> list[dict[int, etree._Element]]:
    """Lay the rows' cells out on a grid, copying each cell into every slot it spans.

    Returns one dict per row from column index to cell element.
    """
    grid: list[dict[int, etree._Element]] = []
    carried: dict[int, tuple[etree._Element, int]] = {}
    for row_index, row in enumerate(rows):
        placed = {column: cell for column, (cell, _) in carried.items()} if carried else {}
        starting: dict[int, tuple[etree._Element, int]] = {}
        column = 0
        for cell in row_cells(row):
            while column in placed:
                column += 1
            colspan = _span(cell, "colspan", MAX_COLSPAN)
            rowspan = _span(cell, "rowspan", MAX_ROWSPAN, zero_means=len(rows) - row_index)
            for offset in range(colspan):
                placed[column + offset] = cell
                if rowspan > 1:
                    starting[column + offset] = (cell, rowspan - 1)
            column += colspan
        grid.append(placed)
        if carried:
            carried = {c: (cell, left - 1) for c, (cell, left) in carried.items() if left > 1}
        if starting:
            carried.update(starting)
    return grid


def _span(cell: etree._Element, name: str, maximum: int, zero_means: int = 1) -> int:
    raw = cell.get(name)
    if raw is None:
        return 1
    digits = _DIGITS.match(raw.strip())
    if not digits:
        return 1
    value = int(digits.group())
    if value == 0:
        value = zero_means
    return max(1, min(value, maximum))


class TableReader:
    """Read the data rows of a located table into row dicts."""

    def __init__(self, source: Source, where: str) -> None:
        self.source = source
        self.where = where
        self.expected = [normalize_header(column.header) for column in source.columns]
        self.expected_sorted = sorted(self.expected)
        # The lines of each cell read so far. A cell is read once, however many
        # checks need its text and however many grid slots it spans.
        self._lines: dict[etree._Element, list[str]] = {}

    def lines(self, cell: etree._Element) -> list[str]:
        """Return cell_lines(cell), read once per cell."""
        found = self._lines.get(cell)
        if found is None:
            found = self._lines[cell] = cell_lines(cell)
        return found

    def text(self, cell: etree._Element) -> str:
        """Return cell_text(cell)."""
        return " ".join(self.lines(cell))

    def error(self, message: str, hint: str | None = None) -> ParseError:
        return ParseError(message, source=self.source.name, where=self.where, hint=hint)

    def read(self, table: etree._Element) -> list[Row]:
        grid = expand_spans(table_rows(table))
        header_index, columns = self.header(grid)
        rows: list[Row] = []
        first_seen: dict[object, tuple[int, str]] = {}
        sort_keys: dict[int, tuple] = {}
        for row_number, slots in enumerate(grid[header_index + 1:], start=1):
            row = self.data_row(slots, columns, row_number)
            if row is None:
                continue
            key = row[self.source.key]
            identity = key_identity(key)
            if identity in first_seen:
                first_row, first_key = first_seen[identity]
                spelled = f" (written {first_key!r} and {key!r})" if first_key != key else ""
                raise self.error(
                    f"duplicate {self.source.key} {first_key!r} in data rows "
                    f"{first_row} and {row_number}{spelled}",
                    hint="each row must have its own key; the page itself has the duplicate",
                )
            first_seen[identity] = (row_number, key)
            rows.append(row)
            # The same as sort_key(key), without parsing the version a second time.
            if isinstance(identity, Version):
                sort_keys[id(row)] = (0, identity, key)
            else:
                sort_keys[id(row)] = sort_key(key)
        if not rows:
            raise self.error(
                "the table has a header row but no data rows",
                hint="the page lost its rows; the last good snapshot is kept",
            )
        rows.sort(key=lambda row: sort_keys[id(row)])
        return rows

    def header(self, grid: list[dict]) -> tuple[int, list[Column | None]]:
        by_header = {normalize_header(column.header): column for column in self.source.columns}
        for index, slots in enumerate(grid):
            texts = [normalize_header(self.text(slots[c])) for c in sorted(slots)]
            if sorted(texts) == self.expected_sorted:
                self.check_rows_before_header(grid[:index])
                return index, [by_header[text] for text in texts]
        raise self.error("the header row was not found")  # locate_table found it.

    def check_rows_before_header(self, rows: list[dict]) -> None:
        for number, slots in enumerate(rows, start=1):
            cells = set(slots.values())
            if all(cell.tag == "th" for cell in cells):
                continue
            if any(self.lines(cell) for cell in cells):
                texts = [self.text(slots[c]) for c in sorted(slots)]
                raise self.error(
                    f"row {number} above the header row holds data: {texts!r}",
                    hint="the table layout changed",
                )

    def data_row(self, slots: dict, columns: list[Column], number: int) -> Row | None:
        texts = {c: self.text(cell) for c, cell in slots.items()}
        if not any(texts.values()):
            return None
        ordered = [texts[c] for c in sorted(texts)]
        # split_lines has already normalised a cell's text, so normalize_header(text)
        # equals text.casefold().
        if sorted(text.casefold() for text in ordered) == self.expected_sorted:
            return None  # A repeated header row.
        if self.is_divider(slots, columns):
            log.debug("%s: skipping divider row %d %r", self.source.name, number, ordered[0])
            return None
        if sorted(slots) != list(range(len(columns))):
            raise self.error(
                f"data row {number} {ordered!r} has {len(slots)} cells, "
                f"expected {len(columns)} ({', '.join(c.header for c in columns)})",
                hint="the table layout changed",
            )
        row: Row = {}
        notes: dict[str, str] = {}
        label = self.row_label(slots, columns, number)
        for index, column in enumerate(columns):
            cell = slots[index]
            value = self.cell_value(cell, column, label, notes)
            row[column.field] = value
        ordered_row = {column.field: row[column.field] for column in self.source.columns}
        if notes:
            ordered_row[NOTES_FIELD] = dict(sorted(notes.items()))
        return ordered_row

    def is_divider(self, slots: dict, columns: list[Column]) -> bool:
        """Return whether the row is one label cell spanning the table, like "Supported".

        A spanning cell that contains a version is data in the wrong shape, not a
        label, so it falls through to the cell count check and fails loudly.
        """
        spans_all = sorted(slots) == list(range(len(columns)))
        one_cell = len({id(cell) for cell in slots.values()}) == 1
        if len(columns) < 2 or not spans_all or not one_cell:
            return False
        return not _VERSION_ANYWHERE.search(normalize_version(self.text(slots[0])))

    def row_label(self, slots: dict, columns: list[Column], number: int) -> str:
        key_index = next(i for i, c in enumerate(columns) if c.field == self.source.key)
        key_text = self.text(slots[key_index])
        return f"data row {number} ({key_text!r})" if key_text else f"data row {number}"

    def cell_value(self, cell, column: Column, label: str, notes: dict) -> str | dict:
        lines = self.lines(cell)
        text = " | ".join(lines)
        where = f"{label}, column {column.header!r}"
        if REPLACEMENT_CHARACTER in text:
            raise self.error(
                f"{where}: undecodable bytes in {text!r}",
                hint="the page's bytes do not match its declared charset",
            )
        control = _CONTROL_CHARACTER.search(text)
        if control:
            raise self.error(
                f"{where}: control character U+{ord(control.group()):04X} in {text!r}",
                hint="matrix cells hold printable text only; the page is damaged or "
                "was changed to contain terminal escape sequences",
            )
        if not lines:
            raise self.error(f"{where}: the cell is empty")
        if column.parse == "key_value":
            return self.key_values(lines, column, where, notes)
        value = " ".join(lines)
        if column.parse == "version":
            return self.version(value, column.field, where, notes)
        return value

    def key_values(self, lines: list[str], column: Column, where: str, notes: dict) -> dict:
        pairs: dict[str, str] = {}
        for line in lines:
            match = _KEY_VALUE.match(line)
            if not match:
                raise self.error(
                    f"{where}: expected 'key = value' lines, found {line!r}",
                    hint="the cell format changed",
                )
            key = match.group("key")
            if key in pairs:
                raise self.error(f"{where}: the key {key!r} appears twice")
            path = f"{column.field}.{key}"
            pairs[key] = self.version(match.group("value"), path, f"{where}, {key}", notes)
        return dict(sorted(pairs.items()))

    def version(self, text: str, path: str, where: str, notes: dict) -> str:
        # Only the version itself is folded; a note keeps its own characters.
        if "(" in text or ")" in text:
            parts = _NOTE_SPLIT.match(text)
            head = parts.group("head") if parts else None
            note = (parts.group("note") or "").strip() if parts else ""
        else:
            # What _NOTE_SPLIT finds in a text without parentheses, without running
            # it: the \s of a str pattern matches the characters str.isspace accepts.
            head, note = text.rstrip(), ""
        match = head is not None and _VERSION_WITH_MARKER.match(normalize_version(head))
        if not match:
            raise self.error(
                f"{where}: {text!r} is not a version",
                hint="expected a version such as 1.30.4, optionally followed by a "
                "note in parentheses",
            )
        if note:
            notes[path] = note
        return match.group("value")


def normalize_version(text: str) -> str:
    """Fold compatibility characters and map look-alike dashes to ASCII ``-``."""
    if text.isascii():
        return text.strip()  # NFKC leaves ASCII as it is, and the dashes are not ASCII.
    return unicodedata.normalize("NFKC", text).translate(_DASHES).strip()


def is_version(text: str) -> bool:
    """Return whether ``text`` is a version as this tool stores them."""
    return bool(VERSION_PATTERN.match(text))


def key_identity(text: str) -> object:
    """Return what makes two keys the same row: v1.30.4, 1.30.4 and 01.30.04 are one."""
    try:
        return Version(text)
    except InvalidVersion:
        return text


def sort_key(text: str) -> tuple:
    """Return a key that orders versions numerically (1.9 before 1.10)."""
    try:
        return (0, Version(text), text)
    except InvalidVersion:
        parts = re.split(r"(\d+)", text, flags=re.ASCII)
        natural = tuple(
            (0, int(part), "") if part.isascii() and part.isdigit() else (1, 0, part)
            for part in parts
        )
        return (1, natural, text)
