"""Faults a new user or a hostile page ran into: each must fail loudly or work right."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from scraper.records import RecordBook
from tests.conftest import ROOT, fixture_bytes, store_files, write_config

GOOD = "matrix-4rows-asc.html"


def variant(old: str, new: str) -> bytes:
    page = fixture_bytes(GOOD).decode("utf-8")
    assert page.count(old) == 1, old
    return page.replace(old, new).encode("utf-8")


@pytest.fixture
def synced(workdir, serve_page, scraper):
    """A store holding version 1 of the four-row capture."""
    write_config(workdir, serve_page(GOOD))
    assert scraper("sync").code == 0
    return workdir


def test_device_file_rejected(synced, scraper):
    before = store_files(synced / "snapshots")
    result = scraper("sync", "--url", "/dev/zero")
    assert result.code == 3
    assert "is not a regular file" in result.err
    assert store_files(synced / "snapshots") == before


def test_fifo_rejected(synced, scraper):
    fifo = synced / "page.html"
    os.mkfifo(fifo)
    result = scraper("sync", "--url", str(fifo))
    assert result.code == 3
    assert "is not a regular file" in result.err


def test_empty_url_rejected(synced, scraper):
    result = scraper("sync", "--url", "")
    assert result.code == 2
    assert "--url is empty" in result.err


def test_url_scheme_rejected(synced, scraper):
    result = scraper("sync", "--url", "ftp://127.0.0.1/page.html")
    assert result.code == 2
    assert "unsupported scheme 'ftp'" in result.err


@pytest.mark.parametrize(
    ("cell", "fragment"),
    [
        ("<td>\u0661.\u0663\u0660.\u0664</td>", "is not a version"),
        ("<td>1.30.4<span style=\"opacity:0\">.1</span></td>", None),
        ("<td>1.30.4<span style=\"font-size:0\">.1</span></td>", None),
        ("<td><span style=\"content-visibility:hidden\">9.9.9</span>1.30.4</td>", None),
        ("<td>\u200e1.30.4\u200f</td>", None),
    ],
    ids=["arabic-indic-digits", "opacity-zero", "font-size-zero", "content-visibility", "bidi-marks"],
)
def test_key_cell_reading(cell, fragment, synced, serve_page, scraper):
    before = store_files(synced / "snapshots")
    serve_page(variant("<td>1.30.4</td>", cell))
    result = scraper("sync")
    if fragment is None:
        assert result.out == "capi-image-builder: unchanged, version 1\n", result.err
    else:
        assert result.code == 4
        assert fragment in result.err
        assert store_files(synced / "snapshots") == before


def test_later_display_wins(synced, serve_page, scraper):
    cell = '<td><span style="display:none;display:inline">1.30.4</span></td>'
    serve_page(variant("<td>1.30.4</td>", cell))
    assert scraper("sync").out == "capi-image-builder: unchanged, version 1\n"


@pytest.mark.parametrize("spelling", ["v1.30.4", "01.30.04"])
def test_same_version_twice_rejected(spelling, synced, serve_page, scraper):
    extra = f"<tr><td>{spelling}</td><td><code>cni_version</code> = 1.3.0</td></tr></tbody>"
    serve_page(variant("</tbody>", extra))
    result = scraper("sync")
    assert result.code == 4
    assert f"duplicate kubernetes_version '1.30.4' in data rows 4 and 5 (written '1.30.4' and '{spelling}')" in result.err


def test_broken_pipe_keeps_exit_code(workdir, serve_page, scraper):
    # 3,000 rows print far more than a pipe buffer holds, so `head` closes the
    # pipe while scraper is still writing.
    rows = "".join(
        f"<tr><td>2.{number}.0</td><td><code>cni_version</code> = 1.3.0</td></tr>"
        for number in range(3000)
    )
    write_config(workdir, serve_page(variant("</tbody>", rows + "</tbody>")))
    assert scraper("sync").code == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = f"{sys.executable} -m scraper show --format json | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}"
    completed = subprocess.run(
        ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0
    assert "internal error" not in completed.stderr


def test_ascii_stdout_escapes(synced, serve_page, scraper_process):
    note = variant("1.28.0</td></tr></tbody>", "1.28.0 (≥ glibc 2.31)</td></tr></tbody>")
    serve_page(note)
    assert scraper_process("sync").code == 0
    env_override = {"PYTHONIOENCODING": "ascii"}
    completed = subprocess.run(
        [sys.executable, "-m", "scraper", "show"],
        cwd=synced,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env_override},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0
    assert "\\u2265 glibc 2.31" in completed.stdout


def test_damaged_run_record_restarted(synced, scraper):
    record = synced / ".scraper-state" / "sources" / "capi-image-builder.yaml"
    record.write_text("schema_version: [unclosed\n", encoding="utf-8")
    result = scraper("sync")
    assert result.code == 0
    assert "starting a new run record" in result.err
    assert RecordBook(synced / ".scraper-state").load("capi-image-builder").last_result == "unchanged"


def test_snapshot_files_follow_umask(synced):
    latest = synced / "snapshots" / "capi-image-builder" / "latest.yaml"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(latest.stat().st_mode) == 0o666 & ~umask


def test_empty_version_file_is_damaged(synced, scraper):
    (synced / "snapshots" / "capi-image-builder" / "versions" / "000001.yaml").write_bytes(b"")
    result = scraper("show")
    assert result.code == 5
    assert "the file is empty" in result.err


@pytest.mark.parametrize(
    ("fetch", "fragment"),
    [
        ({"deadline": ".nan"}, "is not a finite number"),
        ({"ca_bundle": "missing-ca.pem"}, "CA bundle"),
        ({"user_agent": '"scraper\\r\\nX-Injected: 1"'}, "line break or control character"),
    ],
    ids=["nan", "missing-ca-bundle", "user-agent-crlf"],
)
def test_invalid_fetch_setting(fetch, fragment, workdir, serve_page, scraper):
    write_config(workdir, serve_page(GOOD), fetch=fetch)
    result = scraper("sync")
    assert result.code == 2
    assert fragment in result.err


def test_home_in_snapshots_dir(workdir, serve_page, scraper, monkeypatch):
    monkeypatch.setenv("HOME", str(workdir / "home"))
    config = write_config(workdir, serve_page(GOOD))
    config.write_text(
        config.read_text(encoding="utf-8").replace("snapshots_dir: snapshots", "snapshots_dir: ~/snaps"),
        encoding="utf-8",
    )
    assert scraper("sync").code == 0
    assert (workdir / "home" / "snaps" / "capi-image-builder" / "latest.yaml").exists()
    assert not (workdir / "~").exists()


def test_url_needs_one_source(workdir, scraper):
    (workdir / "config.yaml").write_bytes((ROOT / "config.yaml").read_bytes())
    result = scraper("sync", "--url", "no-such-page.html")
    assert result.code == 2
    assert "--url needs a single source; add --source NAME" in result.err
    assert not (workdir / "snapshots").exists()


def test_missing_file_names_absolute_path(workdir, scraper):
    (workdir / "config.yaml").write_bytes((ROOT / "config.yaml").read_bytes())
    result = scraper("sync", "--source", "capi-image-builder", "--url", "no-such-page.html")
    assert result.code == 3
    assert str(workdir / "no-such-page.html") in result.err
