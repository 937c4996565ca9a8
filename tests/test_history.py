"""Queries over a store's past, kept captures and `scraper reparse`.

Stores are built by syncing real captures from a local server. Fetch times are then
set by rewriting the version files, with their checksums, so dates are exact.
"""

from __future__ import annotations

import gzip
import json
import re

import pytest
import yaml

from scraper import yamlio
from scraper.store import Store, checksum
from tests.conftest import FIXTURES, PAGE_PATH, fixture_bytes, store_files, write_config
from tests.httpserver import Reply

SOURCE = "capi-image-builder"
EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]

ROW_1_28_9 = (
    b"<tr><td>1.28.9</td><td><code>cni_version</code> = 1.2.0 <br> "
    b"<code>containerd_version</code> = 1.7.13 <br> <code>crictl_version</code> = 1.26.0"
    b"</td></tr>"
)
# Fetch times given to versions 1 to 4 of the history built below.
FETCHED_AT = [
    "2026-03-01T02:00:00Z",
    "2026-04-15T02:00:00Z",
    "2026-05-01T02:00:00Z",
    "2026-06-10T02:00:00Z",
]


def page_4rows() -> bytes:
    page = fixture_bytes("matrix-4rows-asc.html")
    assert page.count(ROW_1_28_9) == 1
    return page


def page_pin_changed() -> bytes:
    """The 4-row capture with containerd 1.7.16 for 1.28.9."""
    changed = ROW_1_28_9.replace(b"1.7.13", b"1.7.16")
    return page_4rows().replace(ROW_1_28_9, changed)


def page_row_removed() -> bytes:
    """The 4-row capture without the 1.28.9 row."""
    return page_4rows().replace(ROW_1_28_9, b"")


def sync_page(server, scraper, body: bytes) -> None:
    server.route(PAGE_PATH, Reply.html(body))
    result = scraper("sync")
    assert result.code == 0, result.err


def set_fetched_at(workdir, number: int, moment: str) -> None:
    """Rewrite version ``number`` (and latest.yaml if it is the newest) with a new time."""
    store = Store(workdir / "snapshots", SOURCE)
    document = store.load_version(number)
    document["fetched_at"] = moment
    document["checksum"] = checksum(document)
    data = yamlio.dump(document).encode("utf-8")
    is_latest = store.latest_path.read_bytes() == store.version_path(number).read_bytes()
    store.version_path(number).write_bytes(data)
    if is_latest:
        store.latest_path.write_bytes(data)


@pytest.fixture
def history(workdir, server, scraper):
    """A store with four versions: 3 rows, 1.30.4 added, a pin changed, 1.28.9 removed."""
    write_config(workdir, server.url(PAGE_PATH))
    sync_page(server, scraper, fixture_bytes("matrix-3rows-asc.html"))
    sync_page(server, scraper, page_4rows())
    sync_page(server, scraper, page_pin_changed())
    sync_page(server, scraper, page_row_removed())
    for number, moment in enumerate(FETCHED_AT, start=1):
        set_fetched_at(workdir, number, moment)
    return server


# history --key


def test_key_history_text(history, scraper):
    result = scraper("history", "--key", "1.28.9")
    assert result.code == 0, result.err
    assert result.out == (
        f"{SOURCE}: history of 1.28.9\n"
        "version 1  2026-03-01T02:00:00Z  added\n"
        "  + dependencies.cni_version: 1.2.0\n"
        "  + dependencies.containerd_version: 1.7.13\n"
        "  + dependencies.crictl_version: 1.26.0\n"
        "version 3  2026-05-01T02:00:00Z  changed\n"
        "  ~ dependencies.containerd_version: 1.7.13 -> 1.7.16\n"
        "version 4  2026-06-10T02:00:00Z  removed\n"
        "  - dependencies.cni_version: 1.2.0\n"
        "  - dependencies.containerd_version: 1.7.16\n"
        "  - dependencies.crictl_version: 1.26.0\n"
    )


def test_key_history_json(history, scraper):
    result = scraper("history", "--key", "1.30.4", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "source": SOURCE,
        "key": "1.30.4",
        "not_stored": [],
        "present_in_oldest": None,
        "changes": [
            {
                "version": 2,
                "fetched_at": "2026-04-15T02:00:00Z",
                "change": "added",
                "fields": {
                    "dependencies.cni_version": {"old": None, "new": "1.3.0"},
                    "dependencies.containerd_version": {"old": None, "new": "1.7.13"},
                    "dependencies.crictl_version": {"old": None, "new": "1.28.0"},
                },
            }
        ],
    }


def test_key_history_leading_v(history, scraper):
    result = scraper("history", "--key", "v1.28.9")
    assert result.code == 0, result.err
    assert result.out.startswith(f"{SOURCE}: history of 1.28.9\n")


def test_key_history_unknown_key(history, scraper):
    result = scraper("history", "--key", "1.31.0")
    assert result.code == 2
    assert "no stored version has a row with kubernetes_version '1.31.0'" in result.err
    assert "rows in the latest version: 1.27.13, 1.29.4, 1.30.4" in result.err
    assert result.out == ""


def test_key_history_after_prune(history, workdir, scraper):
    # With the version that added it deleted, the row's history starts from the
    # state the oldest stored version records, and names the missing versions.
    store = Store(workdir / "snapshots", SOURCE)
    store.delete_version(1)
    result = scraper("history", "--key", "1.27.13")
    assert result.code == 0, result.err
    assert result.out == (
        f"{SOURCE}: history of 1.27.13\n"
        "  versions not stored (pruned or deleted): 1; changes made in them are not shown\n"
        "version 2  2026-04-15T02:00:00Z  present in the oldest stored version\n"
        "  = dependencies.cni_version: 1.2.0\n"
        "  = dependencies.containerd_version: 1.7.13\n"
        "  = dependencies.crictl_version: 1.26.0\n"
        "  no change in the stored versions\n"
    )


def test_key_history_after_prune_json(history, workdir, scraper):
    store = Store(workdir / "snapshots", SOURCE)
    store.delete_version(1)
    result = scraper("history", "--key", "1.27.13", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["not_stored"] == [[1, 1]]
    assert data["present_in_oldest"] == {
        "version": 2,
        "fetched_at": "2026-04-15T02:00:00Z",
        "change": "present",
        "fields": {
            "dependencies.cni_version": {"old": "1.2.0", "new": "1.2.0"},
            "dependencies.containerd_version": {"old": "1.7.13", "new": "1.7.13"},
            "dependencies.crictl_version": {"old": "1.26.0", "new": "1.26.0"},
        },
    }
    assert data["changes"] == []


def test_key_history_oldest_changes_row(history, workdir, scraper):
    # The oldest stored version changed the row, so its change shows the state
    # before it and no separate starting state is given.
    store = Store(workdir / "snapshots", SOURCE)
    store.delete_version(1)
    store.delete_version(2)
    result = scraper("history", "--key", "1.28.9", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["not_stored"] == [[1, 2]]
    assert data["present_in_oldest"] is None
    assert [change["version"] for change in data["changes"]] == [3, 4]
    assert data["changes"][0]["fields"] == {
        "dependencies.containerd_version": {"old": "1.7.13", "new": "1.7.16"}
    }


def test_key_history_newest_deleted(history, workdir, scraper):
    store = Store(workdir / "snapshots", SOURCE)
    store.delete_version(4)
    result = scraper("history", "--key", "1.28.9", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["not_stored"] == [[4, 4]]
    table = scraper("history")
    assert table.out.splitlines()[-1] == (
        "version 4 is not stored; state.yaml records version 4 as the last one written"
    )
    assert json.loads(scraper("history", "--format", "json").out)["last_written"] == 4


def test_version_table_names_unstored_previous(history, workdir, scraper):
    store = Store(workdir / "snapshots", SOURCE)
    store.delete_version(2)
    result = scraper("history")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["1", "3", "4"]
    assert lines[4:] == ["version 3 is compared with version 2, which is no longer stored"]
    data = json.loads(scraper("history", "--format", "json").out)
    assert [entry["previous_version"] for entry in data["versions"]] == [None, 2, 3]


def test_key_history_middle_gap(history, workdir, scraper):
    # A version deleted between two stored ones is named; the changes that the
    # versions around it record are still shown.
    store = Store(workdir / "snapshots", SOURCE)
    store.delete_version(2)
    result = scraper("history", "--key", "1.28.9")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[1] == (
        "  versions not stored (pruned or deleted): 2; changes made in them are not shown"
    )
    assert "present in the oldest stored version" not in result.out
    assert "version 1  2026-03-01T02:00:00Z  added" in lines
    assert "version 3  2026-05-01T02:00:00Z  changed" in lines


def test_key_history_empty_store(workdir, server, scraper):
    write_config(workdir, server.url(PAGE_PATH))
    result = scraper("history", "--key", "1.28.9")
    assert result.code == 5
    assert "no versions stored yet" in result.err


# show --at


@pytest.mark.parametrize(
    ("moment", "version"),
    [
        ("2026-03-01", 1),
        ("2026-03-01T02:00:00Z", 1),
        ("2026-04-14", 1),
        ("2026-04-15", 2),
        ("2026-04-15T01:59:59Z", 1),
        ("2026-04-15T04:00:00+02:00", 2),
        ("2026-04-15T03:59:59+02:00", 1),
        ("2026-05-01", 3),
        ("2026-06-09", 3),
        ("2026-06-10", 4),
        ("2027-01-01", 4),
        ("2026-05-20T12:00:00", 3),
        ("2026-04-15t02:00:00z", 2),
        ("2026-04-15 02:00", 2),
        ("2026-04-15T01:59:59.999999Z", 1),
        ("2026-04-15T04:00+0200", 2),
        ("2026-04-14T23:00-03", 2),
    ],
)
def test_show_at(history, scraper, moment, version):
    result = scraper("show", "--at", moment, "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["version"] == version


def test_show_at_rows(history, scraper):
    result = scraper("show", "--at", "2026-05-15", "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)["rows"]
    expected = [dict(row, dependencies=dict(row["dependencies"])) for row in ROWS_4]
    expected[1]["dependencies"]["containerd_version"] = "1.7.16"
    assert rows == expected


def test_show_at_before_first(history, scraper):
    result = scraper("show", "--at", "2026-02-28")
    assert result.code == 2
    assert "no version existed at 2026-02-28T23:59:59Z" in result.err
    assert "the oldest stored version was fetched at 2026-03-01T02:00:00Z" in result.err


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026-13-01",
        "01/05/2026",
        "",
        "20261204",
        "2026-W49",
        "2026-12-04T15",
        "2026-02-30",
        "2026-05-01T24:00",
        "2026-05-01T12:60",
        "2026-05-01T12:00+24:00",
        "2026-05-01T12:00:00.1234567Z",
        "２０２６-05-01",
    ],
)
def test_show_at_invalid(history, scraper, text):
    result = scraper("show", "--at", text)
    assert result.code == 2
    assert f"invalid date {text!r}" in result.err
    assert "2026-05-01T12:00:00Z" in result.err


def test_show_at_out_of_range(history, scraper):
    result = scraper("show", "--at", "0001-01-01T00:00:00+01:00")
    assert result.code == 2
    assert "the time '0001-01-01T00:00:00+01:00' is out of range in UTC" in result.err


def test_show_at_early_year_padded(history, scraper):
    result = scraper("show", "--at", "0001-01-01")
    assert result.code == 2
    assert "no version existed at 0001-01-01T23:59:59Z" in result.err


def test_show_at_and_version_exclusive(history, scraper, capsys):
    with pytest.raises(SystemExit) as raised:
        scraper("show", "--at", "2026-05-01", "--version", "2")
    assert raised.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# diff between any two versions


def test_diff_any_two_versions(history, scraper):
    result = scraper("diff", "1", "4")
    assert result.code == 0, result.err
    assert result.out == (
        f"{SOURCE}: version 1 -> 4: 1 added, 1 removed, 0 changed\n"
        "+ 1.30.4  dependencies.cni_version=1.3.0 dependencies.containerd_version=1.7.13 "
        "dependencies.crictl_version=1.28.0\n"
        "- 1.28.9  dependencies.cni_version=1.2.0 dependencies.containerd_version=1.7.13 "
        "dependencies.crictl_version=1.26.0\n"
    )


def test_diff_newer_to_older(history, scraper):
    result = scraper("diff", "4", "2", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert [row["kubernetes_version"] for row in data["added"]] == ["1.28.9"]
    assert data["removed"] == []
    assert data["changed"] == []


# Captures


def test_capture_kept_per_version(history, workdir):
    captures = workdir / "snapshots" / SOURCE / "captures"
    assert sorted(path.name for path in captures.iterdir()) == [
        "000001.html.gz",
        "000002.html.gz",
        "000003.html.gz",
        "000004.html.gz",
    ]
    pages = [fixture_bytes("matrix-3rows-asc.html"), page_4rows(), page_pin_changed(), page_row_removed()]
    for number, page in enumerate(pages, start=1):
        assert gzip.decompress((captures / f"{number:06d}.html.gz").read_bytes()) == page


def test_capture_not_written_when_unchanged(history, workdir, scraper):
    before = store_files(workdir / "snapshots")
    history.route(PAGE_PATH, Reply.html(page_row_removed()))
    result = scraper("sync")
    assert result.code == 0, result.err
    after = store_files(workdir / "snapshots")
    captures = {name for name in after if "/captures/" in name}
    assert captures == {name for name in before if "/captures/" in name}


# reparse


def test_reparse_all_same(history, scraper):
    result = scraper("reparse")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: reparsed 4 versions: 4 same\n"


def test_reparse_leaves_store_alone(history, workdir, scraper):
    before = store_files(workdir / "snapshots")
    result = scraper("reparse")
    assert result.code == 0, result.err
    assert store_files(workdir / "snapshots") == before


def test_reparse_reports_parser_change(history, workdir, server, scraper):
    # The same pages read with the dependencies column as plain text: every stored
    # row would change, so every version differs.
    config = workdir / "config.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("parse: key_value", "parse: text"), encoding="utf-8")
    result = scraper("reparse")
    assert result.code == 1, result.err
    assert result.out.startswith(f"{SOURCE}: reparsed 4 versions: 4 differs\n")
    lines = result.out.splitlines()
    start = lines.index("version 3: differs")
    assert lines[start + 1] == "  stored -> reparsed: 0 added, 0 removed, 4 changed"
    assert (
        "  ~ 1.28.9  dependencies: (none) -> cni_version = 1.2.0 "
        "containerd_version = 1.7.16 crictl_version = 1.26.0"
    ) in lines
    assert "  ~ 1.28.9  dependencies.containerd_version: 1.7.16 -> (none)" in lines


def test_reparse_missing_and_damaged_captures(history, workdir, scraper):
    captures = workdir / "snapshots" / SOURCE / "captures"
    (captures / "000001.html.gz").unlink()
    (captures / "000002.html.gz").write_bytes(b"not gzip at all")
    (captures / "000003.html.gz").write_bytes(gzip.compress(page_4rows()))
    result = scraper("reparse")
    assert result.code == 1
    assert result.out == (
        f"{SOURCE}: reparsed 4 versions: 2 failed, 1 no-capture, 1 same\n"
        "version 1: no-capture\n"
        "  no capture was kept for this version\n"
        "version 2: failed\n"
        "  the capture cannot be read: Not a gzipped file (b'no')\n"
        "version 3: failed\n"
        "  the capture does not match the page_sha256 of the version\n"
    )


def test_reparse_json(history, workdir, scraper):
    (workdir / "snapshots" / SOURCE / "captures" / "000004.html.gz").unlink()
    result = scraper("reparse", "--format", "json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["source"] == SOURCE
    assert [entry["status"] for entry in data["versions"]] == [
        "same",
        "same",
        "same",
        "no-capture",
    ]
    assert data["versions"][0] == {"version": 1, "status": "same", "diff": None, "message": None}


def test_reparse_progress_bar(history, scraper):
    result = scraper("reparse", "--progress")
    assert result.code == 0, result.err
    assert re.search(rf"{SOURCE}: 100%.*4/4", result.err), result.err


def test_reparse_no_progress_when_piped(history, scraper):
    result = scraper("reparse")
    assert result.code == 0, result.err
    assert result.err == ""


def test_reparse_charset_from_header(workdir, server, scraper):
    # A page sent as windows-1252 with a non-ASCII note must decode the same way again.
    page = fixture_bytes("matrix-3rows-asc.html").replace(
        b"<td>1.28.9</td>", "<td>1.28.9 (Caf\u00e9)</td>".encode("cp1252")
    )
    write_config(workdir, server.url(PAGE_PATH))
    server.route(PAGE_PATH, Reply.html(page, charset="windows-1252"))
    result = scraper("sync")
    assert result.code == 0, result.err
    stored = Store(workdir / "snapshots", SOURCE).load_version(1)
    assert stored["http"]["encoding"] == "cp1252"
    assert "Café" in json.dumps(stored["rows"], ensure_ascii=False)
    reparsed = scraper("reparse")
    assert reparsed.code == 0, reparsed.out
    assert reparsed.out == f"{SOURCE}: reparsed 1 version: 1 same\n"


def test_reparse_empty_store(workdir, server, scraper):
    write_config(workdir, server.url(PAGE_PATH))
    result = scraper("reparse")
    assert result.code == 5
    assert "no versions stored yet" in result.err
