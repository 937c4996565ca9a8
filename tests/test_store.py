"""Tests of the snapshot store: YAML round trips, validation of stored files, version
numbers, locking and write failures, checked through `scraper` where a user sees them."""

from __future__ import annotations

import copy
import errno
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from filelock import FileLock

from scraper import yamlio
from scraper.errors import StoreError
from scraper.store import Store, checksum, validate_snapshot
from tests.conftest import (
    CASES,
    FIXTURES,
    PAGE_PATH,
    ROOT,
    fixture_bytes,
    store_files,
    write_config,
)
from tests.httpserver import Reply

EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_3 = EXPECTED["captures"]["matrix-3rows-asc.html"]
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]
SOURCE = "capi-image-builder"

ROUND_TRIP_STRINGS = [
    "1.30",
    "1.10",
    "No",
    "on",
    "null",
    "012",
    "~",
    "",
    "1.3.0",
    "preview – not GA",
    "≥ glibc 2.31",
]
# Strings that yamlio must double-quote: each contains a digit, is empty or is a YAML 1.1
# keyword that another reader could load as a bool or null.
QUOTED_STRINGS = ["1.30", "1.10", "No", "on", "null", "012", "~", "", "1.3.0", "≥ glibc 2.31"]


def source_folder(workdir):
    return workdir / "snapshots" / SOURCE


def versions_folder(workdir):
    return source_folder(workdir) / "versions"


def version_names(workdir) -> list[str]:
    return sorted(os.listdir(versions_folder(workdir)))


def serve(server, fixture: str) -> None:
    server.route(PAGE_PATH, Reply.html(fixture_bytes(fixture)))


@pytest.fixture
def store_v1(workdir, server, scraper):
    """Create a store that contains version 1 (the 3-row capture).

    The server keeps serving that page.
    """
    serve(server, "matrix-3rows-asc.html")
    write_config(workdir, server.url(PAGE_PATH), lock_timeout=0.5)
    result = scraper("sync")
    assert result.code == 0, result.err
    assert version_names(workdir) == ["000001.yaml"]
    return server


@pytest.fixture
def store_v2(store_v1, workdir, scraper):
    """Add version 2 (the 4-row capture) to the store. The server keeps serving that page."""
    serve(store_v1, "matrix-4rows-asc.html")
    result = scraper("sync")
    assert result.code == 0, result.err
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]
    return store_v1


def replace_store(workdir, version_bytes: bytes) -> None:
    """Make the store hold exactly one version file (also copied to latest.yaml)."""
    shutil.rmtree(source_folder(workdir), ignore_errors=True)
    versions_folder(workdir).mkdir(parents=True)
    (versions_folder(workdir) / "000001.yaml").write_bytes(version_bytes)
    (source_folder(workdir) / "latest.yaml").write_bytes(version_bytes)
    (source_folder(workdir) / ".lock").write_bytes(b"")


# YAML round trip


@pytest.mark.parametrize("value", ROUND_TRIP_STRINGS)
def test_yamlio_round_trip(value):
    data = {"value": value, "row": {"version": value}, "list": [value]}
    assert yamlio.load(yamlio.dump(data)) == data


@pytest.mark.parametrize("value", QUOTED_STRINGS)
def test_yamlio_quotes_ambiguous(value):
    assert yamlio.dump({"value": value}) == f'value: "{value}"\n'


def test_yamlio_unicode_unescaped():
    text = yamlio.dump({"note": "preview – not GA", "glibc": "≥ glibc 2.31"})
    assert "–" in text
    assert "≥" in text
    assert "\\u2013" not in text
    assert "\\u2265" not in text
    assert "\\x" not in text


def test_yamlio_version_values_quoted():
    rows = copy.deepcopy(ROWS_4)
    text = yamlio.dump(rows)
    for row in rows:
        assert f'kubernetes_version: "{row["kubernetes_version"]}"' in text
        for key, value in row["dependencies"].items():
            assert f'{key}: "{value}"' in text
    assert not re.search(r":\s+\d+(\.\d+)+\s*$", text, re.MULTILINE)


def test_yamlio_dump_deterministic():
    first = yamlio.dump(copy.deepcopy(ROWS_4))
    second = yamlio.dump(copy.deepcopy(ROWS_4))
    assert first.encode("utf-8") == second.encode("utf-8")


# Snapshots written by sync


def test_snapshot_validates(store_v1, workdir):
    path = versions_folder(workdir) / "000001.yaml"
    document = yamlio.load(path.read_text(encoding="utf-8"))
    validate_snapshot(document, SOURCE, 1, path)
    assert document["checksum"] == checksum(document)
    assert document["row_count"] == 3
    assert document["rows"] == ROWS_3
    assert document["diff"]["added"] == ROWS_3


def test_snapshot_text_quotes_versions(store_v1, workdir):
    text = (versions_folder(workdir) / "000001.yaml").read_text(encoding="utf-8")
    assert 'kubernetes_version: "1.27.13"' in text
    assert 'cni_version: "1.2.0"' in text
    assert not re.search(r":\s+\d+(\.\d+)+\s*$", text, re.MULTILINE)


def test_latest_copies_newest(store_v2, workdir):
    latest = (source_folder(workdir) / "latest.yaml").read_bytes()
    assert latest == (versions_folder(workdir) / "000002.yaml").read_bytes()
    document = yamlio.load(latest.decode("utf-8"))
    assert document["version"] == 2
    assert document["rows"] == ROWS_4
    assert document["row_count"] == 4


# Damaged or foreign snapshots


def unquoted_version(version_text: str, quoted: str, unquoted: str) -> str:
    """Replace a quoted value in a real version file and recompute its checksum."""
    assert quoted in version_text
    text = version_text.replace(quoted, unquoted)
    old_checksum = yamlio.load(version_text)["checksum"]
    new_checksum = checksum(yamlio.load(text))
    return text.replace(old_checksum, new_checksum)


@pytest.mark.parametrize(
    ("quoted", "unquoted", "field", "type_name"),
    [
        (
            'kubernetes_version: "1.29.4"',
            "kubernetes_version: 1.30",
            "rows[2] kubernetes_version",
            "float",
        ),
        (
            'kubernetes_version: "1.27.13"',
            "kubernetes_version: 012",
            "rows[0] kubernetes_version",
            "int",
        ),
        (
            'cni_version: "1.2.0"',
            "cni_version: 1.10",
            "rows[0] dependencies.cni_version",
            "float",
        ),
        (
            'crictl_version: "1.28.0"',
            "crictl_version: No",
            "rows[2] dependencies.crictl_version",
            "bool",
        ),
    ],
    ids=["float-key", "octal-key", "float-dependency", "bool-dependency"],
)
def test_unquoted_snapshot_rejected(
    store_v1, workdir, scraper, quoted, unquoted, field, type_name
):
    path = versions_folder(workdir) / "000001.yaml"
    text = unquoted_version(path.read_text(encoding="utf-8"), quoted, unquoted)
    path.write_text(text, encoding="utf-8")
    (source_folder(workdir) / "latest.yaml").write_text(text, encoding="utf-8")
    document = yamlio.load(text)
    assert document["checksum"] == checksum(document)
    serve(store_v1, "matrix-4rows-asc.html")
    before = store_files(workdir / "snapshots")

    synced = scraper("sync")
    assert synced.code == 5
    assert field in synced.err
    assert f"({type_name})" in synced.err
    assert "quoted string" in synced.err
    show_result = scraper("show")
    assert show_result.code == 5
    assert field in show_result.err
    assert store_files(workdir / "snapshots") == before


def test_python_tag_snapshot_rejected(workdir, serve_page, scraper):
    write_config(workdir, serve_page("matrix-4rows-asc.html"))
    replace_store(workdir, (CASES / "snapshot-python-tag.yaml").read_bytes())
    before = store_files(workdir / "snapshots")

    synced = scraper("sync")
    assert synced.code == 5
    assert "not plain data" in synced.err
    show_result = scraper("show")
    assert show_result.code == 5
    assert "not plain data" in show_result.err
    history = scraper("history")
    assert history.code == 5
    assert not (workdir / "pwned.txt").exists()
    assert store_files(workdir / "snapshots") == before


def test_truncated_fixture_rejected(workdir, serve_page, scraper):
    write_config(workdir, serve_page("matrix-4rows-asc.html"))
    replace_store(workdir, (CASES / "snapshot-truncated.yaml").read_bytes())
    before = store_files(workdir / "snapshots")

    result = scraper("sync")
    assert result.code == 5
    assert "invalid snapshot" in result.err
    assert "added" not in result.out
    assert store_files(workdir / "snapshots") == before


def truncations(data: bytes) -> list[bytes]:
    """Return prefixes of ``data`` cut at line ends and mid-line that still load as a
    mapping different from the whole file."""
    whole = yamlio.load(data.decode("utf-8"))
    offsets = set()
    start = 0
    for line in data.splitlines(keepends=True):
        offsets.add(start + len(line))
        offsets.add(start + len(line) // 2)
        start += len(line)
    prefixes = []
    for offset in sorted(offsets):
        prefix = data[:offset]
        try:
            loaded = yamlio.load(prefix.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        if isinstance(loaded, dict) and loaded != whole:
            prefixes.append(prefix)
    return prefixes


def test_truncated_version_rejected(store_v1, workdir, scraper):
    full = (versions_folder(workdir) / "000001.yaml").read_bytes()
    prefixes = truncations(full)
    assert len(prefixes) >= 20
    serve(store_v1, "matrix-4rows-asc.html")

    for prefix in prefixes:
        replace_store(workdir, prefix)
        before = store_files(workdir / "snapshots")
        result = scraper("sync")
        cut = f"cut at byte {len(prefix)} of {len(full)}"
        assert result.code == 5, cut
        assert "added" not in result.out, cut
        assert store_files(workdir / "snapshots") == before, cut


def test_foreign_snapshot_rejected(workdir, serve_page, scraper):
    write_config(workdir, serve_page("matrix-4rows-asc.html"))
    replace_store(workdir, (CASES / "snapshot-unquoted.yaml").read_bytes())
    before = store_files(workdir / "snapshots")

    synced = scraper("sync")
    assert synced.code == 5
    assert "invalid snapshot" in synced.err
    assert "added" not in synced.out
    show_result = scraper("show")
    assert show_result.code == 5
    assert store_files(workdir / "snapshots") == before


# State file


def damage_checksum(text: str) -> str:
    return text.replace("last_result: changed", "last_result: unchanged")


def damage_cut(text: str) -> str:
    return text[: text.index("validators:")]


def damage_syntax(text: str) -> str:
    return text[: text.index("checksum:") + len('checksum: "sha256:12')]


@pytest.mark.parametrize(
    "damage",
    [damage_checksum, damage_cut, damage_syntax],
    ids=["edited", "cut-at-line", "cut-in-quote"],
)
def test_damaged_state_rejected(store_v1, workdir, scraper, damage):
    state = source_folder(workdir) / "state.yaml"
    state.write_text(damage(state.read_text(encoding="utf-8")), encoding="utf-8")
    serve(store_v1, "matrix-4rows-asc.html")
    before = store_files(workdir / "snapshots")

    result = scraper("sync")
    assert result.code == 5
    assert str(state) in result.err
    assert "delete state.yaml" in result.err
    assert store_files(workdir / "snapshots") == before


def test_not_utf8_state_rejected(store_v1, workdir, scraper):
    state = source_folder(workdir) / "state.yaml"
    state.write_bytes(b"\xff\xfe" + state.read_bytes())
    before = store_files(workdir / "snapshots")

    result = scraper("sync")
    assert result.code == 5
    assert "not UTF-8" in result.err
    assert "delete state.yaml" in result.err
    assert store_files(workdir / "snapshots") == before


def test_deleted_state_rebuilt(store_v1, workdir, scraper):
    state = source_folder(workdir) / "state.yaml"
    state.write_text(damage_checksum(state.read_text(encoding="utf-8")), encoding="utf-8")
    serve(store_v1, "matrix-4rows-asc.html")
    assert scraper("sync").code == 5

    state.unlink()
    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: changed, version 2 (1 added, 0 removed, 0 changed)\n"
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]
    rebuilt = yamlio.load(state.read_text(encoding="utf-8"))
    assert rebuilt["last_version"] == 2


# Version numbers


def test_version_numbers_not_reused(store_v2, workdir, scraper):
    (versions_folder(workdir) / "000002.yaml").unlink()
    (source_folder(workdir) / "latest.yaml").unlink()

    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: changed, version 3 (1 added, 0 removed, 0 changed)\n"
    assert version_names(workdir) == ["000001.yaml", "000003.yaml"]
    latest = (source_folder(workdir) / "latest.yaml").read_bytes()
    assert latest == (versions_folder(workdir) / "000003.yaml").read_bytes()
    document = yamlio.load(latest.decode("utf-8"))
    assert document["diff"]["previous_version"] == 1


def test_version_numbers_without_state(store_v2, workdir, scraper):
    (versions_folder(workdir) / "000002.yaml").unlink()
    (source_folder(workdir) / "latest.yaml").unlink()
    (source_folder(workdir) / "state.yaml").unlink()

    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: changed, version 2 (1 added, 0 removed, 0 changed)\n"
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]


# latest.yaml repair


def test_missing_latest_restored(store_v1, workdir, scraper):
    latest = source_folder(workdir) / "latest.yaml"
    latest.unlink()

    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: unchanged, version 1\n"
    assert latest.read_bytes() == (versions_folder(workdir) / "000001.yaml").read_bytes()


@pytest.mark.parametrize("content", ["older-version", "garbage"])
def test_stale_latest_restored(store_v2, workdir, scraper, content):
    latest = source_folder(workdir) / "latest.yaml"
    if content == "older-version":
        latest.write_bytes((versions_folder(workdir) / "000001.yaml").read_bytes())
    else:
        latest.write_bytes(b"rows: [\n")

    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: unchanged, version 2\n"
    assert latest.read_bytes() == (versions_folder(workdir) / "000002.yaml").read_bytes()


# Temporary files left by a crash


def test_stale_temporaries_removed(store_v1, workdir, scraper):
    top_temporaries = [
        source_folder(workdir) / ".latest.yaml.x.tmp",
        source_folder(workdir) / ".state.yaml.x.tmp",
    ]
    version_temporaries = [
        versions_folder(workdir) / ".000003.yaml.x.tmp",
        versions_folder(workdir) / ".000002.yaml.k2j4.tmp",
        source_folder(workdir) / "captures" / ".000002.html.gz.x.tmp",
    ]
    (source_folder(workdir) / "captures").mkdir(exist_ok=True)
    temporaries = top_temporaries + version_temporaries
    for temporary in temporaries:
        temporary.write_bytes(b"schema_version: 1\nrows: [\n")

    history = scraper("history")
    assert history.code == 0, history.err
    assert re.findall(r"^\s+(\d+)\s", history.out, re.MULTILINE) == ["1"]
    show_result = scraper("show", "--format", "json")
    assert show_result.code == 0, show_result.err
    diff = scraper("diff")
    assert diff.code == 0, diff.err

    # An unchanged sync cleans only the store's top folder: listing the versions
    # folder on every run would cost time that grows with the history.
    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: unchanged, version 1\n"
    for temporary in top_temporaries:
        assert not temporary.exists(), temporary.name

    # Writing a version cleans the versions and captures folders.
    serve(store_v1, "matrix-4rows-asc.html")
    result = scraper("sync")
    assert result.code == 0, result.err
    for temporary in version_temporaries:
        assert not temporary.exists(), temporary.name
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]


# Locking


def test_held_lock_rejected(store_v1, workdir, scraper):
    serve(store_v1, "matrix-4rows-asc.html")
    before = store_files(workdir / "snapshots")
    lock = FileLock(str(source_folder(workdir) / ".lock"), timeout=0)

    with lock:
        result = scraper("sync")
    assert result.code == 5
    assert "another run" in result.err
    assert "lock_timeout" in result.err
    assert store_files(workdir / "snapshots") == before


def test_concurrent_syncs_one_version(store_v1, workdir):
    serve(store_v1, "matrix-4rows-asc.html")
    write_config(workdir, store_v1.url(PAGE_PATH), lock_timeout=30)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "scraper", "sync"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        assert process.returncode == 0, err
        outputs.append(out)

    assert sorted(outputs) == [
        f"{SOURCE}: changed, version 2 (1 added, 0 removed, 0 changed)\n",
        f"{SOURCE}: unchanged, version 2\n",
    ]
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]


# Write failures


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("function", ["replace", "fsync"])
def test_disk_full_keeps_store(store_v1, workdir, scraper, monkeypatch, function):
    serve(store_v1, "matrix-4rows-asc.html")
    before = store_files(workdir / "snapshots")
    with monkeypatch.context() as patch:
        patch.setattr(os, function, disk_full)
        result = scraper("sync")
    assert result.code == 5
    assert "disk is full" in result.err
    assert store_files(workdir / "snapshots") == before


@pytest.mark.parametrize("failing_call", [2, 3], ids=["latest", "state"])
def test_disk_full_later_keeps_store(store_v1, workdir, scraper, monkeypatch, failing_call):
    # The sync writes the version file, then latest.yaml, then state.yaml. A failure at
    # a later file must not leave a version that the next run would take as its baseline.
    serve(store_v1, "matrix-4rows-asc.html")
    before = store_files(workdir / "snapshots")
    real_replace = os.replace
    calls = []

    def replace_until_full(source, target):
        calls.append(target)
        if len(calls) == failing_call:
            disk_full()
        real_replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace_until_full)
        result = scraper("sync")
    assert result.code == 5
    assert "disk is full" in result.err
    assert store_files(workdir / "snapshots") == before

    retried = scraper("sync")
    assert retried.out == f"{SOURCE}: changed, version 2 (1 added, 0 removed, 0 changed)\n"


def test_permission_denied_keeps_store(store_v1, workdir, scraper, monkeypatch):
    serve(store_v1, "matrix-4rows-asc.html")
    before = store_files(workdir / "snapshots")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", denied)
        result = scraper("sync")
    assert result.code == 5
    assert "not writable" in result.err
    assert store_files(workdir / "snapshots") == before


def folder_is_writable(folder) -> bool:
    probe = folder / ".write-probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.mark.parametrize("read_only", [["source"], ["source", "versions"]], ids=["source", "both"])
def test_read_only_store(store_v1, workdir, scraper, read_only):
    serve(store_v1, "matrix-4rows-asc.html")
    before = store_files(workdir / "snapshots")
    folders = {"source": source_folder(workdir), "versions": versions_folder(workdir)}
    for name in read_only:
        folders[name].chmod(0o555)
    try:
        if folder_is_writable(folders[read_only[0]]):
            pytest.skip("chmod 0o555 does not stop this user from writing")
        result = scraper("sync")
    finally:
        for folder in folders.values():
            folder.chmod(0o755)
    assert result.code == 5
    assert "not writable" in result.err
    assert store_files(workdir / "snapshots") == before


# Source names


@pytest.mark.parametrize("name", ["../x", "..", ".", "", "a/b", "/abs"])
def test_store_rejects_escaping_name(tmp_path, name):
    with pytest.raises(StoreError, match="would leave the snapshots folder"):
        Store(tmp_path / "snapshots", name)


# Commands on an empty store


@pytest.mark.parametrize("command", ["show", "diff"])
def test_empty_store_needs_sync(workdir, serve_page, scraper, command):
    write_config(workdir, serve_page("matrix-4rows-asc.html"))

    result = scraper(command)
    assert result.code == 5
    assert "run 'scraper sync' first" in result.err
    assert store_files(workdir / "snapshots") == {}


def test_empty_store_history(workdir, serve_page, scraper):
    write_config(workdir, serve_page("matrix-4rows-asc.html"))

    result = scraper("history")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: no versions stored yet\n"
    assert store_files(workdir / "snapshots") == {}
