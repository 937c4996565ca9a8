"""Tests of `scraper export`: rows as JSON, YAML and CSV, and one Kubernetes version's
pins as a Packer variables file or imageconfig lines, from stores synced from the real
captures served on 127.0.0.1."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import socket
import stat
import sys
import threading

import pytest
import yaml

from scraper import yamlio
from tests.conftest import FAST_FETCH, FIXTURES, fixture_bytes, many_rows_page, write_config

EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_3 = EXPECTED["captures"]["matrix-3rows-asc.html"]
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]
SOURCE = "capi-image-builder"

# The 1.28.9 row of fixtures/matrix-4rows-asc.html: cni_version = 1.2.0,
# containerd_version = 1.7.13, crictl_version = 1.26.0.
PACKER_1_28_9 = """\
{
  "kubernetes_semver": "v1.28.9",
  "kubernetes_series": "v1.28",
  "kubernetes_rpm_version": "1.28.9",
  "kubernetes_cni_semver": "v1.2.0",
  "containerd_version": "1.7.13",
  "crictl_version": "1.26.0"
}
"""
IMAGECONFIG_1_28_9 = """\
k8s_version=1.28.9
cni_version=1.2.0
containerd_version=1.7.13
crictl_version=1.26.0
"""
# The 1.30.4 row of the same capture: cni_version = 1.3.0, containerd_version = 1.7.13,
# crictl_version = 1.28.0.
PACKER_1_30_4_DEB = """\
{
  "kubernetes_semver": "v1.30.4",
  "kubernetes_series": "v1.30",
  "kubernetes_rpm_version": "1.30.4",
  "kubernetes_deb_version": "1.30.4-1.1",
  "kubernetes_cni_semver": "v1.3.0",
  "containerd_version": "1.7.13",
  "crictl_version": "1.28.0"
}
"""


def version_file(workdir, number: int):
    return workdir / "snapshots" / SOURCE / "versions" / f"{number:06d}.yaml"


def stored_rows(workdir, number: int) -> list:
    return yamlio.load(version_file(workdir, number).read_text(encoding="utf-8"))[
        "rows"
    ]


def edited_page(replacements: list[tuple[str, str]]) -> bytes:
    """Return matrix-4rows-asc.html with each (old, new) text replaced exactly once."""
    text = fixture_bytes("matrix-4rows-asc.html").decode("utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text.encode("utf-8")


def write_source_config(workdir, url: str, key_parse: str, pins_parse: str) -> None:
    """Write a config whose one source reads the matrix with the given parse kinds."""
    fetch = "".join(f"  {name}: {value}\n" for name, value in FAST_FETCH.items())
    (workdir / "config.yaml").write_text(
        "snapshots_dir: snapshots\n"
        "fetch:\n"
        f"{fetch}"
        "sources:\n"
        "  - name: plain\n"
        f"    url: {url}\n"
        "    key: kubernetes_version\n"
        "    columns:\n"
        "      - header: Kubernetes Version\n"
        "        field: kubernetes_version\n"
        f"        parse: {key_parse}\n"
        "      - header: Dependencies Version\n"
        "        field: dependencies\n"
        f"        parse: {pins_parse}\n",
        encoding="utf-8",
    )


@pytest.fixture
def synced(workdir, serve_page, scraper):
    """A store with version 1 of fixtures/matrix-4rows-asc.html, served on 127.0.0.1."""
    write_config(workdir, serve_page("matrix-4rows-asc.html"))
    result = scraper("sync")
    assert result.code == 0, result.err
    return scraper


@pytest.fixture
def synced_two(workdir, serve_page, scraper):
    """A store with version 1 (three rows) and version 2 (four rows)."""
    write_config(workdir, serve_page("matrix-3rows-asc.html"))
    assert scraper("sync").code == 0
    serve_page("matrix-4rows-asc.html")
    assert scraper("sync").code == 0
    return scraper


def sync_page(workdir, serve_page, scraper, body: bytes):
    write_config(workdir, serve_page(body))
    result = scraper("sync")
    assert result.code == 0, result.err
    return scraper


# Pins for image builds


def test_expected_pins_match_capture():
    row = next(row for row in ROWS_4 if row["kubernetes_version"] == "1.28.9")
    assert row["dependencies"] == {
        "cni_version": "1.2.0",
        "containerd_version": "1.7.13",
        "crictl_version": "1.26.0",
    }


def test_packer_exact_pins(synced):
    result = synced("export", "--format", "packer", "--k8s", "1.28.9")
    assert result.code == 0, result.err
    assert result.out == PACKER_1_28_9
    assert result.err == (
        "scraper: WARNING: kubernetes_deb_version is not written, so image-builder's "
        "default applies to Debian and Ubuntu images; add --deb-revision, such as 1.1 "
        "for the packages on pkgs.k8s.io\n"
    )


def test_imageconfig_exact_pins(synced):
    result = synced("export", "--format", "imageconfig", "--k8s", "1.28.9")
    assert result.code == 0, result.err
    assert result.out == IMAGECONFIG_1_28_9


def test_packer_deb_revision(synced):
    result = synced(
        "export", "--format", "packer", "--k8s", "1.30.4", "--deb-revision", "1.1"
    )
    assert result.code == 0, result.err
    assert result.out == PACKER_1_30_4_DEB
    assert result.err == ""


def test_packer_without_deb_revision_omits_deb(synced):
    variables = json.loads(
        synced("export", "--format", "packer", "--k8s", "1.30.4").out
    )
    assert "kubernetes_deb_version" not in variables
    assert variables["kubernetes_semver"] == "v1.30.4"


@pytest.mark.parametrize("request_text", ["1.28", "v1.28", "v1.28.9", "1.28.9"])
def test_k8s_forms_select_same_row(synced, request_text):
    result = synced("export", "--format", "packer", "--k8s", request_text)
    assert result.code == 0, result.err
    assert result.out == PACKER_1_28_9


def test_series_picks_newest_patch(workdir, serve_page, scraper):
    # Rows 1.30.10, 1.31.0-rc.1, 1.30.2 and 1.30.4: 1.30.10 is the newest 1.30
    # release only when patch numbers compare as numbers.
    body = edited_page(
        [
            ("<td>1.27.13</td>", "<td>1.30.10</td>"),
            ("<td>1.28.9</td>", "<td>1.31.0-rc.1</td>"),
            ("<td>1.29.4</td>", "<td>1.30.2</td>"),
        ]
    )
    run = sync_page(workdir, serve_page, scraper, body)
    result = run("export", "--format", "imageconfig", "--k8s", "1.30")
    assert result.code == 0, result.err
    assert result.out == (
        "k8s_version=1.30.10\n"
        "cni_version=1.2.0\n"
        "containerd_version=1.7.13\n"
        "crictl_version=1.26.0\n"
    )


def test_series_skips_prerelease(workdir, serve_page, scraper):
    body = edited_page([("<td>1.28.9</td>", "<td>1.31.0-rc.1</td>")])
    run = sync_page(workdir, serve_page, scraper, body)
    series = run("export", "--format", "packer", "--k8s", "1.31")
    assert series.code == 2
    assert "Kubernetes version 1.31 is not in" in series.err
    exact = run("export", "--format", "packer", "--k8s", "1.31.0-rc.1")
    assert exact.code == 0, exact.err
    variables = json.loads(exact.out)
    assert variables["kubernetes_semver"] == "v1.31.0-rc.1"
    assert variables["kubernetes_series"] == "v1.31"


def test_unknown_version_lists_known(synced):
    result = synced("export", "--format", "packer", "--k8s", "1.31.2")
    assert result.code == 2
    assert result.out == ""
    assert (
        "Kubernetes version 1.31.2 is not in source 'capi-image-builder' version 1"
        in result.err
    )
    assert "known versions: 1.27.13, 1.28.9, 1.29.4, 1.30.4" in result.err


@pytest.mark.parametrize("request_text", ["abc", "1", "1.30.x", ""])
def test_invalid_k8s_rejected(synced, request_text):
    result = synced("export", "--format", "imageconfig", "--k8s", request_text)
    assert result.code == 2
    assert f"invalid --k8s {request_text!r}" in result.err


def test_row_missing_pin_named(workdir, serve_page, scraper):
    # Drop crictl_version from the 1.28.9 row only.
    text = fixture_bytes("matrix-4rows-asc.html").decode("utf-8")
    head, tail = text.split("<td>1.28.9</td>")
    pin = " <br> <code>crictl_version</code> = 1.26.0"
    tail = tail.replace(pin, "", 1)
    run = sync_page(
        workdir, serve_page, scraper, f"{head}<td>1.28.9</td>{tail}".encode()
    )
    assert stored_rows(workdir, 1)[1]["dependencies"] == {
        "cni_version": "1.2.0",
        "containerd_version": "1.7.13",
    }
    result = run("export", "--format", "packer", "--k8s", "1.28.9")
    assert result.code == 2
    assert "row 1.28.9 is missing dependencies.crictl_version" in result.err
    assert str(version_file(workdir, 1)) in result.err
    other = run("export", "--format", "imageconfig", "--k8s", "1.27.13")
    assert other.code == 0, other.err
    assert other.out.splitlines()[3] == "crictl_version=1.26.0"


def test_source_without_key_value_column(workdir, serve_page, scraper):
    write_source_config(workdir, serve_page("matrix-4rows-asc.html"), "version", "text")
    assert scraper("sync").code == 0
    result = scraper("export", "--format", "packer", "--k8s", "1.28.9")
    assert result.code == 2
    assert (
        "--format packer needs a key_value column with cni_version, "
        "containerd_version, crictl_version, but source 'plain' has no key_value column"
    ) in result.err
    assert "use --format json, csv or yaml" in result.err


def test_source_without_pins(workdir, serve_page, scraper):
    # The key_value column contains calico_version in place of cni_version in every row.
    text = fixture_bytes("matrix-4rows-asc.html").decode("utf-8")
    assert text.count("<code>cni_version</code>") == 4
    body = text.replace("<code>cni_version</code>", "<code>calico_version</code>")
    run = sync_page(workdir, serve_page, scraper, body.encode("utf-8"))
    result = run("export", "--format", "imageconfig", "--k8s", "1.28.9")
    assert result.code == 2
    assert (
        "no row of source 'capi-image-builder' version 1 has cni_version "
        "in dependencies"
    ) in result.err


def test_source_with_text_key(workdir, serve_page, scraper):
    write_source_config(
        workdir, serve_page("matrix-4rows-asc.html"), "text", "key_value"
    )
    assert scraper("sync").code == 0
    result = scraper("export", "--format", "imageconfig", "--k8s", "1.28.9")
    assert result.code == 2
    assert (
        "the key column 'kubernetes_version' of source 'plain' is parsed as text"
        in result.err
    )


# Option checks


@pytest.mark.parametrize("output_format", ["json", "csv", "yaml"])
def test_k8s_rejected_for_rows(synced, output_format):
    result = synced("export", "--format", output_format, "--k8s", "1.28.9")
    assert result.code == 2
    assert (
        f"--k8s applies only to --format packer or imageconfig, not {output_format}"
        in result.err
    )
    assert result.out == ""


@pytest.mark.parametrize("output_format", ["packer", "imageconfig"])
def test_k8s_required_for_pins(synced, output_format):
    result = synced("export", "--format", output_format)
    assert result.code == 2
    assert f"--format {output_format} needs --k8s VERSION" in result.err


def test_format_required(synced):
    with pytest.raises(SystemExit) as exit_info:
        synced("export")
    assert exit_info.value.code == 2


def test_deb_revision_only_for_packer(synced):
    result = synced(
        "export", "--format", "imageconfig", "--k8s", "1.28.9", "--deb-revision", "1.1"
    )
    assert result.code == 2
    assert "--deb-revision applies only to --format packer" in result.err


@pytest.mark.parametrize("revision", ["", "-1", "1 1", "1_1"])
def test_invalid_deb_revision(synced, revision):
    result = synced(
        "export", "--format", "packer", "--k8s", "1.28.9", "--deb-revision", revision
    )
    assert result.code == 2
    assert f"invalid --deb-revision {revision!r}" in result.err


def test_export_empty_store(workdir, serve_page, scraper):
    write_config(workdir, serve_page("matrix-4rows-asc.html"))
    result = scraper("export", "--format", "json")
    assert result.code == 5
    assert "no versions stored yet" in result.err


# Rows as JSON, YAML and CSV


def test_json_round_trip(synced, workdir):
    result = synced("export", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == stored_rows(workdir, 1)
    assert json.loads(result.out) == ROWS_4


def test_yaml_round_trip(synced, workdir):
    result = synced("export", "--format", "yaml")
    assert result.code == 0, result.err
    assert yaml.safe_load(result.out) == stored_rows(workdir, 1)
    assert yaml.safe_load(result.out) == ROWS_4


def parse_csv(text: str) -> tuple[list[str], list[dict]]:
    """Parse exported CSV into its header and nested rows, leaving out empty cells."""
    records = list(csv.reader(io.StringIO(text, newline="")))
    header, body = records[0], records[1:]
    rows = []
    for record in body:
        assert len(record) == len(header)
        row: dict = {}
        for path, value in zip(header, record):
            if value == "":
                continue
            # Rows nest one level deep, so the first dot ends the column name.
            column, dot, key = path.partition(".")
            if dot:
                row.setdefault(column, {})[key] = value
            else:
                row[column] = value
        rows.append(row)
    return header, rows


def test_csv_round_trip(synced, workdir):
    result = synced("export", "--format", "csv")
    assert result.code == 0, result.err
    header, rows = parse_csv(result.out)
    assert header == [
        "kubernetes_version",
        "dependencies.cni_version",
        "dependencies.containerd_version",
        "dependencies.crictl_version",
    ]
    assert rows == stored_rows(workdir, 1)


def test_csv_exact_text(synced):
    result = synced("export", "--format", "csv")
    assert result.out == (
        "kubernetes_version,dependencies.cni_version,dependencies.containerd_version,"
        "dependencies.crictl_version\r\n"
        "1.27.13,1.2.0,1.7.13,1.26.0\r\n"
        "1.28.9,1.2.0,1.7.13,1.26.0\r\n"
        "1.29.4,1.3.0,1.7.13,1.28.0\r\n"
        "1.30.4,1.3.0,1.7.13,1.28.0\r\n"
    )


def test_csv_quotes_note(workdir, serve_page, scraper):
    # A note in parentheses becomes notes.dependencies.crictl_version on one row only;
    # its comma and double quotes need RFC 4180 quoting.
    note = 'needs glibc ≥ 2.31, "jammy" or newer'
    cell = (
        "<td>1.29.4</td><td><code>cni_version</code> = 1.3.0 <br> "
        "<code>containerd_version</code> = 1.7.13 <br> "
        "<code>crictl_version</code> = 1.28.0"
    )
    body = edited_page([(cell, f"{cell} ({note})")])
    run = sync_page(workdir, serve_page, scraper, body)
    assert stored_rows(workdir, 1)[2]["notes"] == {"dependencies.crictl_version": note}
    result = run("export", "--format", "csv")
    assert result.code == 0, result.err
    lines = result.out.split("\r\n")
    assert lines[0].endswith(",notes.dependencies.crictl_version")
    assert lines[1] == "1.27.13,1.2.0,1.7.13,1.26.0,"
    assert (
        lines[3]
        == '1.29.4,1.3.0,1.7.13,1.28.0,"needs glibc ≥ 2.31, ""jammy"" or newer"'
    )
    _, rows = parse_csv(result.out)
    assert rows == stored_rows(workdir, 1)


@pytest.mark.parametrize("output_format", ["packer", "imageconfig"])
def test_build_format_warns_of_note(workdir, serve_page, scraper, output_format):
    note = "≥ glibc 2.31"
    cell = (
        "<td>1.29.4</td><td><code>cni_version</code> = 1.3.0 <br> "
        "<code>containerd_version</code> = 1.7.13 <br> "
        "<code>crictl_version</code> = 1.28.0"
    )
    body = edited_page([(cell, f"{cell} ({note})")])
    run = sync_page(workdir, serve_page, scraper, body)
    extra = ["--deb-revision", "1.1"] if output_format == "packer" else []
    result = run("export", "--format", output_format, "--k8s", "1.29.4", *extra)
    assert result.code == 0, result.err
    assert (
        f"dependencies.crictl_version of Kubernetes 1.29.4 has the note '{note}', "
        f"which --format {output_format} cannot carry"
    ) in result.err
    assert "1.28.0" in result.out
    other = run("export", "--format", output_format, "--k8s", "1.30.4", *extra)
    assert other.code == 0, other.err
    assert "has the note" not in other.err


def test_export_given_version(synced_two, workdir):
    result = synced_two("export", "--version", "1", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == ROWS_3
    latest = synced_two("export", "--format", "json")
    assert json.loads(latest.out) == ROWS_4


def test_export_missing_version(synced_two):
    result = synced_two("export", "--version", "9", "--format", "yaml")
    assert result.code == 2
    assert "version 9 does not exist" in result.err
    assert "1 to 2" in result.err


def test_packer_from_older_version(synced_two):
    result = synced_two(
        "export", "--version", "1", "--format", "packer", "--k8s", "1.30"
    )
    assert result.code == 2
    assert "known versions: 1.27.13, 1.28.9, 1.29.4" in result.err


# --out


def test_out_writes_file(synced, workdir):
    target = workdir / "pins.json"
    target.write_text("old content\n", encoding="utf-8")
    result = synced(
        "export", "--format", "packer", "--k8s", "1.28.9", "--out", str(target)
    )
    assert result.code == 0, result.err
    assert result.out == ""
    assert target.read_text(encoding="utf-8") == PACKER_1_28_9
    assert [name for name in os.listdir(workdir) if name.endswith(".tmp")] == []


def test_out_csv_bytes(synced, workdir):
    result = synced("export", "--format", "csv", "--out", "matrix.csv")
    assert result.code == 0, result.err
    data = (workdir / "matrix.csv").read_bytes()
    assert data.startswith(b"kubernetes_version,dependencies.cni_version,")
    assert data.count(b"\r\n") == 5
    assert data.count(b"\n") == 5


def test_out_missing_folder(synced, workdir):
    target = workdir / "missing" / "pins.json"
    result = synced(
        "export", "--format", "imageconfig", "--k8s", "1.28", "--out", str(target)
    )
    assert result.code == 2
    assert f"cannot write --out {target}: No such file or directory" in result.err
    assert not (workdir / "missing").exists()


def temporary_files(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_out_dash_writes_stdout(synced, workdir):
    result = synced(
        "export", "--format", "imageconfig", "--k8s", "1.28.9", "--out", "-"
    )
    assert result.code == 0, result.err
    assert result.out == IMAGECONFIG_1_28_9
    assert not (workdir / "-").exists()


def test_out_file_named_dash(synced, workdir):
    result = synced(
        "export", "--format", "imageconfig", "--k8s", "1.28.9", "--out", "./-"
    )
    assert result.code == 0, result.err
    assert result.out == ""
    assert (workdir / "-").read_text(encoding="utf-8") == IMAGECONFIG_1_28_9


def test_out_empty_rejected(synced, workdir):
    before = sorted(os.listdir(workdir))
    result = synced("export", "--format", "csv", "--out", "")
    assert result.code == 2
    assert "--out is empty (give a file path, or - for stdout)" in result.err
    assert sorted(os.listdir(workdir)) == before


def test_out_empty_rejected_before_store(workdir, serve_page, scraper):
    write_config(workdir, serve_page("matrix-4rows-asc.html"))
    result = scraper("export", "--format", "json", "--out", "")
    assert result.code == 2
    assert "--out is empty" in result.err


@pytest.mark.parametrize("out", [".", "folder", "folder/", "folder-link"])
def test_out_folder_rejected(synced, workdir, out):
    (workdir / "folder").mkdir()
    (workdir / "folder-link").symlink_to("folder")
    before = sorted(os.listdir(workdir))
    result = synced("export", "--format", "csv", "--out", out)
    assert result.code == 2
    assert f"--out {out} is a folder (give a file path, or - for stdout)" in result.err
    assert sorted(os.listdir(workdir)) == before
    assert os.listdir(workdir / "folder") == []


def test_out_trailing_slash_rejected(synced, workdir):
    result = synced("export", "--format", "csv", "--out", "missing/")
    assert result.code == 2
    assert "--out missing/ ends in a slash, so it names a folder" in result.err
    assert not (workdir / "missing").exists()


def test_out_symlink_replaces_target(synced, workdir):
    target = workdir / "pins" / "kubernetes.json"
    target.parent.mkdir()
    target.write_text("old content\n", encoding="utf-8")
    link = workdir / "latest.json"
    link.symlink_to(os.path.join("pins", "kubernetes.json"))
    result = synced(
        "export", "--format", "packer", "--k8s", "1.28.9", "--out", "latest.json"
    )
    assert result.code == 0, result.err
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("pins", "kubernetes.json")
    assert target.read_text(encoding="utf-8") == PACKER_1_28_9
    assert temporary_files(workdir) == []
    assert temporary_files(target.parent) == []


def test_out_dangling_symlink_creates_target(synced, workdir):
    link = workdir / "latest.json"
    link.symlink_to("kubernetes.json")
    result = synced(
        "export", "--format", "packer", "--k8s", "1.28.9", "--out", "latest.json"
    )
    assert result.code == 0, result.err
    assert link.is_symlink()
    assert (workdir / "kubernetes.json").read_text(encoding="utf-8") == PACKER_1_28_9


def test_out_dangling_symlink_names_target(synced, workdir):
    (workdir / "latest.json").symlink_to(os.path.join("missing", "kubernetes.json"))
    result = synced("export", "--format", "csv", "--out", "latest.json")
    target = os.path.join(os.path.realpath(workdir), "missing", "kubernetes.json")
    assert result.code == 2
    assert (
        f"cannot write --out latest.json (a link to {target}): No such file or directory"
        in result.err
    )
    assert not (workdir / "missing").exists()


def test_out_symlink_loop_rejected(synced, workdir):
    (workdir / "first").symlink_to("second")
    (workdir / "second").symlink_to("first")
    result = synced("export", "--format", "csv", "--out", "first")
    assert result.code == 2
    assert f"cannot write --out first: {os.strerror(errno.ELOOP)}" in result.err
    assert (workdir / "first").is_symlink()
    assert (workdir / "second").is_symlink()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_out_fifo_written_in_place(synced, workdir):
    fifo = workdir / "pins.fifo"
    os.mkfifo(fifo)
    # An open read end lets the export open the FIFO at once, and the few bytes
    # of imageconfig output fit in the pipe buffer, so no reader thread is needed.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        result = synced(
            "export", "--format", "imageconfig", "--k8s", "1.28.9", "--out", str(fifo)
        )
        received = os.read(reader, 65536)
    finally:
        os.close(reader)
    assert result.code == 0, result.err
    assert received.decode("utf-8") == IMAGECONFIG_1_28_9
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert temporary_files(workdir) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_out_fifo_reader_closes_early(workdir, serve_page, scraper):
    sync_page(workdir, serve_page, scraper, many_rows_page(3000))
    fifo = workdir / "rows.fifo"
    os.mkfifo(fifo)
    received = []

    def read_start_and_close() -> None:
        # Blocks until the export opens the FIFO for writing.
        descriptor = os.open(fifo, os.O_RDONLY)
        try:
            received.append(os.read(descriptor, 100))
        finally:
            os.close(descriptor)

    reader = threading.Thread(target=read_start_and_close, daemon=True)
    reader.start()
    # The JSON of 3000 rows is about 310 KB, more than a Linux pipe buffer (64 KiB),
    # so the export is still writing when the reader closes its end.
    result = scraper("export", "--format", "json", "--out", str(fifo))
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert received and received[0].startswith(b"[")
    assert result.code == 2
    assert (
        f"cannot write --out {fifo}: the reader closed the pipe before the whole "
        "export was written"
    ) in result.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def make_device_node(path, kind: int, major: int, minor: int) -> None:
    """Create a device node at ``path``, or skip the test where that is not allowed."""
    if not sys.platform.startswith("linux"):
        pytest.skip("device numbers below are Linux ones")
    try:
        os.mknod(path, kind | 0o600, os.makedev(major, minor))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")


def test_out_character_device_written_in_place(synced, workdir):
    # 1:3 is the null device on Linux, which discards the written bytes.
    device = workdir / "null"
    make_device_node(device, stat.S_IFCHR, 1, 3)
    result = synced("export", "--format", "csv", "--out", str(device))
    assert result.code == 0, result.err
    assert result.out == ""
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert temporary_files(workdir) == []


def test_out_block_device_rejected(synced, workdir):
    # No Linux driver has block major 0, so opening this node fails with ENXIO
    # and even a write by mistake reaches no disk.
    device = workdir / "disk"
    make_device_node(device, stat.S_IFBLK, 0, 0)
    result = synced("export", "--format", "csv", "--out", str(device))
    assert result.code == 2
    assert f"--out {device} is a block device, which export does not" in result.err
    assert stat.S_ISBLK(os.lstat(device).st_mode)
    assert temporary_files(workdir) == []


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs Unix sockets")
def test_out_socket_rejected(synced, workdir):
    path = workdir / "out.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        result = synced("export", "--format", "csv", "--out", str(path))
    assert result.code == 2
    assert f"--out {path} is a socket, which export does not write to" in result.err
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
