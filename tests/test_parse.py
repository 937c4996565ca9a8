"""Unit tests of cell text extraction and table parsing on HTML strings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scraper.cells import cell_lines, cell_text
from scraper.charset import decode_html
from scraper.config import Column, FetchSettings, Source
from scraper.errors import ParseError, TableNotFoundError
from scraper.parse import parse_document, parse_page, sort_key
from tests.conftest import fixture_bytes

SOURCE = Source(
    name="capi-image-builder",
    url="http://127.0.0.1/matrix/",
    key="kubernetes_version",
    columns=(
        Column(
            header="Kubernetes Version", field="kubernetes_version", parse="version"
        ),
        Column(header="Dependencies Version", field="dependencies", parse="key_value"),
    ),
    fetch=FetchSettings(),
)
WHERE = "http://127.0.0.1/matrix/"

HEADER_ROW = "<tr><th>Kubernetes Version</th><th>Dependencies Version</th></tr>"
PINS_HTML = (
    "<code>cni_version</code> = 1.3.0 <br/> "
    "<code>containerd_version</code> = 1.7.13 <br/> "
    "<code>crictl_version</code> = 1.28.0"
)
PINS = {
    "cni_version": "1.3.0",
    "containerd_version": "1.7.13",
    "crictl_version": "1.28.0",
}
OLD_PINS = {
    "cni_version": "1.2.0",
    "containerd_version": "1.7.13",
    "crictl_version": "1.26.0",
}


def data_row(*cells: str) -> str:
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def table(*rows: str, header: str = HEADER_ROW, attributes: str = "") -> str:
    body = "".join(rows)
    return f"<table{attributes}><thead>{header}</thead><tbody>{body}</tbody></table>"


def page(*parts: str) -> str:
    return "<!doctype html><html><body>" + "".join(parts) + "</body></html>"


def parse(text: str, source: Source = SOURCE) -> list[dict]:
    return parse_page(text, source, WHERE)


def lines_of(cell_html: str) -> list[str]:
    """Return cell_lines() of a lone td that contains ``cell_html``."""
    document = parse_document(page(f"<table><tr><td>{cell_html}</td></tr></table>"))
    return cell_lines(document.xpath("//td")[0])


def string_leaves(value) -> list:
    """Return every leaf of a nest of dicts and lists."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in string_leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in string_leaves(item)]
    return [value]


# Cell text -------------------------------------------------------------------------

CELL_CASES = [
    pytest.param("a<br>b", ["a", "b"], id="br"),
    pytest.param("a<br/>b", ["a", "b"], id="br-self-closing"),
    pytest.param("a<BR>b", ["a", "b"], id="br-uppercase"),
    pytest.param("a <br/> b", ["a", "b"], id="br-with-spaces"),
    pytest.param("a&lt;br/&gt;b", ["a", "b"], id="literal-br-text"),
    pytest.param("a&lt;BR /&gt;b", ["a", "b"], id="literal-br-uppercase"),
    pytest.param(
        "<code>a = 1&lt;br/&gt;b = 2</code>",
        ["a = 1", "b = 2"],
        id="literal-br-in-code",
    ),
    pytest.param("<p>a</p><p>b</p>", ["a", "b"], id="paragraphs"),
    pytest.param("<div>a</div>b", ["a", "b"], id="div-then-text"),
    pytest.param("<ul><li>a</li><li>b</li></ul>", ["a", "b"], id="list-items"),
    pytest.param(
        "<code>cni_version</code> = 1.3.0", ["cni_version = 1.3.0"], id="code-markup"
    ),
    pytest.param("<strong>1.30</strong><em>.4</em>", ["1.30.4"], id="inline-markup"),
    pytest.param(
        '1.28.0<sup><a href="#fn1">1</a></sup>', ["1.28.0"], id="footnote-link"
    ),
    pytest.param("1.28.0<sup>*</sup>", ["1.28.0"], id="footnote-asterisk"),
    pytest.param("1.28.0<sup>[2]</sup>", ["1.28.0"], id="footnote-bracketed"),
    pytest.param(
        '1.28.0<sup><a data-footnote-ref href="/notes">3</a></sup>',
        ["1.28.0"],
        id="footnote-data-ref",
    ),
    pytest.param("1.\u200b28.0", ["1.28.0"], id="zero-width-space"),
    pytest.param("\ufeff1.28.0", ["1.28.0"], id="byte-order-mark"),
    pytest.param("1.28\u00ad.0", ["1.28.0"], id="soft-hyphen"),
    pytest.param("a\u2009=\u2009b", ["a = b"], id="thin-space"),
    pytest.param("a\u202f=\u202fb", ["a = b"], id="narrow-no-break-space"),
    pytest.param("a&nbsp;=&nbsp;&nbsp;b&#160;", ["a = b"], id="no-break-space"),
    pytest.param("<span hidden>0001</span>1.29.4", ["1.29.4"], id="hidden-attribute"),
    pytest.param(
        '<span style="display:none">x</span>1.29.4', ["1.29.4"], id="display-none"
    ),
    pytest.param(
        '<span style="color: red; display: none">x</span>1.29.4',
        ["1.29.4"],
        id="display-none-after-other-style",
    ),
    pytest.param(
        '<span style="visibility:hidden">x</span>1.29.4',
        ["1.29.4"],
        id="visibility-hidden",
    ),
    pytest.param(
        '1.29.4<span class="sr-only"> (copy)</span>', ["1.29.4"], id="sr-only"
    ),
    pytest.param(
        '1.29.4<span class="label visually-hidden">(copy)</span>',
        ["1.29.4"],
        id="visually-hidden",
    ),
    pytest.param("<style>.k{color:red}</style>1.29.4", ["1.29.4"], id="style-element"),
    pytest.param(
        "<script>var v = '9.9.9';</script>1.29.4", ["1.29.4"], id="script-element"
    ),
    pytest.param("<template>9.9.9</template>1.29.4", ["1.29.4"], id="template-element"),
    pytest.param(
        '<a href="https://example.com/v9.9.9" title="release 9.9.9">1.29.4</a>',
        ["1.29.4"],
        id="link-text-not-title",
    ),
    pytest.param(
        "<table><tr><td>cni_version</td><td>1.3.0</td></tr>"
        "<tr><td>crictl_version</td><td>1.28.0</td></tr></table>",
        ["cni_version = 1.3.0", "crictl_version = 1.28.0"],
        id="nested-two-column-table",
    ),
    pytest.param(" \n ", [], id="whitespace-only"),
]


@pytest.mark.parametrize(("cell_html", "expected"), CELL_CASES)
def test_cell_lines(cell_html, expected):
    assert lines_of(cell_html) == expected


def test_cell_text_joins_lines():
    document = parse_document(page("<table><tr><td>a<br>b<p>c</p></td></tr></table>"))
    assert cell_text(document.xpath("//td")[0]) == "a b c"


# Rows that parse ---------------------------------------------------------------------

DEPENDENCY_CASES = [
    pytest.param(PINS_HTML, PINS, id="br-with-spaces"),
    pytest.param(
        "cni_version = 1.3.0<br>containerd_version = 1.7.13<BR>crictl_version = 1.28.0",
        PINS,
        id="br-mixed-case",
    ),
    pytest.param(
        "<p>cni_version = 1.3.0</p><p>containerd_version = 1.7.13</p>"
        "<p>crictl_version = 1.28.0</p>",
        PINS,
        id="paragraphs",
    ),
    pytest.param(
        "<ul><li>cni_version = 1.3.0</li><li>containerd_version = 1.7.13</li>"
        "<li>crictl_version = 1.28.0</li></ul>",
        PINS,
        id="list-items",
    ),
    pytest.param(
        "<code>cni_version = 1.3.0&lt;br/&gt;containerd_version = 1.7.13&lt;br/&gt;"
        "crictl_version = 1.28.0</code>",
        PINS,
        id="literal-br-in-code",
    ),
    pytest.param(
        PINS_HTML + '<sup><a href="#fn1">1</a></sup>',
        PINS,
        id="footnote-link-after-pin",
    ),
    pytest.param(PINS_HTML + "<sup>*</sup>", PINS, id="footnote-asterisk-after-pin"),
    pytest.param(
        PINS_HTML + '<sup><a data-footnote-ref href="#user-content-fn-2">2</a></sup>',
        PINS,
        id="footnote-data-ref-after-pin",
    ),
    pytest.param(
        "cni_version = 1.3\u200b.0<br>containerd_version = \ufeff1.7.13<br>"
        "crictl_version = 1.28\u00ad.0",
        PINS,
        id="zero-width-characters",
    ),
    pytest.param(
        "cni_version\u2009=\u20091.3.0<br>containerd_version\u202f=\u202f1.7.13<br>"
        "crictl_version&nbsp;=&nbsp;1.28.0",
        PINS,
        id="unicode-spaces",
    ),
    pytest.param(
        PINS_HTML + "<span hidden>kubelet_version = 9.9.9</span>"
        '<span style="display:none"><br>cni_version = 9.9.9</span>',
        PINS,
        id="hidden-pins",
    ),
    pytest.param(
        "<table><tr><td>cni_version</td><td>1.3.0</td></tr>"
        "<tr><td>containerd_version</td><td>1.7.13</td></tr>"
        "<tr><td>crictl_version</td><td>1.28.0</td></tr></table>",
        PINS,
        id="nested-table",
    ),
    pytest.param(
        PINS_HTML + "<br/><code>kubelet_version</code> = 1.30.4",
        {**PINS, "kubelet_version": "1.30.4"},
        id="new-key-kept",
    ),
    pytest.param(
        "cni_version = 1.3.0<br>containerd_version = 1.7.13\u20131<br>"
        "crictl_version = 1.28.0",
        {**PINS, "containerd_version": "1.7.13-1"},
        id="en-dash-in-pin",
    ),
]


@pytest.mark.parametrize(("cell_html", "expected"), DEPENDENCY_CASES)
def test_dependency_cell(cell_html, expected):
    rows = parse(page(table(data_row("1.30.4", cell_html))))
    assert rows == [{"kubernetes_version": "1.30.4", "dependencies": expected}]


KEY_CASES = [
    pytest.param("1.30.4", "1.30.4", id="plain"),
    pytest.param("&nbsp;1.30.4&nbsp;", "1.30.4", id="no-break-spaces"),
    pytest.param("1.30.4\u200b", "1.30.4", id="zero-width-space"),
    pytest.param('1.30.4<sup><a href="#fn1">1</a></sup>', "1.30.4", id="footnote-link"),
    pytest.param("1.30.4<sup>*</sup>", "1.30.4", id="footnote-asterisk"),
    pytest.param(
        '<span style="display:none">0001.0030.0004</span>1.30.4',
        "1.30.4",
        id="sort-prefix",
    ),
    pytest.param(
        '<a href="https://example.com/v9.9.9" title="v9.9.9">1.30.4</a>',
        "1.30.4",
        id="link",
    ),
    pytest.param("1.31.0\u2013rc.1", "1.31.0-rc.1", id="en-dash"),
    pytest.param("1.31.0\u2212rc.1", "1.31.0-rc.1", id="minus-sign"),
    pytest.param("1.31.0\u2011rc.1", "1.31.0-rc.1", id="non-breaking-hyphen"),
    pytest.param("1.31.0&#8208;rc.1", "1.31.0-rc.1", id="hyphen-character"),
    pytest.param("v1.30.4", "v1.30.4", id="v-prefix"),
    pytest.param("1.30", "1.30", id="two-part"),
]


@pytest.mark.parametrize(("cell_html", "expected"), KEY_CASES)
def test_key_cell(cell_html, expected):
    rows = parse(page(table(data_row(cell_html, PINS_HTML))))
    assert rows == [{"kubernetes_version": expected, "dependencies": PINS}]


def test_two_part_versions_stay_strings():
    rows = parse(
        page(
            table(
                data_row("1.30", PINS_HTML),
                data_row("1.10", PINS_HTML),
                data_row("1.9", PINS_HTML),
            )
        )
    )
    assert [row["kubernetes_version"] for row in rows] == ["1.9", "1.10", "1.30"]


def test_every_value_is_string():
    rows = parse(
        page(
            table(
                data_row("1.30", "cni_version = 1.3<br>containerd_version = 2.0"),
                data_row("1.100.0 (preview)", "cni_version = 1.10 (beta)"),
            )
        )
    )
    leaves = string_leaves(rows)
    assert leaves == ["1.30", "1.3", "2.0", "1.100.0", "1.10", "beta", "preview"]
    assert all(type(leaf) is str for leaf in leaves)


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        pytest.param(["1.30", "1.10", "1.9"], ["1.9", "1.10", "1.30"], id="two-part"),
        pytest.param(
            ["1.100.0", "1.31.0", "1.10.13", "1.9.11"],
            ["1.9.11", "1.10.13", "1.31.0", "1.100.0"],
            id="three-part",
        ),
        pytest.param(
            ["1.31.0", "1.31.0-rc.1", "1.30.4"],
            ["1.30.4", "1.31.0-rc.1", "1.31.0"],
            id="pre-release",
        ),
    ],
)
def test_sort_key_orders_numerically(versions, expected):
    assert sorted(versions, key=sort_key) == expected


def test_rows_sorted_by_version():
    rows = parse(
        page(
            table(
                data_row("1.100.0", PINS_HTML),
                data_row("1.9.11", PINS_HTML),
                data_row("1.31.0", PINS_HTML),
                data_row("1.10.13", PINS_HTML),
            )
        )
    )
    assert [row["kubernetes_version"] for row in rows] == [
        "1.9.11",
        "1.10.13",
        "1.31.0",
        "1.100.0",
    ]


def test_note_kept_under_notes():
    rows = parse(
        page(
            table(
                data_row(
                    "1.100.0 (preview \u2013 not GA)",
                    PINS_HTML.replace("= 1.28.0", "= 1.28.0 (\u2265 glibc 2.31)"),
                )
            )
        )
    )
    assert rows == [
        {
            "kubernetes_version": "1.100.0",
            "dependencies": PINS,
            "notes": {
                "dependencies.crictl_version": "\u2265 glibc 2.31",
                "kubernetes_version": "preview \u2013 not GA",
            },
        }
    ]


# Table structure ---------------------------------------------------------------------


def test_divider_row_skipped():
    rows = parse(
        page(
            table(
                '<tr><td colspan="2"><strong>Supported</strong></td></tr>',
                data_row("1.30.4", PINS_HTML),
                '<tr><th colspan="2">Deprecated</th></tr>',
                data_row("1.27.13", PINS_HTML),
            )
        )
    )
    assert rows == [
        {"kubernetes_version": "1.27.13", "dependencies": PINS},
        {"kubernetes_version": "1.30.4", "dependencies": PINS},
    ]


def test_rowspan_copies_cell():
    rows = parse(
        page(
            table(
                f'<tr><td>1.31.0</td><td rowspan="2">{PINS_HTML}</td></tr>',
                "<tr><td>1.30.4</td></tr>",
            )
        )
    )
    assert rows == [
        {"kubernetes_version": "1.30.4", "dependencies": PINS},
        {"kubernetes_version": "1.31.0", "dependencies": PINS},
    ]


def test_rowspan_zero_spans_to_end():
    rows = parse(
        page(
            table(
                f'<tr><td>1.31.0</td><td rowspan="0">{PINS_HTML}</td></tr>',
                "<tr><td>1.30.4</td></tr>",
                "<tr><td>1.29.4</td></tr>",
            )
        )
    )
    assert rows == [
        {"kubernetes_version": "1.29.4", "dependencies": PINS},
        {"kubernetes_version": "1.30.4", "dependencies": PINS},
        {"kubernetes_version": "1.31.0", "dependencies": PINS},
    ]


@pytest.mark.parametrize(
    "markup",
    [
        pytest.param(
            "<table>" + HEADER_ROW + data_row("1.30.4", PINS_HTML) + "</table>",
            id="no-thead-no-tbody",
        ),
        pytest.param(
            "<table><tbody>"
            + HEADER_ROW
            + data_row("1.30.4", PINS_HTML)
            + "</tbody></table>",
            id="header-in-tbody",
        ),
        pytest.param(
            "<table><tbody><tr><th></th><th></th></tr>"
            + HEADER_ROW
            + data_row("1.30.4", PINS_HTML)
            + "</tbody></table>",
            id="empty-row-above-header",
        ),
        pytest.param(
            table(data_row("1.30.4", PINS_HTML), HEADER_ROW), id="repeated-header-row"
        ),
    ],
)
def test_table_layouts(markup):
    assert parse(page(markup)) == [
        {"kubernetes_version": "1.30.4", "dependencies": PINS}
    ]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(
            "<tr><th>kubernetes version</th><th>DEPENDENCIES VERSION</th></tr>",
            id="case",
        ),
        pytest.param(
            "<tr><th>  Kubernetes \n  Version </th>"
            "<th>Dependencies&nbsp;Version</th></tr>",
            id="whitespace",
        ),
        pytest.param(
            "<tr><th><strong>Kubernetes</strong> Version</th>"
            "<th>Dependencies Version</th></tr>",
            id="markup",
        ),
    ],
)
def test_header_match_is_loose(header):
    rows = parse(page(table(data_row("1.30.4", PINS_HTML), header=header)))
    assert rows == [{"kubernetes_version": "1.30.4", "dependencies": PINS}]


def test_columns_in_any_order():
    header = "<tr><th>Dependencies Version</th><th>Kubernetes Version</th></tr>"
    rows = parse(page(table(data_row(PINS_HTML, "1.30.4"), header=header)))
    assert rows == [{"kubernetes_version": "1.30.4", "dependencies": PINS}]


def test_other_tables_ignored():
    other = (
        "<table><thead><tr><th>Palette Release</th><th>CLI Version</th></tr></thead>"
        "<tbody><tr><td>4.6.12</td><td>v4.6.9</td></tr></tbody></table>"
    )
    rows = parse(page(other, table(data_row("1.30.4", PINS_HTML)), other))
    assert rows == [{"kubernetes_version": "1.30.4", "dependencies": PINS}]


# Selector ----------------------------------------------------------------------------

TWO_MATRICES = page(
    table(data_row("1.29.4", PINS_HTML), attributes=' id="old"'),
    '<div class="current">',
    table(data_row("1.30.4", PINS_HTML), attributes=' id="new"'),
    "</div>",
)


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param("table#new", id="table"),
        pytest.param("#new tr:last-child", id="row-inside"),
        pytest.param("#new td", id="cells-inside"),
        pytest.param("div.current", id="element-around"),
    ],
)
def test_selector_picks_table(selector):
    rows = parse(TWO_MATRICES, replace(SOURCE, selector=selector))
    assert rows == [{"kubernetes_version": "1.30.4", "dependencies": PINS}]


def test_selector_tbody_missing():
    markup = page("<table>" + HEADER_ROW + data_row("1.30.4", PINS_HTML) + "</table>")
    with pytest.raises(TableNotFoundError) as raised:
        parse(markup, replace(SOURCE, selector="table > tbody > tr"))
    assert "'table > tbody > tr' matched 0 elements" in str(raised.value)


def test_selector_matching_nothing():
    with pytest.raises(TableNotFoundError) as raised:
        parse(TWO_MATRICES, replace(SOURCE, selector="table#missing"))
    assert "'table#missing' matched 0 elements" in str(raised.value)


# Errors ------------------------------------------------------------------------------

PARSE_ERRORS = [
    pytest.param(
        table(data_row("1.30.4", PINS_HTML), data_row("1.30.4", PINS_HTML)),
        ["duplicate kubernetes_version '1.30.4'", "data rows 1 and 2"],
        id="duplicate-key-row",
    ),
    pytest.param(
        table(data_row("1.30.4", PINS_HTML), data_row("1.30.4\u00a0", PINS_HTML)),
        ["duplicate kubernetes_version '1.30.4'", "data rows 1 and 2"],
        id="duplicate-key-after-normalising",
    ),
    pytest.param(table(), ["header row but no data rows"], id="empty-table"),
    pytest.param(
        table("<tr><td></td><td></td></tr>"),
        ["header row but no data rows"],
        id="only-empty-rows",
    ),
    pytest.param(
        table(data_row("latest", PINS_HTML)),
        [
            "data row 1 ('latest')",
            "column 'Kubernetes Version'",
            "'latest' is not a version",
        ],
        id="key-not-version",
    ),
    pytest.param(
        table(data_row("1.30", PINS_HTML), data_row("1.30.x", PINS_HTML)),
        [
            "data row 2 ('1.30.x')",
            "column 'Kubernetes Version'",
            "'1.30.x' is not a version",
        ],
        id="key-wildcard",
    ),
    pytest.param(
        table(data_row("", PINS_HTML)),
        ["data row 1", "column 'Kubernetes Version'", "the cell is empty"],
        id="empty-key-cell",
    ),
    pytest.param(
        table(data_row("1.30.4", "cni_version = 1.3.0containerd_version = 1.7.13")),
        [
            "data row 1 ('1.30.4')",
            "column 'Dependencies Version'",
            "cni_version",
            "'1.3.0containerd_version = 1.7.13' is not a version",
        ],
        id="pin-glued-to-next",
    ),
    pytest.param(
        table(data_row("1.30.4", "cni_version = latest")),
        [
            "data row 1 ('1.30.4')",
            "column 'Dependencies Version'",
            "'latest' is not a version",
        ],
        id="pin-not-version",
    ),
    pytest.param(
        table(data_row("1.30.4", "cni 1.3.0, containerd 1.7.13")),
        [
            "data row 1 ('1.30.4')",
            "column 'Dependencies Version'",
            "expected 'key = value' lines, found 'cni 1.3.0, containerd 1.7.13'",
        ],
        id="not-key-value-lines",
    ),
    pytest.param(
        table(data_row("1.30.4", "cni_version = 1.3.0<br>cni_version = 1.3.1")),
        [
            "data row 1 ('1.30.4')",
            "column 'Dependencies Version'",
            "'cni_version' appears twice",
        ],
        id="duplicate-key-in-cell",
    ),
    pytest.param(
        table(
            data_row(
                "1.30.4", "<table><tr><td>cni</td><td>1.3.0</td><td>x</td></tr></table>"
            )
        ),
        [
            "data row 1 ('1.30.4')",
            "column 'Dependencies Version'",
            "found 'cni 1.3.0 x'",
        ],
        id="nested-three-column-table",
    ),
    pytest.param(
        table(data_row("1.30.4", PINS_HTML), data_row("1.29.4")),
        ["data row 2", "'1.29.4'", "expected 2"],
        id="missing-cell",
    ),
    pytest.param(
        table(data_row("1.30.4", PINS_HTML), data_row(PINS_HTML)),
        ["data row 2", "cni_version = 1.3.0", "expected 2"],
        id="missing-key-cell",
    ),
    pytest.param(
        table(data_row("1.30.4", PINS_HTML, "extra")),
        ["data row 1", "'extra'", "has 3 cells, expected 2"],
        id="extra-cell",
    ),
    pytest.param(
        table(data_row("1.30.4", "")),
        ["data row 1 ('1.30.4')", "column 'Dependencies Version'", "the cell is empty"],
        id="empty-dependency-cell",
    ),
    pytest.param(
        table(
            data_row("1.30.4", '<span style="display:none">cni_version = 1.3.0</span>')
        ),
        ["data row 1 ('1.30.4')", "column 'Dependencies Version'", "the cell is empty"],
        id="only-hidden-pins",
    ),
    pytest.param(
        "<table>"
        + data_row("1.28.9", PINS_HTML)
        + HEADER_ROW
        + data_row("1.30.4", PINS_HTML)
        + "</table>",
        ["row 1 above the header row", "'1.28.9'"],
        id="data-above-header",
    ),
    pytest.param(
        table(data_row("1.30.4", "cni_version = 1.3.\ufffd")),
        [
            "data row 1 ('1.30.4')",
            "column 'Dependencies Version'",
            "undecodable bytes in 'cni_version = 1.3.\ufffd'",
        ],
        id="replacement-character",
    ),
    pytest.param(
        table(data_row("1.30.4", "cni_version = 1.3.0&#x1b;[31m")),
        [
            "data row 1 ('1.30.4')",
            "column 'Dependencies Version'",
            "control character U+001B in 'cni_version = 1.3.0\\x1b[31m'",
        ],
        id="escape-in-pins",
    ),
    pytest.param(
        table(f'<tr><td colspan="2">1.30.4</td><td>{PINS_HTML}</td></tr>'),
        ["data row 1", "has 3 cells, expected 2"],
        id="key-colspan-both-columns",
    ),
    # A full-width cell that starts with a version is a data row squeezed into one
    # cell, not a section label such as "Supported", so skipping it would lose a row.
    pytest.param(
        table(
            data_row("1.29.4", PINS_HTML),
            '<tr><td colspan="2">1.30.4 cni_version = 1.3.0 '
            "containerd_version = 1.7.13 crictl_version = 1.28.0</td></tr>",
        ),
        ["data row 2", "1.30.4 cni_version = 1.3.0"],
        id="full-width-data-row",
    ),
]


@pytest.mark.parametrize(("markup", "fragments"), PARSE_ERRORS)
def test_parse_error(markup, fragments):
    with pytest.raises(ParseError) as raised:
        parse(page(markup))
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message


def test_undecodable_bytes_rejected():
    body = page(table(data_row("1.30.4", "cni_version = 1.3.0"))).encode("utf-8")
    body = body.replace(b"1.3.0", b"1.3.\xff")
    text = decode_html(body, "text/html; charset=utf-8")[0]
    with pytest.raises(ParseError) as raised:
        parse(text)
    assert "undecodable bytes" in str(raised.value)
    assert "column 'Dependencies Version'" in str(raised.value)


TEXT_SOURCE = replace(
    SOURCE,
    columns=(
        SOURCE.columns[0],
        Column(header="Dependencies Version", field="dependencies", parse="text"),
    ),
)


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("RED&#x1b;[31m", "U+001B"),
        ("title&#x1b;]0;owned&#x07;", "U+001B"),
        ("bell&#x07;", "U+0007"),
        ("backspace&#x08;x", "U+0008"),
        ("delete&#x7f;", "U+007F"),
        # libxml2 reads the reference &#x9b; as windows-1252's "›", so the C1
        # character is written as itself.
        ("csi\x9b31m", "U+009B"),
        ("raw \x1b[0m escape", "U+001B"),
        # str.strip() removes these at the ends of a line, so they are tested there.
        ("v4.6.9\x1c", "U+001C"),
        ("\x1fv4.6.9", "U+001F"),
        ("v4.6.9 \x85", "U+0085"),
    ],
)
def test_control_character_rejected(cell, code):
    with pytest.raises(ParseError) as raised:
        parse(page(table(data_row("1.30.4", cell))), TEXT_SOURCE)
    message = str(raised.value)
    assert f"control character {code}" in message
    assert "column 'Dependencies Version'" in message


@pytest.mark.parametrize("character", ["\x1c", "\x1d", "\x1e", "\x1f", "\x85"])
def test_control_character_at_key_end_rejected(character):
    with pytest.raises(ParseError) as raised:
        parse(page(table(data_row(f"1.27.13{character}", PINS_HTML))))
    assert f"control character U+{ord(character):04X}" in str(raised.value)


def test_line_separators_are_spaces():
    rows = parse(page(table(data_row("1.30.4\u2028", "v4.6.9\u2029build"))), TEXT_SOURCE)
    assert rows == [{"kubernetes_version": "1.30.4", "dependencies": "v4.6.9 build"}]


def test_text_cell_keeps_printable():
    rows = parse(page(table(data_row("1.30.4", "v4.6.9 (≥ glibc 2.31)\tbuild"))), TEXT_SOURCE)
    assert rows == [
        {"kubernetes_version": "1.30.4", "dependencies": "v4.6.9 (≥ glibc 2.31) build"}
    ]


OTHER_TABLE = (
    "<table><thead><tr><th>Palette Release</th><th>CLI Version</th></tr></thead>"
    "<tbody><tr><td>4.6.12</td><td>v4.6.9</td></tr></tbody></table>"
)
EXPECTED_HEADERS = (
    "expected a table with headers 'Kubernetes Version', 'Dependencies Version'"
)

TABLE_ERRORS = [
    pytest.param(
        page(
            table(data_row("1.29.4", PINS_HTML)), table(data_row("1.30.4", PINS_HTML))
        ),
        ["2 tables have the headers", "table 1:", "table 2:", "table.selector"],
        id="two-matching-tables",
    ),
    pytest.param(
        page("<p>The page you were looking for may have moved.</p>"),
        ["matrix table not found", EXPECTED_HEADERS, "found 0 tables"],
        id="zero-tables",
    ),
    pytest.param(
        page(OTHER_TABLE),
        [
            "matrix table not found",
            "found 1 tables",
            "'Palette Release', 'CLI Version'",
        ],
        id="other-table-only",
    ),
    pytest.param(
        page(
            table(
                data_row("1.30.4", PINS_HTML, "GA"),
                header="<tr><th>Kubernetes Version</th><th>Dependencies Version</th>"
                "<th>Notes</th></tr>",
            )
        ),
        [
            "matrix table not found",
            "'Kubernetes Version', 'Dependencies Version', 'Notes'",
        ],
        id="column-gained",
    ),
    pytest.param(
        page(table(data_row("1.30.4"), header="<tr><th>Kubernetes Version</th></tr>")),
        ["matrix table not found", "first row ['Kubernetes Version']"],
        id="column-lost",
    ),
    pytest.param(
        page(
            table(
                data_row("1.30.4", PINS_HTML),
                header="<tr><th>K8s Version</th><th>Dependencies Version</th></tr>",
            )
        ),
        ["matrix table not found", "'K8s Version', 'Dependencies Version'"],
        id="header-renamed",
    ),
    pytest.param(
        page(
            '<div role="table"><div role="row">'
            '<span role="columnheader">Kubernetes Version</span>'
            '<span role="columnheader">Dependencies Version</span></div></div>'
        ),
        ["matrix table not found", "found 0 tables"],
        id="aria-table",
    ),
]


@pytest.mark.parametrize(("markup", "fragments"), TABLE_ERRORS)
def test_table_not_found(markup, fragments):
    with pytest.raises(TableNotFoundError) as raised:
        parse(markup)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message


def test_error_names_source_and_page():
    with pytest.raises(TableNotFoundError) as raised:
        parse(page("<p>moved</p>"))
    assert raised.value.source == "capi-image-builder"
    assert raised.value.where == WHERE


def test_incomplete_page_rejected():
    markup = (
        "<html><body>"
        + table(data_row("1.30.4", PINS_HTML))[: -len("</tbody></table>")]
    )
    with pytest.raises(ParseError) as raised:
        parse(markup)
    assert "incomplete" in str(raised.value)


# Real capture ------------------------------------------------------------------------


def test_full_site_capture():
    content = fixture_bytes("matrix-4rows-desc-preview-full-site.html")
    text = decode_html(content, "text/html; charset=utf-8")[0]
    assert parse(text) == [
        {"kubernetes_version": "1.27.13", "dependencies": OLD_PINS},
        {"kubernetes_version": "1.28.9", "dependencies": OLD_PINS},
        {"kubernetes_version": "1.29.4", "dependencies": PINS},
        {"kubernetes_version": "1.30.4", "dependencies": PINS},
    ]


@pytest.mark.parametrize("depth", [300, 5000])
def test_deep_nesting_rejected(depth):
    # libxml2 stops building the tree past 256 levels without raising; the rows
    # after that point would silently vanish.
    page = fixture_bytes("matrix-4rows-asc.html").decode("utf-8")
    deep = "<span>" * depth + "1.30.4" + "</span>" * depth
    assert page.count("<td>1.30.4</td>") == 1
    with pytest.raises(ParseError) as error:
        parse(page.replace("<td>1.30.4</td>", f"<td>{deep}</td>"))
    assert "Excessive depth" in str(error.value)


def test_moderate_nesting_parses():
    page = fixture_bytes("matrix-4rows-asc.html").decode("utf-8")
    deep = "<span>" * 100 + "1.30.4" + "</span>" * 100
    rows = parse(page.replace("<td>1.30.4</td>", f"<td>{deep}</td>"))
    assert [row["kubernetes_version"] for row in rows][-1] == "1.30.4"
