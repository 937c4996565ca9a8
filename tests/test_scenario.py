"""The page's real history replayed through `scraper sync`, plus the failures that must
leave the last good snapshot untouched."""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from tests.conftest import (
    FIXTURES,
    PAGE_PATH,
    fixture_bytes,
    store_files,
    write_config,
)
from tests.httpserver import Reply

EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_3 = EXPECTED["captures"]["matrix-3rows-asc.html"]
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]


def changed_pin_page() -> bytes:
    """The 4-row capture with containerd for 1.30.4 raised from 1.7.13 to 1.7.16."""
    page = fixture_bytes("matrix-4rows-asc.html")
    row_start = page.index(b"<tr><td>1.30.4</td>")
    row_end = page.index(b"</tr>", row_start)
    row = page[row_start:row_end].replace(
        b"<code>containerd_version</code> = 1.7.13", b"<code>containerd_version</code> = 1.7.16"
    )
    assert row != page[row_start:row_end]
    return page[:row_start] + row + page[row_end:]


@pytest.fixture
def history(workdir, server, scraper_process):
    """Replay the real captures in order; return the process runner and the server."""
    url = server.url(PAGE_PATH)
    write_config(workdir, url)
    return server


def serve(server, body: bytes, **kwargs) -> None:
    server.route(PAGE_PATH, Reply.html(body, **kwargs))


def show_json(run) -> dict:
    result = run("show", "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_real_history_versions(history, workdir, scraper_process):
    snapshots = workdir / "snapshots"

    serve(history, fixture_bytes("matrix-3rows-asc.html"))
    first = scraper_process("sync")
    assert first.code == 0, first.err
    assert first.out == "capi-image-builder: changed, version 1 (3 added, 0 removed, 0 changed)\n"
    shown = show_json(scraper_process)
    assert shown["version"] == 1
    assert shown["rows"] == ROWS_3

    again = scraper_process("sync")
    assert again.out == "capi-image-builder: unchanged, version 1\n"
    assert sorted(store_files(snapshots / "capi-image-builder" / "versions")) == ["000001.yaml"]

    serve(history, fixture_bytes("matrix-4rows-asc.html"))
    added = scraper_process("sync", "--exit-code")
    assert added.code == 1
    assert added.out == "capi-image-builder: changed, version 2 (1 added, 0 removed, 0 changed)\n"
    diff = json.loads(scraper_process("diff", "--format", "json").out)
    assert diff == {"added": [ROWS_4[3]], "removed": [], "changed": []}

    for reordered in ("matrix-4rows-desc-preview.html", "matrix-4rows-desc-preview-full-site.html"):
        serve(history, fixture_bytes(reordered))
        result = scraper_process("sync", "--exit-code")
        assert result.code == 0, reordered
        assert result.out == "capi-image-builder: unchanged, version 2\n", reordered

    serve(history, changed_pin_page())
    changed = scraper_process("sync")
    assert changed.out == "capi-image-builder: changed, version 3 (0 added, 0 removed, 1 changed)\n"
    diff = json.loads(scraper_process("diff", "--format", "json").out)
    assert diff == {
        "added": [],
        "removed": [],
        "changed": [
            {
                "key": "1.30.4",
                "fields": {
                    "dependencies.containerd_version": {"old": "1.7.13", "new": "1.7.16"}
                },
            }
        ],
    }
    assert show_json(scraper_process)["version"] == 3


def test_snapshot_holds_metadata(history, workdir, scraper):
    serve(history, fixture_bytes("matrix-4rows-asc.html"), headers={"ETag": '"v1"'})
    assert scraper("sync").code == 0
    path = workdir / "snapshots" / "capi-image-builder" / "versions" / "000001.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["schema_version"] == 1
    assert document["source"] == "capi-image-builder"
    assert document["url"] == history.url(PAGE_PATH)
    assert document["final_url"] == history.url(PAGE_PATH)
    assert document["fetched_at"].endswith("Z")
    assert document["http"]["etag"] == '"v1"'
    assert document["http"]["status"] == 200
    assert document["rows"] == ROWS_4
    assert document["diff"]["previous_version"] is None
    assert document["diff"]["added"] == ROWS_4
    latest = workdir / "snapshots" / "capi-image-builder" / "latest.yaml"
    assert latest.read_bytes() == path.read_bytes()


def without_rows(page: bytes) -> bytes:
    start = page.index(b"<tbody>") + len(b"<tbody>")
    end = page.index(b"</tbody>")
    return page[:start] + page[end:]


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{PAGE_PATH}"


FAILURES = {
    "table-removed": (lambda: Reply.html(fixture_bytes("cases/layout-changed.html")), 4, "matrix table not found"),
    "header-renamed": (
        lambda: Reply.html(fixture_bytes("matrix-4rows-asc.html").replace(b"Kubernetes Version", b"K8s Version")),
        4,
        "'K8s Version'",
    ),
    "column-added": (
        lambda: Reply.html(
            fixture_bytes("matrix-4rows-asc.html").replace(
                b"<th>Dependencies Version</th>", b"<th>Dependencies Version</th><th>Notes</th>"
            )
        ),
        4,
        "matrix table not found",
    ),
    "empty-table": (lambda: Reply.html(without_rows(fixture_bytes("matrix-4rows-asc.html"))), 4, "no data rows"),
    "http-404": (lambda: Reply.html(b"<html><body>gone</body></html>", status=404), 3, "HTTP 404"),
    "http-500": (lambda: Reply.html(b"<html><body>oops</body></html>", status=500), 3, "HTTP 500"),
    "stalled-server": (lambda: Reply(behaviour="hang"), 3, "timed out"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_failure_keeps_store(case, history, workdir, scraper_process):
    serve(history, fixture_bytes("matrix-4rows-asc.html"))
    assert scraper_process("sync").code == 0
    before = store_files(workdir / "snapshots")

    make_reply, code, fragment = FAILURES[case]
    history.route(PAGE_PATH, make_reply())
    result = scraper_process("sync", "--exit-code")

    assert result.code == code
    assert fragment in result.err
    assert "capi-image-builder" in result.err
    assert store_files(workdir / "snapshots") == before


def test_refused_connection_keeps_store(history, workdir, scraper_process):
    serve(history, fixture_bytes("matrix-4rows-asc.html"))
    assert scraper_process("sync").code == 0
    before = store_files(workdir / "snapshots")
    write_config(workdir, refused_url())

    result = scraper_process("sync")

    assert result.code == 3
    assert "connection refused" in result.err
    assert "no server listens at that host and port" in result.err
    assert store_files(workdir / "snapshots") == before


def test_error_repeats_every_run(history, workdir, scraper_process):
    serve(history, fixture_bytes("matrix-4rows-asc.html"))
    assert scraper_process("sync").code == 0
    serve(history, fixture_bytes("cases/layout-changed.html"))

    first = scraper_process("sync")
    second = scraper_process("sync")

    assert first.code == 4
    assert second.code == 4
    assert first.err == second.err


def test_first_run_failure_writes_nothing(history, workdir, scraper_process):
    serve(history, fixture_bytes("cases/layout-changed.html"))

    result = scraper_process("sync")

    assert result.code == 4
    assert store_files(workdir / "snapshots") == {}
