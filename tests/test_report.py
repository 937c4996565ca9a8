"""`scraper report`: the static HTML page of the current matrix and its history."""

from __future__ import annotations

import base64
import os
import re
import stat
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import lxml.html
import pytest
import yaml

from scraper import __version__
from scraper.report import MAX_EXPANDED_ROWS, write_report
from scraper.store import Store
from tests.conftest import (
    FIXTURES,
    PAGE_PATH,
    SOURCE_COLUMNS,
    fixture_bytes,
    many_rows_page,
    write_config,
)

EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_3 = EXPECTED["captures"]["matrix-3rows-asc.html"]
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]
SOURCE = "capi-image-builder"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def edited_capture(version: bytes, old: bytes, new: bytes) -> bytes:
    """Return the 4-row capture with one text replaced inside the row of ``version``."""
    page = fixture_bytes("matrix-4rows-asc.html")
    row_start = page.index(b"<tr><td>" + version + b"</td>")
    row_end = page.index(b"</tr>", row_start)
    row = page[row_start:row_end]
    assert row.count(old) == 1
    return page[:row_start] + row.replace(old, new) + page[row_end:]


def pairs(row: dict) -> list[str]:
    return [f"{name} = {value}" for name, value in row["dependencies"].items()]


def cell_lines(cell) -> list[str]:
    """Return a cell's lines: one per ``li`` of a nested list, else its whole text."""
    items = cell.cssselect("li")
    if items:
        return [item.text_content() for item in items]
    return [cell.text_content()]


def table_cells(table) -> list[list]:
    """Return the body rows of ``table``, each a list of its cells' lines."""
    return [
        [cell_lines(cell) for cell in row.xpath("./th|./td")]
        for row in table.cssselect("tbody > tr")
    ]


def header_texts(table) -> list[str]:
    return [cell.text_content() for cell in table.cssselect("thead th")]


def load_page(path: Path):
    return lxml.html.fromstring(path.read_bytes())


def entry(page, number: int):
    (found,) = page.cssselect(f"li#source-{SOURCE}-v{number}")
    return found


def change_rows(version_entry, kind: str) -> list[list]:
    return [
        [cell_lines(cell) for cell in row.xpath("./th|./td")]
        for row in version_entry.cssselect(f"table.changes tr.{kind}")
    ]


@pytest.fixture
def history(workdir, serve_page, scraper):
    """A store synced from the real captures: version 1 (three rows), version 2 (four)."""
    write_config(workdir, serve_page("matrix-3rows-asc.html"))
    assert scraper("sync").code == 0
    serve_page("matrix-4rows-asc.html")
    assert scraper("sync").code == 0
    return scraper


def report(run, *args: str):
    result = run("report", "--out", "out", *args)
    assert result.code == 0, result.err
    return result


# The current matrix


def test_report_prints_page_path(history, workdir):
    result = report(history)
    assert result.out == "out/index.html\n"
    assert sorted(os.listdir(workdir / "out")) == ["index.html"]


def test_report_current_table_cells(history, workdir):
    report(history)
    page = load_page(workdir / "out" / "index.html")
    (table,) = page.cssselect(f"section#source-{SOURCE} table.matrix")
    assert header_texts(table) == ["Kubernetes Version", "Dependencies Version"]
    assert table_cells(table) == [
        [
            ["1.27.13"],
            [
                "cni_version = 1.2.0",
                "containerd_version = 1.7.13",
                "crictl_version = 1.26.0",
            ],
        ],
        [
            ["1.28.9"],
            [
                "cni_version = 1.2.0",
                "containerd_version = 1.7.13",
                "crictl_version = 1.26.0",
            ],
        ],
        [
            ["1.29.4"],
            [
                "cni_version = 1.3.0",
                "containerd_version = 1.7.13",
                "crictl_version = 1.28.0",
            ],
        ],
        [
            ["1.30.4"],
            [
                "cni_version = 1.3.0",
                "containerd_version = 1.7.13",
                "crictl_version = 1.28.0",
            ],
        ],
    ]
    assert table_cells(table) == [
        [[row["kubernetes_version"]], pairs(row)] for row in ROWS_4
    ]


def test_report_key_column_is_row_header(history, workdir):
    report(history)
    page = load_page(workdir / "out" / "index.html")
    keys = page.cssselect("table.matrix tbody th.key")
    assert [key.text_content() for key in keys] == [
        "1.27.13",
        "1.28.9",
        "1.29.4",
        "1.30.4",
    ]
    assert {key.get("scope") for key in keys} == {"row"}


def test_report_summary_names_latest(history, workdir, server):
    report(history)
    page = load_page(workdir / "out" / "index.html")
    (summary,) = page.cssselect("p.summary")
    fetched_at = Store(workdir / "snapshots", SOURCE).load_version(2)["fetched_at"]
    assert summary.text_content() == (
        f"Latest version 2 (2 versions stored), fetched {fetched_at} "
        f"from {server.url(PAGE_PATH)}"
    )


def test_report_notes_column(workdir, serve_page, scraper):
    capture = edited_capture(b"1.30.4", b"= 1.28.0", b"= 1.28.0 (needs glibc 2.31)")
    write_config(workdir, serve_page(capture))
    assert scraper("sync").code == 0
    report(scraper)
    page = load_page(workdir / "out" / "index.html")
    (table,) = page.cssselect("table.matrix")
    assert header_texts(table) == [
        "Kubernetes Version",
        "Dependencies Version",
        "notes",
    ]
    assert table_cells(table)[3] == [
        ["1.30.4"],
        [
            "cni_version = 1.3.0",
            "containerd_version = 1.7.13",
            "crictl_version = 1.28.0",
        ],
        ["dependencies.crictl_version = needs glibc 2.31"],
    ]
    assert table_cells(table)[0][2] == [""]


# The timeline


def test_report_timeline_newest_first(history, workdir, server):
    report(history)
    page = load_page(workdir / "out" / "index.html")
    store = Store(workdir / "snapshots", SOURCE)
    entries = page.cssselect("ol.timeline > li.version")
    assert [item.get("id") for item in entries] == [
        f"source-{SOURCE}-v2",
        f"source-{SOURCE}-v1",
    ]
    assert [item.cssselect("h4")[0].text_content() for item in entries] == [
        "Version 2",
        "Version 1",
    ]
    for item, number in zip(entries, (2, 1)):
        fetched_at = store.load_version(number)["fetched_at"]
        (fetched,) = item.cssselect("time.fetched")
        assert fetched.text_content() == fetched_at
        assert fetched.get("datetime") == fetched_at
        assert item.cssselect("code.url")[0].text_content() == server.url(PAGE_PATH)
        assert item.cssselect("code.final-url") == []
    assert entries[0].cssselect(".row-count")[0].text_content() == "4 rows"
    assert entries[1].cssselect(".row-count")[0].text_content() == "3 rows"
    assert (
        entries[0].cssselect(".previous")[0].text_content() == "compared with version 1"
    )
    assert entries[1].cssselect(".previous")[0].text_content() == (
        "first version, compared with an empty store"
    )


def test_report_timeline_added_rows(history, workdir):
    report(history)
    page = load_page(workdir / "out" / "index.html")
    newest, oldest = entry(page, 2), entry(page, 1)
    assert (
        newest.cssselect("summary")[0].text_content()
        == "+1 added -0 removed ~0 changed"
    )
    assert change_rows(newest, "added") == [[["+ added"], ["1.30.4"], pairs(ROWS_4[3])]]
    assert change_rows(newest, "removed") == []
    assert change_rows(newest, "changed") == []
    assert (
        oldest.cssselect("summary")[0].text_content()
        == "+3 added -0 removed ~0 changed"
    )
    assert change_rows(oldest, "added") == [
        [["+ added"], [row["kubernetes_version"]], pairs(row)] for row in ROWS_3
    ]
    assert header_texts(newest.cssselect("table.changes")[0]) == [
        "Change",
        "Kubernetes Version",
        "Dependencies Version",
    ]


def test_report_details_collapse_older(history, workdir):
    report(history)
    page = load_page(workdir / "out" / "index.html")
    assert entry(page, 2).cssselect("details")[0].get("open") is not None
    assert entry(page, 1).cssselect("details")[0].get("open") is None


def test_report_changed_pin(history, workdir, serve_page):
    serve_page(edited_capture(b"1.29.4", b"= 1.7.13", b"= 1.7.16"))
    assert (
        history("sync").out
        == f"{SOURCE}: changed, version 3 (0 added, 0 removed, 1 changed)\n"
    )
    report(history)
    page = load_page(workdir / "out" / "index.html")

    newest = entry(page, 3)
    assert (
        newest.cssselect("summary")[0].text_content()
        == "+0 added -0 removed ~1 changed"
    )
    assert change_rows(newest, "changed") == [
        [["~ changed"], ["1.29.4"], ["containerd_version = 1.7.13 → 1.7.16"]]
    ]
    old_values = newest.cssselect("tr.changed del.old")
    assert [value.text_content() for value in old_values] == ["1.7.13"]
    new_values = newest.cssselect("tr.changed ins.new")
    assert [value.text_content() for value in new_values] == ["1.7.16"]
    assert change_rows(newest, "added") == []

    (table,) = page.cssselect("table.matrix")
    assert table_cells(table)[2] == [
        ["1.29.4"],
        [
            "cni_version = 1.3.0",
            "containerd_version = 1.7.16",
            "crictl_version = 1.28.0",
        ],
    ]
    counts = newest.cssselect("summary .count")
    assert [count.get("class") for count in counts] == [
        "count added zero",
        "count removed zero",
        "count changed",
    ]


def test_report_removed_row(history, workdir, serve_page):
    serve_page("matrix-3rows-asc.html")
    assert history("sync").code == 0
    report(history)
    page = load_page(workdir / "out" / "index.html")
    newest = entry(page, 3)
    assert change_rows(newest, "removed") == [
        [["- removed"], ["1.30.4"], pairs(ROWS_4[3])]
    ]
    assert change_rows(newest, "added") == []
    assert len(page.cssselect("table.matrix tbody tr")) == 3


def test_report_field_appears(history, workdir, serve_page):
    serve_page(
        edited_capture(
            b"1.30.4",
            b" = 1.28.0",
            b" = 1.28.0 <br> <code>runc_version</code> = 1.1.12",
        )
    )
    assert history("sync").code == 0
    report(history)
    newest = entry(load_page(workdir / "out" / "index.html"), 3)
    assert change_rows(newest, "changed") == [
        [["~ changed"], ["1.30.4"], ["runc_version = (none) → 1.1.12"]]
    ]
    assert [cell.text_content() for cell in newest.cssselect("tr.changed .none")] == [
        "(none)"
    ]


def test_report_missing_version_noted(history, workdir, serve_page):
    serve_page(edited_capture(b"1.29.4", b"= 1.7.13", b"= 1.7.16"))
    assert history("sync").code == 0
    (workdir / "snapshots" / SOURCE / "versions" / "000002.yaml").unlink()
    report(history)
    page = load_page(workdir / "out" / "index.html")
    assert [item.get("id") for item in page.cssselect("li.version")] == [
        f"source-{SOURCE}-v3",
        f"source-{SOURCE}-v1",
    ]
    assert entry(page, 3).cssselect(".previous")[0].text_content() == (
        "compared with version 2, which is no longer stored"
    )


def test_report_large_first_version_collapsed(workdir, serve_page, scraper):
    write_config(workdir, serve_page(many_rows_page(MAX_EXPANDED_ROWS + 1, "matrix-3rows-asc.html")))
    assert scraper("sync").code == 0
    report(scraper)
    page = load_page(workdir / "out" / "index.html")
    assert entry(page, 1).cssselect("details")[0].get("open") is None
    assert len(entry(page, 1).cssselect("tr.added")) == MAX_EXPANDED_ROWS + 1
    assert len(page.cssselect("table.matrix tbody tr")) == MAX_EXPANDED_ROWS + 1


def test_report_small_first_version_open(workdir, serve_page, scraper):
    write_config(workdir, serve_page(many_rows_page(MAX_EXPANDED_ROWS, "matrix-3rows-asc.html")))
    assert scraper("sync").code == 0
    report(scraper)
    page = load_page(workdir / "out" / "index.html")
    assert entry(page, 1).cssselect("details")[0].get("open") is not None


# Generation time and version


def test_report_generated_time_and_version(history, workdir):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    report(history)
    after = datetime.now(timezone.utc)
    page = load_page(workdir / "out" / "index.html")
    (generated,) = page.cssselect("p.generated")
    (moment,) = generated.cssselect("time")
    stamp = moment.get("datetime")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert before <= datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= after
    assert generated.text_content() == f"Generated {stamp} by scraper {__version__}"
    assert (
        page.cssselect('meta[name="generator"]')[0].get("content")
        == f"scraper {__version__}"
    )


def test_report_given_time(history, workdir):
    config_sources = _sources(workdir)
    moment = datetime(2026, 12, 4, 2, 0, 3, tzinfo=timezone.utc)
    path = write_report(
        workdir / "snapshots", config_sources, workdir / "fixed", moment
    )
    assert path == workdir / "fixed" / "index.html"
    page = load_page(path)
    assert (
        page.cssselect("p.generated time")[0].text_content() == "2026-12-04T02:00:03Z"
    )


def _sources(workdir: Path):
    from scraper.config import load_config

    return load_config(workdir / "config.yaml").sources


# Escaping and self-containment


HOSTILE_KEY = '<script>alert("key")</script>'
HOSTILE_NAME = "<b>name</b>"
HOSTILE_VALUE = "\"'><img src=x onerror=alert(1)>"
HOSTILE_URL = 'https://evil.example/"><script>alert(1)</script>'
HOSTILE_OLD = "</del><script>steal()</script>"
HOSTILE_NEW = "<!-- --> &amp; </td></tr></table>"


@pytest.fixture
def hostile_history(history, workdir):
    """Add version 3, written through the store, whose values are HTML markup."""
    store = Store(workdir / "snapshots", SOURCE)
    document = store.load_version(2)
    row = {
        "kubernetes_version": HOSTILE_KEY,
        "dependencies": {HOSTILE_NAME: HOSTILE_VALUE},
    }
    change = {
        "key": "1.27.13",
        "fields": {
            "dependencies.cni_version": {"old": HOSTILE_OLD, "new": HOSTILE_NEW}
        },
    }
    document.update(
        version=3,
        url=HOSTILE_URL,
        final_url=HOSTILE_URL,
        rows=[*document["rows"], row],
        row_count=len(document["rows"]) + 1,
        diff={
            "previous_version": 2,
            "added": [row],
            "removed": [],
            "changed": [change],
        },
    )
    state = store.load_state()
    state["last_version"] = 3
    with store.locked(5):
        store.write_version(document, state)
    return history


def test_report_escapes_hostile_values(hostile_history, workdir):
    report(hostile_history)
    raw = (workdir / "out" / "index.html").read_text(encoding="utf-8")
    assert "<script" not in raw.lower()
    assert "<img" not in raw.lower()
    assert "&lt;script&gt;alert(&quot;key&quot;)&lt;/script&gt;" not in raw
    assert '&lt;script&gt;alert("key")&lt;/script&gt;' in raw
    page = lxml.html.fromstring(raw)
    assert page.cssselect("script") == []
    assert page.cssselect("img") == []
    (table,) = page.cssselect("table.matrix")
    assert table_cells(table)[4] == [
        [HOSTILE_KEY],
        [f"{HOSTILE_NAME} = {HOSTILE_VALUE}"],
    ]
    newest = entry(page, 3)
    assert change_rows(newest, "added") == [
        [["+ added"], [HOSTILE_KEY], [f"{HOSTILE_NAME} = {HOSTILE_VALUE}"]]
    ]
    assert change_rows(newest, "changed") == [
        [["~ changed"], ["1.27.13"], [f"cni_version = {HOSTILE_OLD} → {HOSTILE_NEW}"]]
    ]
    assert newest.cssselect("code.url")[0].text_content() == HOSTILE_URL
    assert len(page.cssselect("li.version")) == 3


def test_report_has_no_external_references(hostile_history, workdir):
    report(hostile_history)
    raw = (workdir / "out" / "index.html").read_text(encoding="utf-8")
    page = lxml.html.fromstring(raw)
    for tag in ("script", "link", "img", "iframe", "object", "embed", "base", "form"):
        assert page.cssselect(tag) == [], tag
    for element in page.iter():
        for name, value in element.attrib.items():
            assert not re.match(r"\s*(https?:|//|javascript:)", value, re.IGNORECASE), (
                name,
                value,
            )
            if name in ("href", "src", "action", "srcset", "poster", "data"):
                assert value.startswith("#"), (name, value)
    style = "".join(element.text_content() for element in page.cssselect("style"))
    assert "url(" not in style
    assert "@import" not in style
    assert "@font-face" not in style


def test_report_masks_url_secrets(history, workdir):
    store = Store(workdir / "snapshots", SOURCE)
    document = store.load_version(2)
    secret_url = "http://reader:hunter2@127.0.0.1/matrix?token=abc123&page=2"
    document.update(
        version=3,
        url=secret_url,
        final_url=secret_url,
        diff={
            "previous_version": 2,
            "added": [],
            "removed": [ROWS_4[3]],
            "changed": [],
        },
        rows=document["rows"][:3],
        row_count=3,
    )
    state = store.load_state()
    state["last_version"] = 3
    with store.locked(5):
        store.write_version(document, state)
    report(history)
    raw = (workdir / "out" / "index.html").read_text(encoding="utf-8")
    assert "hunter2" not in raw
    assert "abc123" not in raw
    page = lxml.html.fromstring(raw)
    assert entry(page, 3).cssselect("code.url")[0].text_content() == (
        "http://reader:***@127.0.0.1/matrix?token=***&page=2"
    )


# Several sources


@pytest.fixture
def two_sources(workdir, server, serve_page, scraper):
    """Two configured sources, both synced: capi-image-builder and second."""
    second_url = serve_page(
        "second-source/downloads-capi-image-builder.html", path="/second/"
    )
    extra = f"  - name: second\n    url: {second_url}\n{SOURCE_COLUMNS}"
    write_config(workdir, serve_page("matrix-3rows-asc.html"), extra_source=extra)
    assert scraper("sync").code == 0
    return scraper


def test_report_section_per_source(two_sources, workdir):
    report(two_sources)
    page = load_page(workdir / "out" / "index.html")
    sections = page.cssselect("main > section.source")
    assert [section.get("id") for section in sections] == [
        f"source-{SOURCE}",
        "source-second",
    ]
    links = page.cssselect("nav.sources a")
    assert [(link.get("href"), link.text_content()) for link in links] == [
        (f"#source-{SOURCE}", SOURCE),
        ("#source-second", "second"),
    ]
    first, second = (section.cssselect("table.matrix")[0] for section in sections)
    assert table_cells(first) == [
        [[row["kubernetes_version"]], pairs(row)] for row in ROWS_3
    ]
    assert table_cells(second) == [
        [[row["kubernetes_version"]], pairs(row)] for row in ROWS_4
    ]
    assert (
        page.cssselect("title")[0].text_content() == f"scraper report: {SOURCE}, second"
    )


def test_report_one_source_option(two_sources, workdir):
    report(two_sources, "--source", "second")
    page = load_page(workdir / "out" / "index.html")
    assert [section.get("id") for section in page.cssselect("section.source")] == [
        "source-second"
    ]
    assert page.cssselect("nav.sources") == []


def test_report_unknown_source(two_sources, workdir):
    result = two_sources("report", "--out", "out", "--source", "third")
    assert result.code == 2
    assert "unknown source 'third'" in result.err
    assert not (workdir / "out").exists()


# Errors and the output file


def test_report_missing_store(workdir, scraper):
    write_config(workdir, "http://127.0.0.1:9/")
    result = scraper("report", "--out", "out")
    assert result.code == 5
    assert result.out == ""
    assert f"source '{SOURCE}': store: " in result.err
    assert "no snapshots found: the store folder does not exist" in result.err
    assert f"run 'scraper sync --source {SOURCE}' first" in result.err
    assert not (workdir / "out").exists()


def test_report_empty_store(workdir, scraper):
    write_config(workdir, "http://127.0.0.1:9/")
    (workdir / "snapshots" / SOURCE / "versions").mkdir(parents=True)
    result = scraper("report", "--out", "out")
    assert result.code == 5
    assert "no versions stored yet" in result.err
    assert not (workdir / "out").exists()


def test_report_never_synced_source_left_out(workdir, serve_page, scraper):
    extra = f"  - name: second\n    url: http://127.0.0.1:9/\n{SOURCE_COLUMNS}"
    write_config(workdir, serve_page("matrix-3rows-asc.html"), extra_source=extra)
    assert scraper("sync", "--source", SOURCE).code == 0
    result = scraper("report", "--out", "out")
    assert result.code == 0, result.err
    assert "second: no versions stored yet; not in the report" in result.err
    page = (workdir / "out" / "index.html").read_text(encoding="utf-8")
    assert SOURCE in page
    assert "second" not in page


def test_report_named_never_synced_source_fails(workdir, serve_page, scraper):
    extra = f"  - name: second\n    url: http://127.0.0.1:9/\n{SOURCE_COLUMNS}"
    write_config(workdir, serve_page("matrix-3rows-asc.html"), extra_source=extra)
    assert scraper("sync", "--source", SOURCE).code == 0
    result = scraper("report", "--out", "out", "--source", "second")
    assert result.code == 5
    assert "source 'second'" in result.err


def test_report_no_source_synced_fails(workdir, scraper):
    extra = f"  - name: second\n    url: http://127.0.0.1:9/\n{SOURCE_COLUMNS}"
    write_config(workdir, "http://127.0.0.1:9/", extra_source=extra)
    result = scraper("report", "--out", "out")
    assert result.code == 5
    assert "no snapshots found" in result.err
    assert not (workdir / "out").exists()


def test_report_damaged_version_keeps_old_page(history, workdir):
    report(history)
    before = (workdir / "out" / "index.html").read_bytes()
    version = workdir / "snapshots" / SOURCE / "versions" / "000001.yaml"
    version.write_bytes(version.read_bytes()[:200])
    result = history("report", "--out", "out")
    assert result.code == 5
    assert "000001.yaml" in result.err
    assert (workdir / "out" / "index.html").read_bytes() == before
    assert sorted(os.listdir(workdir / "out")) == ["index.html"]


def test_report_replaces_page(history, workdir, serve_page):
    report(history)
    serve_page(edited_capture(b"1.29.4", b"= 1.7.13", b"= 1.7.16"))
    assert history("sync").code == 0
    report(history)
    page = load_page(workdir / "out" / "index.html")
    assert len(page.cssselect("li.version")) == 3
    assert sorted(os.listdir(workdir / "out")) == ["index.html"]


def test_report_creates_nested_folder(history, workdir):
    result = history("report", "--out", "a/b/c")
    assert result.code == 0, result.err
    assert (workdir / "a" / "b" / "c" / "index.html").is_file()


def test_report_out_is_file(history, workdir):
    (workdir / "taken").write_text("not a folder\n", encoding="utf-8")
    result = history("report", "--out", "taken")
    assert result.code == 2
    assert "--out names a file, not a folder" in result.err
    assert (workdir / "taken").read_text(encoding="utf-8") == "not a folder\n"


def test_report_out_empty_rejected(history, workdir):
    before = sorted(os.listdir(workdir))
    result = history("report", "--out", "")
    assert result.code == 2
    assert "--out is empty (give a folder for index.html" in result.err
    assert sorted(os.listdir(workdir)) == before


def test_report_out_symlinked_folder(history, workdir):
    (workdir / "site").mkdir()
    (workdir / "linked").symlink_to("site")
    result = history("report", "--out", "linked")
    assert result.code == 0, result.err
    assert result.out == "linked/index.html\n"
    assert (workdir / "linked").is_symlink()
    assert sorted(os.listdir(workdir / "site")) == ["index.html"]
    page = load_page(workdir / "site" / "index.html")
    assert len(page.cssselect("li.version")) == 2


def test_report_index_symlink_kept(history, workdir):
    (workdir / "out").mkdir()
    (workdir / "pages").mkdir()
    target = workdir / "pages" / "matrix.html"
    target.write_text("old page\n", encoding="utf-8")
    link = workdir / "out" / "index.html"
    link.symlink_to(os.path.join("..", "pages", "matrix.html"))
    report(history)
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("..", "pages", "matrix.html")
    page = load_page(target)
    assert len(page.cssselect("li.version")) == 2
    assert sorted(os.listdir(workdir / "out")) == ["index.html"]
    assert sorted(os.listdir(workdir / "pages")) == ["matrix.html"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_report_index_fifo_written_in_place(history, workdir):
    (workdir / "out").mkdir()
    fifo = workdir / "out" / "index.html"
    os.mkfifo(fifo)
    received = []

    def read_all() -> None:
        # Blocks until the report opens the FIFO for writing.
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    report(history)
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert received[0].startswith(b"<!DOCTYPE html>")
    assert received[0].endswith(b"</html>\n")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_report_out_required(history):
    with pytest.raises(SystemExit) as exit_info:
        history("report")
    assert exit_info.value.code == 2


def test_sync_does_not_import_report(workdir, serve_page, scraper, monkeypatch):
    monkeypatch.delitem(sys.modules, "scraper.report", raising=False)
    write_config(workdir, serve_page("matrix-3rows-asc.html"))
    assert scraper("sync").code == 0
    assert "scraper.report" not in sys.modules


# The page in a real browser


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def start_chromium(profile: Path):
    """Start Debian's headless Chromium through its chromedriver, never a downloaded one."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # The flags keep Chromium from calling Google's hosts for updates, sync or field
    # trials, because the test machines have no internet access.
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    # With a driver path given, Selenium skips Selenium Manager, which would
    # otherwise try to download a browser and driver.
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def save_full_screenshot(driver, path: Path) -> None:
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            },
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def visible_size(element) -> tuple[int, int]:
    assert element.is_displayed()
    size = element.size
    return size["width"], size["height"]


def test_report_in_headless_chromium(history, workdir, serve_page, tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()) and not in_ci():
        pytest.skip(
            f"{CHROMIUM} or {CHROMEDRIVER} is missing: install Debian's chromium and "
            "chromium-driver packages (CI installs them and never skips this test)"
        )
    from selenium.webdriver.common.by import By

    serve_page(edited_capture(b"1.29.4", b"= 1.7.13", b"= 1.7.16"))
    assert history("sync").code == 0
    report(history)
    page = workdir / "out" / "index.html"
    driver = start_chromium(tmp_path / "chromium-profile")
    try:
        driver.get(page.as_uri())
        assert driver.title == f"scraper report: {SOURCE}"

        matrix = driver.find_element(By.CSS_SELECTOR, "table.matrix")
        width, height = visible_size(matrix)
        assert width > 200
        assert height > 100
        cells = matrix.find_elements(By.CSS_SELECTOR, "tbody th.key")
        assert [cell.text for cell in cells] == [
            "1.27.13",
            "1.28.9",
            "1.29.4",
            "1.30.4",
        ]
        assert all(visible_size(cell)[1] > 0 for cell in cells)
        pins = matrix.find_elements(By.CSS_SELECTOR, "tbody tr:nth-child(3) li")
        assert [pin.text for pin in pins] == [
            "cni_version = 1.3.0",
            "containerd_version = 1.7.16",
            "crictl_version = 1.28.0",
        ]
        # One pin a line: each item sits below the one before it.
        tops = [pin.location["y"] for pin in pins]
        assert tops == sorted(tops)
        assert len(set(tops)) == 3

        entries = driver.find_elements(By.CSS_SELECTOR, "li.version")
        assert [item.find_element(By.TAG_NAME, "h4").text for item in entries] == [
            "Version 3",
            "Version 2",
            "Version 1",
        ]
        assert all(visible_size(item)[1] > 0 for item in entries)

        changed = driver.find_element(By.CSS_SELECTOR, "li.version tr.changed")
        assert visible_size(changed)[1] > 0
        assert [cell.text for cell in changed.find_elements(By.XPATH, "./th|./td")] == [
            "~ changed",
            "1.29.4",
            "containerd_version = 1.7.13 → 1.7.16",
        ]
        assert (
            changed.value_of_css_property("background-color")
            == "rgba(255, 248, 197, 1)"
        )
        old = changed.find_element(By.CSS_SELECTOR, "del.old")
        assert "line-through" in old.value_of_css_property("text-decoration")

        # Older versions start collapsed; a click on the summary opens them.
        oldest = entries[2]
        added = oldest.find_elements(By.CSS_SELECTOR, "tr.added")
        assert len(added) == 3
        assert not any(row.is_displayed() for row in added)
        oldest.find_element(By.TAG_NAME, "summary").click()
        assert all(row.is_displayed() for row in added)
        assert (
            added[0].value_of_css_property("background-color")
            == "rgba(218, 251, 225, 1)"
        )

        assert driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        assert driver.execute_script("return document.scripts.length") == 0
        assert (
            driver.execute_script(
                "return performance.getEntriesByType('resource').length"
            )
            == 0
        )

        screenshot = tmp_path / "report.png"
        save_full_screenshot(driver, screenshot)
    finally:
        driver.quit()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000
