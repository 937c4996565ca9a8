"""Faults in a store that must never cost good data: a damaged version that retention
would keep, a store written by a newer release, and a capture that decompresses to
more than fetch.max_bytes. Each store is built by `scraper sync` of the real captures
from a local file, and each case runs the CLI."""

from __future__ import annotations

import gzip
import tracemalloc

import pytest

from scraper import yamlio
from scraper.store import Store, checksum
from tests.conftest import SOURCE_COLUMNS, fixture_bytes, store_files

SOURCE = "capi-image-builder"
# The pages of versions 1, 2 and 3: 3 rows, 1.30.4 added, 1.30.4 removed again.
PAGES = ["matrix-3rows-asc.html", "matrix-4rows-asc.html", "matrix-3rows-asc.html"]
DAMAGED_HINT = "the file is damaged; restore it from a backup"


def write_store_config(workdir, retention: str = "", fetch: str = "") -> None:
    """Write a config.yaml whose source reads page.html in the working folder."""
    text = (
        "snapshots_dir: snapshots\n"
        "lock_timeout: 5\n"
        f"{retention}"
        "sources:\n"
        f"  - name: {SOURCE}\n"
        "    url: page.html\n"
        f"{fetch}"
        f"{SOURCE_COLUMNS}"
    )
    (workdir / "config.yaml").write_text(text, encoding="utf-8")


def sync_pages(workdir, scraper, pages: list[str]) -> Store:
    """Sync each page in turn, without retention, and return the store."""
    write_store_config(workdir)
    for page in pages:
        (workdir / "page.html").write_bytes(fixture_bytes(page))
        result = scraper("sync")
        assert result.code == 0, result.err
    return Store(workdir / "snapshots", SOURCE)


def damage_version(store: Store, number: int) -> None:
    """Edit a row of version ``number`` without updating its checksum."""
    path = store.version_path(number)
    data = path.read_bytes()
    assert b"1.27.13" in data
    path.write_bytes(data.replace(b"1.27.13", b"1.27.14"))


def bump_schema_version(path, schema: int) -> None:
    """Rewrite a store file with a newer schema_version and a matching checksum."""
    document = yamlio.load(path.read_text(encoding="utf-8"))
    document["schema_version"] = schema
    document["checksum"] = checksum(document)
    path.write_text(yamlio.dump(document), encoding="utf-8")


@pytest.fixture
def three_versions(workdir, scraper) -> Store:
    store = sync_pages(workdir, scraper, PAGES)
    assert store.version_numbers() == [1, 2, 3]
    return store


# prune and a damaged version that retention keeps


@pytest.mark.parametrize("arguments", [[], ["--dry-run"]], ids=["delete", "dry-run"])
def test_prune_damaged_newest_deletes_nothing(
    three_versions, workdir, scraper, arguments
):
    damage_version(three_versions, 3)
    write_store_config(workdir, retention="retention: {keep_versions: 1}\n")
    before = store_files(three_versions.path)

    result = scraper("prune", "--source", SOURCE, *arguments)
    assert result.code == 5
    assert result.out == ""
    assert str(three_versions.version_path(3)) in result.err
    assert "no version was deleted, because version 3" in result.err
    assert "the checksum does not match the content" in result.err
    assert DAMAGED_HINT in result.err
    assert store_files(three_versions.path) == before


def test_prune_damaged_older_kept_deletes_nothing(three_versions, workdir, scraper):
    # Version 2 is kept but is not the newest, so only the check of every kept
    # version finds the damage.
    damage_version(three_versions, 2)
    write_store_config(workdir, retention="retention: {keep_versions: 2}\n")
    before = store_files(three_versions.path)

    result = scraper("prune")
    assert result.code == 5
    assert str(three_versions.version_path(2)) in result.err
    assert "no version was deleted, because version 2" in result.err
    assert store_files(three_versions.path) == before


def test_prune_damaged_expired_version_deleted(three_versions, workdir, scraper):
    # A damaged version that expires is no reason to keep it.
    damage_version(three_versions, 1)
    write_store_config(workdir, retention="retention: {keep_versions: 2}\n")

    result = scraper("prune")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: deleted version 1\n"
    assert three_versions.version_numbers() == [2, 3]


def test_prune_newer_kept_version_deletes_nothing(three_versions, workdir, scraper):
    bump_schema_version(three_versions.version_path(3), 2)
    write_store_config(workdir, retention="retention: {keep_versions: 1}\n")
    before = store_files(three_versions.path)

    result = scraper("prune")
    assert result.code == 5
    assert "no version was deleted, because version 3" in result.err
    assert "upgrade scraper to a release that reads schema_version 2" in result.err
    assert "damaged;" not in result.err
    assert store_files(three_versions.path) == before


def test_sync_damaged_kept_skips_retention(three_versions, workdir, scraper):
    damage_version(three_versions, 2)
    write_store_config(workdir, retention="retention: {keep_versions: 2}\n")

    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: unchanged, version 3\n"
    assert f"{SOURCE}: retention not applied: " in result.err
    assert "no version was deleted, because version 2" in result.err
    assert three_versions.version_numbers() == [1, 2, 3]


# A store written by a newer release


@pytest.mark.parametrize("schema", [2, 7])
@pytest.mark.parametrize("command", ["show", "sync", "history", "reparse"])
def test_newer_snapshot_asks_for_upgrade(workdir, scraper, schema, command):
    store = sync_pages(workdir, scraper, PAGES[:1])
    bump_schema_version(store.version_path(1), schema)
    before = store_files(store.path)

    result = scraper(command)
    assert result.code == 5
    assert str(store.version_path(1)) in result.err
    assert (
        f"unsupported snapshot: schema_version {schema} was written by a newer "
        "scraper (this one reads 1)"
    ) in result.err
    assert f"upgrade scraper to a release that reads schema_version {schema}" in result.err
    assert "keep the file, because it is not damaged" in result.err
    assert "invalid snapshot" not in result.err
    assert DAMAGED_HINT not in result.err
    assert store_files(store.path) == before


@pytest.mark.parametrize("command", ["show", "sync"])
def test_newer_state_asks_for_upgrade(workdir, scraper, command):
    store = sync_pages(workdir, scraper, PAGES[:1])
    bump_schema_version(store.state_path, 2)
    before = store_files(store.path)

    result = scraper(command)
    assert result.code == 5
    assert str(store.state_path) in result.err
    assert (
        "unsupported state file: schema_version 2 was written by a newer scraper "
        "(this one reads 1)"
    ) in result.err
    assert "upgrade scraper to a release that reads schema_version 2" in result.err
    assert "delete state.yaml" not in result.err
    assert store_files(store.path) == before


def test_older_schema_still_damaged(workdir, scraper):
    # Only a newer schema_version means a newer release, so 0 is a damaged file.
    store = sync_pages(workdir, scraper, PAGES[:1])
    bump_schema_version(store.version_path(1), 0)

    result = scraper("show")
    assert result.code == 5
    assert "invalid snapshot: unsupported schema_version 0" in result.err
    assert DAMAGED_HINT in result.err


# reparse and the size of a capture


def max_bytes_setting(size: int) -> str:
    return f"    fetch:\n      max_bytes: {size}\n"


def test_reparse_gzip_bomb_fails(workdir, scraper):
    store = sync_pages(workdir, scraper, PAGES[:2])
    limit = 1024 * 1024
    # 64 MiB of zeros compress to about 64 KiB.
    bomb = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    store.capture_path(2).write_bytes(bomb)
    write_store_config(workdir, fetch=max_bytes_setting(limit))

    tracemalloc.start()
    try:
        result = scraper("reparse")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.code == 1
    assert result.out == (
        f"{SOURCE}: reparsed 2 versions: 1 failed, 1 same\n"
        "version 2: failed\n"
        f"  the capture is larger than fetch.max_bytes ({limit} bytes) when decompressed\n"
    )
    # Reading the whole capture would take 64 MiB at once.
    assert peak < 16 * 1024 * 1024, f"peak Python memory {peak} bytes"


@pytest.mark.parametrize(
    ("margin", "summary"),
    [(0, "1 same"), (-1, "1 failed")],
    ids=["at-limit", "one-byte-over"],
)
def test_reparse_capture_size_limit(workdir, scraper, margin, summary):
    sync_pages(workdir, scraper, PAGES[:1])
    size = len(fixture_bytes(PAGES[0]))
    write_store_config(workdir, fetch=max_bytes_setting(size + margin))

    result = scraper("reparse")
    assert result.out.startswith(f"{SOURCE}: reparsed 1 version: {summary}\n")
    if margin < 0:
        assert result.code == 1
        assert f"larger than fetch.max_bytes ({size - 1} bytes)" in result.out
    else:
        assert result.code == 0, result.out


def test_rollback_continues_past_failed_step(workdir, scraper):
    # A file where the captures folder belongs: the capture cannot be written, and
    # removing it during the rollback fails too. The rollback goes on, names that
    # file, and leaves no version behind.
    store = sync_pages(workdir, scraper, PAGES[:1])
    store.captures_path.rename(workdir / "captures-moved")
    store.captures_path.write_bytes(b"")
    (workdir / "page.html").write_bytes(fixture_bytes(PAGES[1]))
    before = store.latest_path.read_bytes()

    result = scraper("sync")

    assert result.code == 5
    assert f"rolling back: cannot remove {store.capture_path(2)}" in result.err
    assert not store.version_path(2).exists()
    assert store.latest_path.read_bytes() == before
    assert store.load_state()["last_version"] == 1


def test_future_fetch_time_does_not_block_writes(workdir, scraper):
    # A latest version stamped in the future (a clock that was wrong, then fixed)
    # is not another run's newer page, so a change is still written.
    store = sync_pages(workdir, scraper, PAGES[:1])
    for path in (store.version_path(1), store.latest_path):
        document = yamlio.load(path.read_text(encoding="utf-8"))
        document["fetched_at"] = "2099-01-01T00:00:00Z"
        document["checksum"] = checksum(document)
        path.write_text(yamlio.dump(document), encoding="utf-8")
    (workdir / "page.html").write_bytes(fixture_bytes(PAGES[1]))

    result = scraper("sync")

    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: changed, version 2 (1 added, 0 removed, 0 changed)\n"
    assert store.version_numbers() == [1, 2]
