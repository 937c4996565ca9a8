"""TLS certificates are always verified; a private CA is trusted through ca_bundle."""

from __future__ import annotations

import http.server
import ssl
import threading

import pytest
import trustme

from scraper.config import FetchSettings
from scraper.fetch import build_session
from tests.conftest import PAGE_PATH, fixture_bytes, store_files, write_config


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/downgrade"):
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}{PAGE_PATH}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = fixture_bytes("matrix-4rows-asc.html")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def https_server(tmp_path):
    """An HTTPS server on 127.0.0.1 whose certificate a test CA signed; yields (url, ca_path)."""
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_path = tmp_path / "private-ca.pem"
    authority.cert_pem.write_to_path(str(ca_path))
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}{PAGE_PATH}", ca_path
    finally:
        server.shutdown()
        server.server_close()


def test_unknown_ca_rejected(https_server, workdir, scraper):
    url, _ = https_server
    write_config(workdir, url)

    result = scraper("sync")

    assert result.code == 3
    assert "TLS verification failed" in result.err
    assert store_files(workdir / "snapshots") == {}


def test_ca_bundle_trusted(https_server, workdir, scraper):
    url, ca_path = https_server
    write_config(workdir, url, fetch={"ca_bundle": str(ca_path)})

    result = scraper("sync")

    assert result.code == 0, result.err
    assert result.out == "capi-image-builder: changed, version 1 (4 added, 0 removed, 0 changed)\n"


def test_session_always_verifies():
    assert build_session(FetchSettings()).verify is True


def test_session_uses_ca_bundle(tmp_path):
    bundle = str(tmp_path / "ca.pem")
    assert build_session(FetchSettings(ca_bundle=bundle)).verify == bundle


def test_https_to_http_redirect_rejected(https_server, workdir, scraper):
    url, ca_path = https_server
    write_config(workdir, url.replace(PAGE_PATH, "/downgrade"), fetch={"ca_bundle": str(ca_path)})

    result = scraper("sync")

    assert result.code == 3
    assert "redirect from HTTPS to plain HTTP" in result.err
    assert store_files(workdir / "snapshots") == {}
