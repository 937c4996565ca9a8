"""Property tests of the parser, the diff and the YAML writer on generated input.

Pages are built around two real captures. Their matrix table is rewritten with
markup a reader does not see: spacing, wrapper elements, comments, hidden elements,
invisible characters, character references, tag case, attributes, optional end
tags and the ``<br>`` spellings. Other pages are damaged copies: cut short, a tag
removed, bytes inserted. Hypothesis runs derandomized, so every run tries the same
examples.
"""

from __future__ import annotations

import encodings.aliases
import functools
import html
import re
from dataclasses import dataclass

import yaml
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from scraper import yamlio
from scraper.charset import decode_html
from scraper.config import load_config
from scraper.diff import compare
from scraper.errors import ScraperError
from scraper.parse import parse_page
from tests.conftest import FIXTURES, ROOT, fixture_bytes

# The explain phase reruns a failing example under a line tracer, which is slow on
# generated pages, so the profile leaves it out.
settings.register_profile(
    "fuzz",
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
)
FUZZ = settings.get_profile("fuzz")
# Each truncation example builds a whole page, and shrinking a failure reruns
# thousands of them (62 s measured on a 2-core machine). These tests report the first
# failing example instead, and the assertion message shows the bytes before the cut.
FUZZ_NO_SHRINK = settings(FUZZ, phases=(Phase.explicit, Phase.reuse, Phase.generate))

# Only the source definition is used: nothing here fetches its URL.
SOURCE = load_config(ROOT / "config.yaml").source("capi-image-builder")
WHERE = "http://127.0.0.1/matrix/"
KEY = SOURCE.key

CAPTURES = ("matrix-4rows-asc.html", "matrix-4rows-desc-preview-full-site.html")
EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text("utf-8"))[
    "captures"
]
HEADERS = {column.field: column.header for column in SOURCE.columns}
CONTENT_TYPES = (
    None,
    "text/html",
    "text/html; charset=utf-8",
    "text/html;charset=UTF-8",
)


def split_capture(name: str) -> tuple[str, str, str]:
    """Return the page text before its one matrix table, the table, and the rest."""
    text = fixture_bytes(name).decode("utf-8")
    start = text.index("<table>")
    end = text.index("</table>") + len("</table>")
    return text[:start], text[start:end], text[end:]


PAGE_PARTS = {name: split_capture(name) for name in CAPTURES}


@dataclass(frozen=True)
class GeneratedPage:
    """A capture with its matrix table replaced. Only the new table is in the repr."""

    capture: str
    table: str

    @property
    def content(self) -> bytes:
        before, _, after = PAGE_PARTS[self.capture]
        return (before + self.table + after).encode("utf-8")

    @property
    def table_offset(self) -> int:
        """Return the byte offset at which the table starts."""
        return len(PAGE_PARTS[self.capture][0].encode("utf-8"))


def parse_bytes(content: bytes, content_type: str | None = "text/html") -> list[dict]:
    """Decode and parse a page the way a sync does after the download."""
    text, _, _ = decode_html(content, content_type)
    return parse_page(text, SOURCE, WHERE)


def leaves(value: object) -> list[object]:
    """Return the non-container values of nested dicts and lists."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in leaves(item)]
    return [value]


def check_rows(rows: list[dict]) -> None:
    """Assert the shape every returned set of rows must have."""
    assert isinstance(rows, list)
    assert rows
    assert all(isinstance(row, dict) for row in rows)
    assert all(isinstance(leaf, str) for leaf in leaves(rows))
    assert yamlio.load(yamlio.dump({"rows": rows})) == {"rows": rows}


# --- Cosmetic markup -------------------------------------------------------------

SPACES = (
    " ",
    "  ",
    "\n",
    "\n    ",
    "\t",
    "\r\n",
    "&nbsp;",
    "\u00a0",
    "\u2007",
    "\u202f",
    "&#8199;",
    "&#x202F;",
)
ZERO_WIDTH = ("\u200b", "\ufeff", "\u2060", "&#x200B;", "&#65279;", "&#8288;")
COMMENTS = (
    "<!---->",
    "<!-- -->",
    "<!-- note -->",
    "<!-- 9.9.9 -->",
    "<!-- <td>9.9.9</td> -->",
    "<!-- junk = 9.9.9 <br> -->",
    "<!-- <table><tr><td>1.31.0</td></tr></table> -->",
    "<!-- <table class=draft> -->",
    "<!-- </table> -->",
)
# Elements whose text no reader sees, each holding text that would break the row.
HIDDEN = (
    "<span hidden>junk 9.9.9</span>",
    '<span style="display:none">1.31.0</span>',
    '<em style="display: none;">junk = 9.9.9</em>',
    '<span style="display: none !important">9.9.9</span>',
    '<span style="visibility:hidden">x = 1.0.0<br></span>',
    "<div hidden>9.9.9</div>",
    "<style>td { color: inherit }</style>",
    "<template>9.9.9</template>",
)
HIDDEN_ROWS = (
    "<tr hidden><td>9.9.9</td><td>junk = 9.9.9</td></tr>",
    '<tr style="display:none"><td>1.31.0</td><td><code>cni</code> = 9.9.9</td></tr>',
    '<tr style="visibility:collapse"><td>junk</td><td>junk</td></tr>',
)
# A second table with the same headers that no reader sees. Only the visible one
# counts.
HEADER_ROW = "<tr><th>Kubernetes Version</th><th>Dependencies Version</th></tr>"
HIDDEN_TABLES = (
    f"<div hidden><table>{HEADER_ROW}<tr><td>9</td><td>a = 9</td></tr></table></div>",
    f'<table style="display:none">{HEADER_ROW}<tr><td>1</td><td>a=1</td></tr></table>',
)
BREAKS = (
    "<br>",
    "<br/>",
    "<br />",
    "<BR />",
    "<BR>",
    "<Br/>",
    '<br class="x">',
    "<br\n/>",
)
WRAPPERS = ("span", "em", "strong", "code", "b", "i")
# Attributes that change neither the text nor its visibility.
ATTRIBUTES = (
    ' class="x"',
    " class='token plain'",
    ' id="row-1"',
    ' data-line="3"',
    ' style="text-align:left"',
    " align=left",
    ' title="9.9.9"',
    ' lang="en"',
    ' width="50%"',
)
CELL_ATTRIBUTES = ATTRIBUTES + (' colspan="1"', " rowspan=1")


# Strategies are built once: building them per draw costs more than the parsing.
ATTRIBUTE_LISTS = st.lists(st.sampled_from(ATTRIBUTES), max_size=2).map("".join)
CELL_ATTRIBUTE_LISTS = st.lists(st.sampled_from(CELL_ATTRIBUTES), max_size=2).map(
    "".join
)
GAPS = st.lists(
    st.sampled_from(("", " ", "\n", "\n  ", "\t") + COMMENTS), max_size=2
).map("".join)
PADDING = st.lists(st.sampled_from(SPACES + ZERO_WIDTH + COMMENTS), max_size=3).map(
    "".join
)
PADDING_OR_HIDDEN = st.lists(
    st.sampled_from(SPACES + ZERO_WIDTH + COMMENTS + HIDDEN), max_size=3
).map("".join)
# A run of space-like characters that renders as at least one space.
SPACE_RUNS = st.tuples(
    st.sampled_from(SPACES),
    st.lists(st.sampled_from(SPACES + ZERO_WIDTH + COMMENTS), max_size=2),
).map(lambda parts: parts[0] + "".join(parts[1]))
EQUALS_SIGNS = st.sampled_from(("=", "&#61;", "&#x3D;"))
# Changes to single characters of a value: a character reference in place of the
# character, or an invisible token in front of it. Positions wrap around the text.
CHARACTER_EDITS = st.lists(
    st.tuples(
        st.integers(0, 63), st.sampled_from(("decimal", "hex") + ZERO_WIDTH + COMMENTS)
    ),
    max_size=3,
)
WRAPPER_COUNTS = st.integers(0, 2)
WRAPPER_NAMES = st.sampled_from(WRAPPERS)
BREAK_TAGS = st.sampled_from(BREAKS)
HIDDEN_ROW_COUNTS = st.integers(0, 2)
BOOLEANS = st.booleans()


@functools.cache
def tag_case(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from((name, name.upper(), name.capitalize()))


def start_tag(draw, name: str, attributes=ATTRIBUTE_LISTS) -> str:
    return f"<{draw(tag_case(name))}{draw(attributes)}>"


def end_tag(draw, name: str, optional: bool = False) -> str:
    if optional and draw(BOOLEANS):
        return ""  # The HTML standard lets td, th and tr omit their end tag.
    return f"</{draw(tag_case(name))}>"


def spelled(draw, text: str) -> str:
    """Spell ``text`` with character references and invisible tokens inside."""
    pieces = list(text)
    for position, form in draw(CHARACTER_EDITS):
        index = position % len(text)
        if form == "decimal":
            pieces[index] = f"&#{ord(text[index])};"
        elif form == "hex":
            pieces[index] = f"&#x{ord(text[index]):X};"
        else:
            pieces[index] = form + pieces[index]
    return "".join(pieces)


def wrapped(draw, html: str) -> str:
    """Put up to two inline elements around ``html``."""
    for _ in range(draw(WRAPPER_COUNTS)):
        name = draw(WRAPPER_NAMES)
        html = f"{start_tag(draw, name)}{draw(PADDING)}{html}{end_tag(draw, name)}"
    return html


def header_text(draw, header: str) -> str:
    """Spell a header with any run of space-like characters between its words."""
    parts = [spelled(draw, word) for word in header.split(" ")]
    html = "".join(part + draw(SPACE_RUNS) for part in parts[:-1]) + parts[-1]
    return wrapped(draw, html)


def cell(draw, name: str, content: str) -> str:
    start = start_tag(draw, name, CELL_ATTRIBUTE_LISTS)
    before = draw(PADDING_OR_HIDDEN)
    after = draw(PADDING_OR_HIDDEN)
    return f"{start}{before}{content}{after}{end_tag(draw, name, optional=True)}"


def dependencies_cell(draw, dependencies: dict[str, str]) -> str:
    pairs = draw(st.permutations(sorted(dependencies.items())))
    lines = []
    for name, version in pairs:
        sign = draw(SPACE_RUNS) + draw(EQUALS_SIGNS) + draw(SPACE_RUNS)
        lines.append(
            wrapped(draw, spelled(draw, name))
            + sign
            + wrapped(draw, spelled(draw, version))
        )
    html = lines[0]
    for line in lines[1:]:
        html += (
            draw(PADDING_OR_HIDDEN) + draw(BREAK_TAGS) + draw(PADDING_OR_HIDDEN) + line
        )
    if draw(BOOLEANS):
        html += draw(BREAK_TAGS)  # A trailing break adds no visible line.
    return cell(draw, "td", html)


def table_row(draw, fields: list[str], cells: dict[str, str]) -> str:
    html = start_tag(draw, "tr") + draw(GAPS)
    for field in fields:
        html += cells[field] + draw(GAPS)
    return html + end_tag(draw, "tr", optional=True)


def noisy_table(draw, rows: list[dict]) -> str:
    """Render ``rows`` as a table that reads the same as the capture's table."""
    fields = draw(st.permutations(list(HEADERS)))
    header_cells = {
        field: cell(draw, "th", header_text(draw, HEADERS[field])) for field in fields
    }
    header = table_row(draw, fields, header_cells)
    body = []
    for row in draw(st.permutations(rows)):
        cells = {
            KEY: cell(draw, "td", wrapped(draw, spelled(draw, row[KEY]))),
            "dependencies": dependencies_cell(draw, row["dependencies"]),
        }
        body.append(table_row(draw, fields, cells))
    for _ in range(draw(HIDDEN_ROW_COUNTS)):
        position = draw(st.integers(0, len(body)))
        body.insert(position, draw(st.sampled_from(HIDDEN_ROWS)))
    body_html = draw(GAPS).join(body)

    with_thead = draw(BOOLEANS)
    with_tbody = draw(BOOLEANS)
    html = start_tag(draw, "table") + draw(GAPS)
    if with_thead:
        html += start_tag(draw, "thead") + draw(GAPS) + header + draw(GAPS)
        html += end_tag(draw, "thead") + draw(GAPS)
    elif not with_tbody or draw(BOOLEANS):
        html += header + draw(GAPS)
    else:
        body_html = header + draw(GAPS) + body_html  # The header row opens the tbody.
    if with_tbody:
        html += start_tag(draw, "tbody") + draw(GAPS) + body_html + draw(GAPS)
        html += end_tag(draw, "tbody")
    else:
        html += body_html
    return html + draw(GAPS) + end_tag(draw, "table")


@st.composite
def noisy_pages(draw) -> GeneratedPage:
    """Return a capture with its table rewritten, after a hidden decoy table or not."""
    name = draw(st.sampled_from(CAPTURES))
    decoy = draw(st.sampled_from(("",) + HIDDEN_TABLES))
    return GeneratedPage(name, decoy + noisy_table(draw, EXPECTED[name]))


def clean_pages() -> st.SearchStrategy[GeneratedPage]:
    return st.sampled_from(
        [GeneratedPage(name, PAGE_PARTS[name][1]) for name in CAPTURES]
    )


# --- Damage ----------------------------------------------------------------------

TAG = re.compile(rb"<[^<>]*>")
# Fragments that often break parsers: markup, encodings, control bytes.
FRAGMENTS = (
    b"<",
    b">",
    b"&",
    b"<!--",
    b"-->",
    b"<table>",
    b"</table>",
    b"<tr>",
    b"<td>",
    b"</td>",
    b"<br>",
    b"</html>",
    b"<script>",
    b"<tr hidden>",
    b'"',
    b"\x00",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xe2\x80",
    b"\xc3",
    b"\r",
    b"(",
    b")",
    b"1.30.4",
    b" = ",
    b'<meta charset="utf-16">',
    b'<meta charset="windows-1252">',
    b'<meta charset="utf-7">',
    b"<div>" * 300,
)


# One change to a page: ("cut", offset), ("delete tag", index) or ("insert", offset,
# bytes). Offsets and indexes wrap around, so one list applies to any page.
DAMAGE = st.one_of(
    st.tuples(st.just("cut"), st.integers(0, 2**16)),
    st.tuples(st.just("delete tag"), st.integers(0, 2**12)),
    st.tuples(
        st.just("insert"),
        st.integers(0, 2**16),
        st.one_of(st.sampled_from(FRAGMENTS), st.binary(min_size=1, max_size=8)),
    ),
)


def damaged(page: bytes, changes: list[tuple]) -> bytes:
    """Apply ``changes``, drawn from DAMAGE, to ``page`` in order."""
    for change in changes:
        if change[0] == "cut":
            page = page[: change[1] % (len(page) + 1)]
        elif change[0] == "delete tag":
            tags = list(TAG.finditer(page))
            if tags:
                tag = tags[change[1] % len(tags)]
                page = page[: tag.start()] + page[tag.end() :]
        else:
            position = change[1] % (len(page) + 1)
            page = page[:position] + change[2] + page[position:]
    return page


# --- Properties ------------------------------------------------------------------


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=2048),
        st.tuples(
            st.one_of(clean_pages(), noisy_pages()),
            st.lists(DAMAGE, min_size=1, max_size=3),
        ),
    ),
    content_type=st.sampled_from(
        CONTENT_TYPES
        + (
            "text/html; charset=utf-16",
            "text/html; charset=windows-1252",
            "text/html; charset=utf-7",
            "text/html; charset=no-such-charset",
        )
    ),
)
def test_any_bytes_rows_or_error(content, content_type):
    if isinstance(content, tuple):
        page, changes = content
        content = damaged(page.content, changes)
    try:
        rows = parse_bytes(content, content_type)
    except ScraperError:
        return
    check_rows(rows)


@FUZZ
@given(
    label=st.one_of(
        st.sampled_from(sorted(set(encodings.aliases.aliases.values()))),
        st.text(st.characters(codec="ascii", exclude_characters='";\\'), max_size=20),
    ),
    declared_in=st.sampled_from(("header", "meta")),
)
def test_any_charset_label_decodes_or_errors(label, declared_in):
    page = fixture_bytes("matrix-4rows-asc.html").replace(b'charset="UTF-8"', b"")
    if declared_in == "meta":
        page = page.replace(b"<head>", f'<head><meta charset="{label}">'.encode(), 1)
        content_type = "text/html"
    else:
        content_type = f'text/html; charset="{label}"'
    try:
        rows = parse_bytes(page, content_type)
    except ScraperError:
        return
    check_rows(rows)


@FUZZ
@given(page=noisy_pages(), content_type=st.sampled_from(CONTENT_TYPES))
def test_noisy_page_rows_equal_clean(page, content_type):
    assert parse_bytes(page.content, content_type) == EXPECTED[page.capture]


# Text a note may hold: anything but the parentheses that delimit it, with line
# breaks and YAML keywords that the generic text strategy seldom produces.
NOTES = st.one_of(
    st.text(
        st.characters(exclude_characters="()", exclude_categories=("Cs",)), min_size=1
    ),
    st.sampled_from(
        ("a\x85b", "a\u2028b", "a\u2029b", "yes", "1.30", "# x", "x: y", "'\"")
    ),
)


@FUZZ
@given(note=NOTES, value=st.sampled_from(("1.30.4", "1.3.0")))
def test_parsed_rows_yaml_round_trip(note, value):
    # A note in parentheses after a version is kept as the page spells it, so it
    # carries arbitrary characters into the rows.
    page = fixture_bytes("matrix-4rows-asc.html").decode("utf-8")
    page = page.replace(f"{value}<", f"{value} ({html.escape(note)})<", 1)
    page = page.replace(f"{value} <", f"{value} ({html.escape(note)}) <", 1)
    try:
        rows = parse_bytes(page.encode("utf-8"))
    except ScraperError:
        return
    check_rows(rows)


BOUNDARY = re.compile(rb"</tr\s*>|</td\s*>|<br\s*/?>|</code>", re.IGNORECASE)


# Where to cut a page: ("anywhere", n) cuts at byte n, ("in table", n) at byte n of
# the table, ("boundary", n, shift) ``shift`` bytes after the n-th row, cell or line
# end. Numbers wrap around, so a cut stays valid while Hypothesis shrinks the page.
# Hypothesis favours small integers, so a plain offset would seldom land in the
# table, and cuts next to a boundary are the ones that leave rows which still parse.
CUTS = st.one_of(
    st.tuples(st.just("anywhere"), st.integers(0, 2**16)),
    st.tuples(st.just("in table"), st.integers(0, 2**16)),
    st.tuples(st.just("boundary"), st.integers(0, 2**10), st.integers(-2, 2)),
)


def cut_offset(page: GeneratedPage, cut: tuple, end: int) -> int:
    """Return the offset below ``end`` that ``cut``, drawn from CUTS, names."""
    content = page.content
    table_start = page.table_offset
    table_end = content.rindex(b"</table>") + len(b"</table>")
    if cut[0] == "anywhere":
        offset = cut[1] % end
    elif cut[0] == "in table":
        offset = table_start + cut[1] % (table_end - table_start)
    else:
        ends = [m.end() for m in BOUNDARY.finditer(content, table_start, table_end)]
        offset = ends[cut[1] % len(ends)] + cut[2]
    return min(max(offset, 0), end - 1)


def describe_cut(content: bytes, offset: int) -> str:
    return f"cut at byte {offset} of {len(content)}, after {content[:offset][-120:]!r}"


@FUZZ_NO_SHRINK
@given(page=st.one_of(clean_pages(), noisy_pages()), cut=CUTS)
def test_truncated_page_rows_full_or_error(page, cut):
    content = page.content
    closing_end = content.rindex(b"</html>") + len(b"</html>")
    offset = cut_offset(page, cut, closing_end)
    try:
        rows = parse_bytes(content[:offset])
    except ScraperError:
        return
    assert rows == EXPECTED[page.capture], describe_cut(content, offset)


@FUZZ_NO_SHRINK
@given(page=st.one_of(clean_pages(), noisy_pages()), cut=CUTS)
def test_truncated_page_with_closing_tags(page, cut):
    # A body cut short and followed by the page's last tags, as when a proxy ends the
    # response with its own footer. The table is then unclosed, so rows must not shrink.
    content = page.content
    table_end = content.rindex(b"</table>") + len(b"</table>")
    offset = cut_offset(page, cut, table_end)
    try:
        rows = parse_bytes(content[:offset] + b"</body>\n</html>\n")
    except ScraperError:
        return
    assert rows == EXPECTED[page.capture], describe_cut(content, offset)


# --- Diff ------------------------------------------------------------------------

VERSIONS = st.from_regex(r"\Av?[0-9]{1,3}(\.[0-9]{1,3}){1,3}(-rc\.[0-9])?\Z")
# Keys of a column read with parse: text can be any visible text, including digits
# that are not decimal digits, such as a superscript footnote mark.
ROW_KEYS = st.one_of(
    VERSIONS,
    st.text(max_size=12),
    st.sampled_from(("", "a9", "a10", "1.30\u00b2", "\u00b2", "v1.0", "1.0.0")),
)
LEAVES = st.one_of(VERSIONS, st.text(max_size=12))


@st.composite
def row_sets(draw) -> list[dict]:
    keys = draw(st.lists(ROW_KEYS, min_size=1, max_size=6, unique=True))
    return [
        {
            KEY: key,
            "dependencies": draw(
                st.dictionaries(st.from_regex(r"\A[a-z_]{1,12}\Z"), LEAVES, max_size=3)
            ),
        }
        for key in keys
    ]


@FUZZ
@given(rows=st.one_of(row_sets(), st.sampled_from([EXPECTED[CAPTURES[0]]])))
def test_compare_same_rows_empty(rows):
    assert not compare(rows, rows, KEY)


@FUZZ
@given(
    case=st.one_of(row_sets(), st.sampled_from([EXPECTED[CAPTURES[0]]])).flatmap(
        lambda rows: st.tuples(st.just(rows), st.permutations(rows))
    )
)
def test_compare_shuffled_rows_empty(case):
    rows, shuffled = case
    assert not compare(rows, shuffled, KEY)


@FUZZ
@given(rows=row_sets(), data=st.data())
def test_compare_finds_removed_row(rows, data):
    index = data.draw(st.integers(0, len(rows) - 1), label="index")
    remaining = rows[:index] + rows[index + 1 :]
    diff = compare(rows, remaining, KEY)
    assert diff.removed == [rows[index]]
    assert diff.added == []
    assert diff.changed == []


# --- YAML strings ----------------------------------------------------------------

# Strings that a YAML reader loads as another type or another string unless the
# writer quotes or escapes them.
YAML_LOOKALIKES = (
    "",
    " ",
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "n",
    "~",
    "null",
    "Null",
    "NULL",
    "true",
    "False",
    "1.30",
    "1.30.4",
    "01",
    "0o17",
    "0x1F",
    "1e3",
    "+1",
    "-0",
    ".inf",
    "-.Inf",
    ".NaN",
    "1_000",
    "12:30:45",
    "190:20:30",
    "2024-01-01",
    "2024-01-01T00:00:00Z",
    "<<",
    "=",
    "!!python/object:os.system",
    "&anchor",
    "*alias",
    "- x",
    "? x",
    "# x",
    "x # y",
    "'",
    '"',
    "%YAML",
    "@x",
    "`x",
    "|",
    ">",
    "{}",
    "[]",
    "a: b",
    "\t",
    "\n",
    " x ",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufeffx",
    "x\ufeff",
    "\x00",
    "\x7f",
    "\ud7ff",
)
YAML_STRINGS = st.one_of(
    st.text(),
    st.sampled_from(YAML_LOOKALIKES),
    st.builds(
        lambda count, tail: "x " * count + tail, st.integers(2040, 2060), st.text()
    ),
)


@FUZZ
@given(text=YAML_STRINGS)
def test_yaml_string_value_round_trip(text):
    assert yamlio.load(yamlio.dump({"v": text})) == {"v": text}


@FUZZ
@given(text=YAML_STRINGS)
def test_yaml_string_key_round_trip(text):
    assert yamlio.load(yamlio.dump({text: ["v", text]})) == {text: ["v", text]}
