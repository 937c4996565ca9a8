"""How `scraper sync` fetches a page: conditional requests, charsets, redirects,
HTTP statuses, broken connections and local files.

Every test runs the real CLI against a ScriptedServer on 127.0.0.1. Each failure
case checks the exit code, a fragment of the error message, and that the snapshot
store is byte-for-byte the same as before the failing run.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading

import pytest
import requests
import yaml

import scraper as scraper_package
from scraper.config import FetchSettings
from scraper.fetch import _request_failure
from tests.conftest import (
    CASES,
    FIXTURES,
    PAGE_PATH,
    fixture_bytes,
    store_files,
    write_config,
)
from tests.httpserver import Reply

EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]
GOOD_PAGE = "matrix-4rows-asc.html"

PINS = {
    "cni_version": "1.3.0",
    "containerd_version": "1.7.13",
    "crictl_version": "1.28.0",
}
DASH_PINS = {**PINS, "containerd_version": "1.7.13-1"}
# Rows of cases/utf8-no-charset.html, written by hand from its table.
UTF8_ROWS = [
    {
        "kubernetes_version": "1.29.4",
        "dependencies": PINS,
        "notes": {"dependencies.crictl_version": "\u2265 glibc 2.31"},
    },
    {"kubernetes_version": "1.30.4", "dependencies": DASH_PINS},
]

SOURCE = "capi-image-builder"
VERSION_1 = f"{SOURCE}/versions/000001.yaml"
ETAG = '"matrix-v1"'
# A valid HTTP-date that no clock near the test run produces, so a locally
# generated If-Modified-Since cannot match it by accident.
LAST_MODIFIED = "Tue, 15 Nov 1994 08:12:31 GMT"
# Seconds after which the drip test closes its server. A run that honours its
# 1 s deadline has ended long before, and one that ignores it then fails with a
# different message instead of waiting for the whole drip.
DRIP_WATCHDOG = 2.5


# Helpers


def snapshots(workdir) -> dict[str, bytes]:
    return store_files(workdir / "snapshots")


def version_files(workdir) -> list[str]:
    return sorted(store_files(workdir / "snapshots" / SOURCE / "versions"))


def load_version(workdir, relpath: str = VERSION_1) -> dict:
    return yaml.safe_load((workdir / "snapshots" / relpath).read_text(encoding="utf-8"))


def show_rows(scraper, *args: str) -> list[dict]:
    result = scraper("show", "--format", "json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)["rows"]


def page_requests(server, path: str = PAGE_PATH):
    return server.requests_for(path)


def closed_port() -> int:
    """Return a port on 127.0.0.1 that was just bound and closed, so nothing listens."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def windows_1252_page() -> bytes:
    """A matrix page encoded as windows-1252, which only its <meta> tag declares."""
    text = (
        "<!doctype html>\n"
        '<html><head><meta charset="windows-1252"><title>Matrix</title></head><body>\n'
        "<table><thead><tr><th>Kubernetes Version</th><th>Dependencies Version</th>"
        "</tr></thead><tbody>\n"
        "<tr><td>1.30.4</td><td><code>cni_version</code> = 1.3.0 <br/> "
        "<code>containerd_version</code> = 1.7.13 <br/> "
        "<code>crictl_version</code> = 1.28.0 (Debian\u2019s glibc \u2013 2.31)"
        "</td></tr>\n"
        "</tbody></table>\n</body></html>\n"
    )
    return text.encode("windows-1252")


@pytest.fixture
def good_store(workdir, serve_page, scraper):
    """Sync the 4-row capture into an empty store as version 1 and return the store files."""
    write_config(workdir, serve_page(GOOD_PAGE))
    result = scraper("sync")
    assert result.code == 0, result.err
    assert version_files(workdir) == ["000001.yaml"]
    return snapshots(workdir)


def assert_failed(result, code: int, fragment: str) -> None:
    assert result.code == code, result.err
    assert SOURCE in result.err
    assert fragment in result.err


# Conditional requests and request headers


def serve_with_validators(server, **reply) -> None:
    headers = {"ETag": ETAG, "Last-Modified": LAST_MODIFIED}
    server.route(PAGE_PATH, Reply.html(fixture_bytes(GOOD_PAGE), headers=headers, **reply))


def test_first_run_sends_no_validators(workdir, server, scraper):
    serve_with_validators(server)
    write_config(workdir, server.url(PAGE_PATH))

    result = scraper("sync")

    assert result.code == 0, result.err
    headers = page_requests(server)[0].headers
    assert "If-None-Match" not in headers
    assert "If-Modified-Since" not in headers


def test_second_run_sends_server_validators(workdir, server, scraper):
    serve_with_validators(server)
    write_config(workdir, server.url(PAGE_PATH))
    assert scraper("sync").code == 0

    assert scraper("sync").code == 0

    second = page_requests(server)[1].headers
    assert second.get("If-None-Match") == ETAG
    assert second.get("If-Modified-Since") == LAST_MODIFIED


def test_not_modified_writes_no_version(workdir, server, scraper):
    serve_with_validators(server)
    write_config(workdir, server.url(PAGE_PATH))
    assert scraper("sync").code == 0
    before = snapshots(workdir)
    server.route(PAGE_PATH, Reply(status=304, headers={"ETag": ETAG}))

    result = scraper("sync")

    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: unchanged (HTTP 304 not modified), version 1\n"
    after = snapshots(workdir)
    assert version_files(workdir) == ["000001.yaml"]
    assert after[VERSION_1] == before[VERSION_1]
    assert after[f"{SOURCE}/latest.yaml"] == before[f"{SOURCE}/latest.yaml"]


def test_not_modified_keeps_validators(workdir, server, scraper):
    serve_with_validators(server)
    write_config(workdir, server.url(PAGE_PATH))
    assert scraper("sync").code == 0
    server.route(PAGE_PATH, Reply(status=304))
    assert scraper("sync").code == 0

    assert scraper("sync").code == 0

    third = page_requests(server)[2].headers
    assert third.get("If-None-Match") == ETAG
    assert third.get("If-Modified-Since") == LAST_MODIFIED


def test_failed_run_keeps_old_validators(workdir, server, scraper):
    serve_with_validators(server)
    write_config(workdir, server.url(PAGE_PATH))
    assert scraper("sync").code == 0
    before = snapshots(workdir)
    new_headers = {"ETag": '"layout-v2"', "Last-Modified": "Wed, 16 Nov 1994 09:00:00 GMT"}
    server.route(
        PAGE_PATH,
        Reply.html(fixture_bytes("cases/layout-changed.html"), headers=new_headers),
    )

    failed = scraper("sync")
    assert_failed(failed, 4, "matrix table not found")
    assert snapshots(workdir) == before

    scraper("sync")

    third = page_requests(server)[2].headers
    assert third.get("If-None-Match") == ETAG
    assert third.get("If-Modified-Since") == LAST_MODIFIED


def test_failed_first_run_sends_no_validators(workdir, server, scraper):
    headers = {"ETag": ETAG, "Last-Modified": LAST_MODIFIED}
    server.route(
        PAGE_PATH, Reply.html(fixture_bytes("cases/soft-404.html"), headers=headers)
    )
    write_config(workdir, server.url(PAGE_PATH))
    assert scraper("sync").code == 4

    scraper("sync")

    second = page_requests(server)[1].headers
    assert "If-None-Match" not in second
    assert "If-Modified-Since" not in second


def test_not_modified_without_validators(workdir, server, scraper):
    server.route(PAGE_PATH, Reply(status=304))
    write_config(workdir, server.url(PAGE_PATH))

    result = scraper("sync")

    assert_failed(result, 3, "HTTP 304 to a request that had no validators")
    assert snapshots(workdir) == {}


def test_user_agent_names_version(workdir, serve_page, scraper, server):
    write_config(workdir, serve_page(GOOD_PAGE))

    assert scraper("sync").code == 0

    user_agent = page_requests(server)[0].headers.get("User-Agent", "")
    assert f"scraper/{scraper_package.__version__}" in user_agent


# Character encodings


def test_meta_charset_equals_header(workdir, server, scraper):
    page = fixture_bytes("cases/utf8-no-charset.html")
    assert "\u00a0".encode() in page
    assert "\u2011".encode() in page
    assert "\u2265".encode() in page
    outputs = {}
    for charset in (None, "utf-8"):
        folder = workdir / f"charset-{charset}"
        folder.mkdir()
        path = f"/{charset}/"
        server.route(path, Reply.html(page, charset=charset))
        config = write_config(folder, server.url(path))
        assert scraper("sync", "--config", str(config)).code == 0
        outputs[charset] = show_rows(scraper, "--config", str(config))

    assert outputs[None] == UTF8_ROWS
    assert outputs[None] == outputs["utf-8"]


def test_bom_beats_header_charset(workdir, serve_page, scraper):
    page = b"\xef\xbb\xbf" + fixture_bytes("cases/utf8-no-charset.html")
    write_config(workdir, serve_page(page, charset="iso-8859-1"))

    result = scraper("sync")

    assert result.code == 0, result.err
    assert show_rows(scraper) == UTF8_ROWS
    assert load_version(workdir)["http"]["encoding"] == "utf-8"


def test_windows_1252_from_meta(workdir, serve_page, scraper):
    write_config(workdir, serve_page(windows_1252_page(), charset=None))

    result = scraper("sync")

    assert result.code == 0, result.err
    assert show_rows(scraper) == [
        {
            "kubernetes_version": "1.30.4",
            "dependencies": PINS,
            "notes": {
                "dependencies.crictl_version": "Debian\u2019s glibc \u2013 2.31"
            },
        }
    ]


def test_undecodable_table_bytes(good_store, workdir, serve_page, scraper):
    page = fixture_bytes(GOOD_PAGE)
    broken = page.replace(b"= 1.28.0", b"= 1.28.\xff0", 1)
    assert broken != page
    serve_page(broken, charset="utf-8")

    result = scraper("sync")

    assert_failed(result, 4, "undecodable bytes")
    assert snapshots(workdir) == good_store


# Redirects


def test_same_host_redirect_followed(workdir, server, scraper):
    server.route(PAGE_PATH, Reply.html(fixture_bytes(GOOD_PAGE)))
    server.route("/old/", Reply.redirect(PAGE_PATH, status=301))
    write_config(workdir, server.url("/old/"))

    result = scraper("sync")

    assert result.code == 0, result.err
    document = load_version(workdir)
    assert document["url"] == server.url("/old/")
    assert document["final_url"] == server.url(PAGE_PATH)
    assert document["rows"] == ROWS_4


def test_redirect_loop(good_store, workdir, server, scraper):
    server.route(PAGE_PATH, Reply.redirect("/loop/"))
    server.route("/loop/", Reply.redirect(PAGE_PATH))

    result = scraper("sync")

    assert_failed(result, 3, "redirect loop")
    assert snapshots(workdir) == good_store


def test_redirect_other_host_rejected(good_store, workdir, server, scraper):
    server.route("/moved/", Reply.html(fixture_bytes(GOOD_PAGE)))
    server.route(PAGE_PATH, Reply.redirect(f"http://localhost:{server.port}/moved/", 301))

    result = scraper("sync")

    assert_failed(result, 3, "another host 'localhost'")
    assert "allow_redirect_hosts" in result.err
    assert page_requests(server, "/moved/") == []
    assert snapshots(workdir) == good_store


def test_redirect_allowed_host(workdir, server, scraper):
    server.route("/moved/", Reply.html(fixture_bytes(GOOD_PAGE)))
    server.route(PAGE_PATH, Reply.redirect(f"http://localhost:{server.port}/moved/", 301))
    write_config(
        workdir, server.url(PAGE_PATH), fetch={"allow_redirect_hosts": ["localhost"]}
    )

    result = scraper("sync")

    assert result.code == 0, result.err
    document = load_version(workdir)
    assert document["final_url"] == f"http://localhost:{server.port}/moved/"
    assert document["rows"] == ROWS_4


def test_redirect_to_ftp_rejected(good_store, workdir, server, scraper):
    server.route(PAGE_PATH, Reply.redirect(f"ftp://127.0.0.1:{server.port}/matrix.html"))

    result = scraper("sync")

    assert_failed(result, 3, "scheme 'ftp'")
    assert "refused" in result.err
    assert snapshots(workdir) == good_store


def test_redirect_to_landing_page(good_store, workdir, server, scraper):
    server.route("/landing/", Reply.html(fixture_bytes("cases/moved-landing.html")))
    server.route(PAGE_PATH, Reply.redirect("/landing/", status=301))

    result = scraper("sync")

    assert_failed(result, 4, "matrix table not found")
    assert server.url("/landing/") in result.err
    assert f"redirected from {server.url(PAGE_PATH)}" in result.err
    assert snapshots(workdir) == good_store


# HTTP statuses


@pytest.mark.parametrize("status", [404, 410])
def test_gone_page_hint(status, good_store, workdir, server, scraper):
    server.route(PAGE_PATH, Reply.html(b"<html><body>gone</body></html>", status=status))

    result = scraper("sync")

    assert_failed(result, 3, f"HTTP {status}")
    assert "the page moved or was removed" in result.err
    assert snapshots(workdir) == good_store


def test_server_error_repeated(good_store, workdir, server, scraper):
    server.route(PAGE_PATH, Reply.html(b"<html><body>oops</body></html>", status=500))
    earlier = len(page_requests(server))

    result = scraper("sync")

    assert_failed(result, 3, "HTTP 500")
    assert "kept failing after retries" in result.err
    assert len(page_requests(server)) - earlier == 2
    assert snapshots(workdir) == good_store


def test_unavailable_then_ok(workdir, server, scraper):
    server.route(
        PAGE_PATH,
        Reply.html(b"<html><body>busy</body></html>", status=503, headers={"Retry-After": "1"}),
        Reply.html(fixture_bytes(GOOD_PAGE)),
    )
    write_config(workdir, server.url(PAGE_PATH), fetch={"retries": 1})

    result = scraper("sync")

    assert result.code == 0, result.err
    assert len(page_requests(server)) == 2
    assert show_rows(scraper) == ROWS_4


def test_retry_logged_with_verbose(workdir, server, scraper):
    server.route(
        PAGE_PATH,
        Reply.html(b"<html><body>busy</body></html>", status=503),
        Reply.html(fixture_bytes(GOOD_PAGE)),
    )
    write_config(workdir, server.url(PAGE_PATH), fetch={"retries": 2, "backoff_factor": 0})

    result = scraper("-v", "sync")

    assert result.code == 0, result.err
    assert f"retry 1 for {server.url(PAGE_PATH)} after HTTP 503; 1 more allowed" in result.err


@pytest.mark.parametrize(
    ("retry_after", "fragment"),
    [
        pytest.param("3600", "3600", id="seconds"),
        pytest.param("Fri, 01 Jan 2100 00:00:00 GMT", "rate limited", id="http-date"),
    ],
)
def test_rate_limit_fails_fast(retry_after, fragment, good_store, workdir, server, scraper):
    server.route(
        PAGE_PATH,
        Reply.html(b"<html><body>slow down</body></html>", status=429,
                   headers={"Retry-After": retry_after}),
    )
    earlier = len(page_requests(server))

    result = scraper("sync")

    assert_failed(result, 3, fragment)
    assert "max_retry_after" in result.err
    assert len(page_requests(server)) - earlier == 1
    assert snapshots(workdir) == good_store


def test_soft_404_page(good_store, workdir, serve_page, scraper):
    serve_page("cases/soft-404.html")

    result = scraper("sync")

    assert_failed(result, 4, "matrix table not found")
    assert snapshots(workdir) == good_store


# Broken connections and bodies


def test_connection_refused(good_store, workdir, scraper):
    write_config(workdir, f"http://127.0.0.1:{closed_port()}{PAGE_PATH}")

    result = scraper("sync")

    assert_failed(result, 3, "refused")
    assert snapshots(workdir) == good_store


def test_server_hangs(good_store, workdir, server, scraper):
    server.route(PAGE_PATH, Reply.html(fixture_bytes(GOOD_PAGE), behaviour="hang"))
    write_config(workdir, server.url(PAGE_PATH), fetch={"read_timeout": 0.5, "retries": 0})

    result = scraper("sync")

    assert_failed(result, 3, "timed out")
    assert snapshots(workdir) == good_store


def test_stall_after_headers(good_store, workdir, server, scraper):
    server.route(
        PAGE_PATH,
        Reply.html(fixture_bytes(GOOD_PAGE), behaviour="stall_after", stall_bytes=200),
    )
    write_config(workdir, server.url(PAGE_PATH), fetch={"read_timeout": 0.5, "retries": 0})

    result = scraper("sync")

    assert_failed(result, 3, "timed out")
    assert snapshots(workdir) == good_store


def test_drip_past_deadline(good_store, workdir, server, scraper):
    body = fixture_bytes(GOOD_PAGE)[:400]
    server.route(PAGE_PATH, Reply.html(body, behaviour="drip", drip_interval=0.2))
    write_config(
        workdir,
        server.url(PAGE_PATH),
        fetch={"deadline": 1, "read_timeout": 2, "retries": 0},
    )
    watchdog = threading.Timer(DRIP_WATCHDOG, server.close)
    watchdog.start()
    try:
        result = scraper("sync")
    finally:
        watchdog.cancel()

    assert_failed(result, 3, "deadline")
    assert snapshots(workdir) == good_store


def test_content_length_too_long(good_store, workdir, server, scraper):
    body = fixture_bytes(GOOD_PAGE)
    server.route(
        PAGE_PATH,
        Reply.html(body, content_length=len(body) + 1000, behaviour="close_early"),
    )

    result = scraper("sync")

    assert_failed(result, 3, "broke off")
    assert f"of {len(body) + 1000}" in result.err
    assert snapshots(workdir) == good_store


def test_close_delimited_truncated(good_store, workdir, serve_page, scraper):
    serve_page("cases/truncated-body.html", content_length=None)

    result = scraper("sync")

    assert_failed(result, 4, "incomplete")
    assert snapshots(workdir) == good_store


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        pytest.param({}, "Content-Length is 10125", id="content-length"),
        pytest.param({"content_length": None}, "received over", id="close-delimited"),
        pytest.param({"chunked": True, "chunk_size": 1024}, "received over", id="chunked"),
    ],
)
def test_body_over_max_bytes(reply, fragment, good_store, workdir, serve_page, scraper):
    assert len(fixture_bytes(GOOD_PAGE)) == 10125
    write_config(workdir, serve_page(GOOD_PAGE, **reply), fetch={"max_bytes": 4096})

    result = scraper("sync")

    assert_failed(result, 3, "larger than fetch.max_bytes (4096 bytes)")
    assert fragment in result.err
    assert snapshots(workdir) == good_store


def test_gzip_body_parses(workdir, serve_page, scraper):
    body = gzip.compress(fixture_bytes(GOOD_PAGE))
    write_config(workdir, serve_page(body, headers={"Content-Encoding": "gzip"}))

    result = scraper("sync")

    assert result.code == 0, result.err
    assert show_rows(scraper) == ROWS_4


def test_false_gzip_body(good_store, workdir, serve_page, scraper):
    serve_page(GOOD_PAGE, headers={"Content-Encoding": "gzip"})

    result = scraper("sync")

    assert_failed(result, 3, "cannot decode the body as Content-Encoding 'gzip'")
    assert snapshots(workdir) == good_store


def test_json_content_type(good_store, workdir, server, scraper):
    server.route(
        PAGE_PATH,
        Reply(body=b'{"rows": []}', headers={"Content-Type": "application/json"}),
    )

    result = scraper("sync")

    assert_failed(result, 3, "expected an HTML page")
    assert "application/json" in result.err
    assert snapshots(workdir) == good_store


def test_empty_body(good_store, workdir, serve_page, scraper):
    serve_page(b"")

    result = scraper("sync")

    assert_failed(result, 4, "incomplete")
    assert snapshots(workdir) == good_store


# Local files


def test_file_url(workdir, serve_page, scraper):
    write_config(workdir, serve_page(GOOD_PAGE))
    file_url = (FIXTURES / GOOD_PAGE).as_uri()

    result = scraper("sync", "--url", file_url)

    assert result.code == 0, result.err
    document = load_version(workdir)
    assert document["url"] == file_url
    assert document["final_url"] == file_url
    assert document["rows"] == ROWS_4


def test_relative_file_path(workdir, serve_page, scraper):
    write_config(workdir, serve_page(GOOD_PAGE))
    (workdir / "saved.html").write_bytes((CASES / "utf8-no-charset.html").read_bytes())

    result = scraper("sync", "--url", "saved.html")

    assert result.code == 0, result.err
    assert show_rows(scraper) == UTF8_ROWS
    assert load_version(workdir)["final_url"] == (workdir / "saved.html").resolve().as_uri()


def test_missing_file(good_store, workdir, scraper):
    result = scraper("sync", "--url", str(workdir / "missing.html"))

    assert_failed(result, 3, "file not found")
    assert snapshots(workdir) == good_store


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (requests.exceptions.ConnectTimeout("connect"), "raise fetch.connect_timeout"),
        (requests.exceptions.ReadTimeout("read"), "raise fetch.read_timeout"),
        (
            requests.exceptions.ConnectionError("Name or service not known"),
            "check the host name in the source's url",
        ),
        (
            requests.exceptions.ConnectionError("[Errno 111] Connection refused"),
            "check the url's port and that the server is running",
        ),
        (requests.exceptions.SSLError("certificate verify failed"), "CA bundle"),
        (requests.exceptions.ConnectionError("reset by peer"), "the next run will try again"),
    ],
)
def test_request_error_hint(error, hint):
    _, found = _request_failure(error, FetchSettings())
    assert hint in found
