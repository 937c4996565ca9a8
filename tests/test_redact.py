"""Secrets in URLs never reach messages or snapshot files."""

from __future__ import annotations

import pytest

from scraper.redact import redact_url
from tests.conftest import PAGE_PATH, store_files, write_config
from tests.httpserver import Reply


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pass@host/p", "https://user:***@host/p"),
        ("https://token@host/p", "https://***@host/p"),
        ("https://host/p?token=abc&page=2", "https://host/p?token=***&page=2"),
        ("https://host/p?api_key=1&sig=2", "https://host/p?api_key=***&sig=***"),
        ("https://host/p?page=2", "https://host/p?page=2"),
        ("/plain/path.html", "/plain/path.html"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_password_not_in_error(workdir, server, scraper):
    server.route(PAGE_PATH, Reply.html(b"<html><body>gone</body></html>", status=404))
    url = server.url(PAGE_PATH).replace("http://", "http://reader:s3cret@") + "?access_token=t0ken"
    write_config(workdir, url)

    result = scraper("sync")

    assert result.code == 3
    assert "s3cret" not in result.err
    assert "t0ken" not in result.err
    assert "reader:***@" in result.err


def test_password_not_in_snapshot(workdir, serve_page, scraper):
    url = serve_page("matrix-4rows-asc.html")
    secret_url = url.replace("http://", "http://reader:s3cret@") + "?access_token=t0ken"
    write_config(workdir, secret_url)

    first = scraper("-vv", "sync")
    second = scraper("-vv", "sync")

    files = store_files(workdir / "snapshots")
    assert first.code == 0
    assert second.out == "capi-image-builder: unchanged, version 1\n"
    assert all(b"s3cret" not in data and b"t0ken" not in data for data in files.values())
    assert "s3cret" not in first.err + second.err
    assert "t0ken" not in first.err + second.err

