"""Each fault page in fixtures/cases served over HTTP and run through `scraper sync`.

The expected rows are written out here by hand from each page's table.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import fixture_bytes, store_files, write_config

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
DASH_PINS = {
    "cni_version": "1.3.0",
    "containerd_version": "1.7.13-1",
    "crictl_version": "1.28.0",
}

ROW_1_29_4 = {"kubernetes_version": "1.29.4", "dependencies": PINS}
ROW_1_30_4 = {"kubernetes_version": "1.30.4", "dependencies": PINS}
ROW_1_31_0 = {"kubernetes_version": "1.31.0", "dependencies": PINS}
ROWS_ORDER = [
    {"kubernetes_version": "1.27.13", "dependencies": OLD_PINS},
    {"kubernetes_version": "1.28.9", "dependencies": OLD_PINS},
    ROW_1_29_4,
    ROW_1_30_4,
]

CASE_ROWS = {
    "br-without-spaces.html": [ROW_1_29_4, ROW_1_30_4],
    "literal-br-in-code.html": [ROW_1_30_4, ROW_1_31_0],
    "rowspan-colspan.html": [ROW_1_29_4, ROW_1_30_4, ROW_1_31_0],
    "no-thead.html": [ROW_1_29_4, ROW_1_30_4],
    "no-tbody.html": [ROW_1_29_4, ROW_1_30_4],
    "nested-table.html": [ROW_1_29_4, ROW_1_30_4],
    "nbsp.html": [ROW_1_29_4, ROW_1_30_4],
    "lookalike-dashes.html": [
        {"kubernetes_version": "1.30.4", "dependencies": DASH_PINS},
        {"kubernetes_version": "1.31.0-rc.1", "dependencies": DASH_PINS},
    ],
    "hidden-text.html": [ROW_1_29_4, ROW_1_30_4],
    "order-asc.html": ROWS_ORDER,
    "order-desc.html": ROWS_ORDER,
    "version-order.html": [
        {
            "kubernetes_version": "1.9.11",
            "dependencies": {
                "cni_version": "0.8.7",
                "containerd_version": "1.6.9",
                "crictl_version": "1.9.0",
            },
        },
        {
            "kubernetes_version": "1.10.13",
            "dependencies": {
                "cni_version": "0.8.7",
                "containerd_version": "1.6.9",
                "crictl_version": "1.10.0",
            },
        },
        ROW_1_31_0,
        {
            "kubernetes_version": "1.100.0",
            "dependencies": PINS,
            "notes": {"kubernetes_version": "preview \u2013 not GA"},
        },
    ],
}
UTF8_ROWS = [
    {
        "kubernetes_version": "1.29.4",
        "dependencies": PINS,
        "notes": {"dependencies.crictl_version": "\u2265 glibc 2.31"},
    },
    {"kubernetes_version": "1.30.4", "dependencies": DASH_PINS},
]

# Text that must appear nowhere in the stored rows or the `show` output.
ABSENT_TEXT = [
    pytest.param("literal-br-in-code.html", "<br", id="literal-br"),
    pytest.param("literal-br-in-code.html", "&lt;", id="escaped-br"),
    pytest.param("rowspan-colspan.html", "Supported", id="divider-row"),
    pytest.param("no-thead.html", "Kubernetes Version", id="no-thead-header"),
    pytest.param("no-tbody.html", "Kubernetes Version", id="no-tbody-header"),
    pytest.param("nbsp.html", "\u00a0", id="no-break-space"),
    pytest.param("lookalike-dashes.html", "\u2011", id="non-breaking-hyphen"),
    pytest.param("lookalike-dashes.html", "\u2013", id="en-dash"),
    pytest.param("hidden-text.html", "(copy)", id="screen-reader-text"),
    pytest.param("hidden-text.html", "0001.0029.0004", id="hidden-sort-key"),
    pytest.param("hidden-text.html", "font-weight", id="style-element"),
    pytest.param("hidden-text.html", "release notes", id="link-title"),
    pytest.param("br-without-spaces.html", "1.3.0containerd", id="glued-pins"),
]

VERSION_FILE = "capi-image-builder/versions/000001.yaml"


def show_rows(scraper) -> list[dict]:
    result = scraper("show", "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)["rows"]


def sync_case(workdir, serve_page, scraper, name: str, **reply):
    write_config(workdir, serve_page(f"cases/{name}", **reply))
    return scraper("sync")


def version_files(workdir) -> list[str]:
    return sorted(
        store_files(workdir / "snapshots" / "capi-image-builder" / "versions")
    )


@pytest.mark.parametrize("name", sorted(CASE_ROWS))
def test_case_rows(name, workdir, serve_page, scraper):
    result = sync_case(workdir, serve_page, scraper, name)
    assert result.code == 0, result.err
    assert show_rows(scraper) == CASE_ROWS[name]


@pytest.mark.parametrize(("name", "text"), ABSENT_TEXT)
def test_case_text_absent(name, text, workdir, serve_page, scraper):
    assert sync_case(workdir, serve_page, scraper, name).code == 0
    show_result = scraper("show", "--format", "json")
    snapshot = (workdir / "snapshots" / VERSION_FILE).read_text(encoding="utf-8")
    assert text not in show_result.out
    assert text not in snapshot


def test_nbsp_values_are_ascii(workdir, serve_page, scraper):
    assert sync_case(workdir, serve_page, scraper, "nbsp.html").code == 0
    rows = show_rows(scraper)
    assert json.dumps(rows, ensure_ascii=False).isascii()
    assert rows[1]["kubernetes_version"] == "1.30.4"


def test_nbsp_equals_plain_spaces(workdir, serve_page, scraper):
    nbsp_page = fixture_bytes("cases/nbsp.html")
    plain_page = nbsp_page.replace(b"&nbsp;", b" ").replace(b"&#160;", b" ")
    assert plain_page != nbsp_page
    write_config(workdir, serve_page(plain_page))
    first = scraper("sync")
    assert (
        first.out
        == "capi-image-builder: changed, version 1 (2 added, 0 removed, 0 changed)\n"
    )

    serve_page("cases/nbsp.html")
    second = scraper("sync")

    assert second.code == 0
    assert second.out == "capi-image-builder: unchanged, version 1\n"
    assert version_files(workdir) == ["000001.yaml"]


def test_order_change_is_unchanged(workdir, serve_page, scraper):
    assert sync_case(workdir, serve_page, scraper, "order-asc.html").code == 0
    serve_page("cases/order-desc.html")

    result = scraper("sync", "--exit-code")

    assert result.code == 0
    assert result.out == "capi-image-builder: unchanged, version 1\n"
    assert version_files(workdir) == ["000001.yaml"]


def test_utf8_without_charset(workdir, serve_page, scraper):
    result = sync_case(
        workdir, serve_page, scraper, "utf8-no-charset.html", charset=None
    )
    assert result.code == 0, result.err
    assert show_rows(scraper) == UTF8_ROWS


def test_utf8_charset_header_same(workdir, serve_page, scraper):
    assert (
        sync_case(
            workdir, serve_page, scraper, "utf8-no-charset.html", charset=None
        ).code
        == 0
    )
    serve_page("cases/utf8-no-charset.html", charset="utf-8")

    result = scraper("sync")

    assert result.out == "capi-image-builder: unchanged, version 1\n"
    assert show_rows(scraper) == UTF8_ROWS


def test_snapshot_keeps_en_dash(workdir, serve_page, scraper):
    assert sync_case(workdir, serve_page, scraper, "version-order.html").code == 0
    snapshot = (workdir / "snapshots" / VERSION_FILE).read_bytes()
    assert "preview \u2013 not GA".encode("utf-8") in snapshot
    assert b"\\u2013" not in snapshot


@pytest.fixture
def good_store(workdir, serve_page, scraper):
    """Sync order-asc.html into an empty store and return the store's files."""
    result = sync_case(workdir, serve_page, scraper, "order-asc.html")
    assert result.code == 0, result.err
    return store_files(workdir / "snapshots")


TABLE_MISSING = "matrix table not found"
EXPECTED_HEADERS = (
    "expected a table with headers 'Kubernetes Version', 'Dependencies Version'"
)

FAILING_CASES = [
    pytest.param(
        "cases/layout-changed.html",
        [TABLE_MISSING, EXPECTED_HEADERS, "found 0 tables"],
        id="layout-changed",
    ),
    pytest.param(
        "cases/moved-landing.html",
        [TABLE_MISSING, EXPECTED_HEADERS, "found 0 tables"],
        id="moved-landing",
    ),
    pytest.param(
        "cases/soft-404.html",
        [TABLE_MISSING, EXPECTED_HEADERS, "found 0 tables"],
        id="soft-404",
    ),
    pytest.param("cases/truncated-body.html", ["incomplete"], id="truncated-body"),
    pytest.param(
        "second-source/palette-cli-compatibility-matrix.html",
        [
            TABLE_MISSING,
            "found 2 tables",
            "table 1: first row ['Palette Release', 'Recommended CLI Version']",
            "table 2: first row ['Palette Release', 'CLI Version']",
        ],
        id="palette-cli-page",
    ),
]


@pytest.mark.parametrize(("fixture", "fragments"), FAILING_CASES)
def test_case_fails_loudly(
    fixture, fragments, good_store, workdir, serve_page, scraper
):
    serve_page(fixture)

    result = scraper("sync")

    assert result.code == 4
    assert "capi-image-builder" in result.err
    for fragment in fragments:
        assert fragment in result.err
    assert store_files(workdir / "snapshots") == good_store
    assert version_files(workdir) == ["000001.yaml"]


def test_layout_change_repeats(good_store, workdir, serve_page, scraper):
    serve_page("cases/layout-changed.html")

    first = scraper("sync")
    second = scraper("sync")

    assert first.code == 4
    assert second.code == 4
    assert TABLE_MISSING in second.err
    assert second.err == first.err
    assert store_files(workdir / "snapshots") == good_store


def test_failure_on_empty_store(workdir, serve_page, scraper):
    result = sync_case(workdir, serve_page, scraper, "soft-404.html")
    assert result.code == 4
    assert store_files(workdir / "snapshots") == {}
