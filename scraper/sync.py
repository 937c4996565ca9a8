"""One sync of a source: fetch, parse, compare with the latest version, write on change.

The page is fetched and parsed before the store is locked or touched, so a failed
fetch or a page whose table changed shape leaves every file of the store as it was.
The lock is held only to re-read the latest version, compare and write, which is
what keeps two runs at once from writing the same version twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone

from . import __version__
from .config import Config, Source
from .diff import Diff, compare
from .errors import Cancelled, ScraperError, StoreError
from .fetch import Page, Validators, fetch_page
from .parse import parse_page
from .redact import redact_url
from .store import SCHEMA_VERSION, Store, parse_timestamp

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    """The outcome of syncing one source."""

    source: str
    status: str  # "changed", "unchanged", "not-modified" or "error"
    version: int | None = None
    diff: Diff | None = None
    error: ScraperError | None = None
    rows: int | None = None

    def summary(self) -> str:
        if self.status == "changed":
            return f"{self.source}: changed, version {self.version} ({self.diff.counts()})"
        if self.status == "unchanged":
            return f"{self.source}: unchanged, version {self.version}"
        if self.status == "not-modified":
            return f"{self.source}: unchanged (HTTP 304 not modified), version {self.version}"
        return f"{self.source}: error: {self.error.stage}: {self.error.message}"


def sync_source(
    config: Config,
    source: Source,
    url: str | None = None,
    session=None,
    cancel: threading.Event | None = None,
    fetch_slot: Callable[[str], AbstractContextManager] | None = None,
) -> SyncResult:
    """Sync one source and return the result. Raises ScraperError on failure.

    When ``cancel`` is set, raises Cancelled at the next step that has not yet
    touched a file. ``fetch_slot(url)`` is held around the download, which lets a
    caller syncing several sources at once limit the requests per host.
    """
    store = Store(config.snapshots_dir, source.name)
    url = url or source.url
    validators = _stored_validators(store, url)
    with fetch_slot(url) if fetch_slot else contextlib.nullcontext():
        _check_cancel(cancel)
        page = fetch_page(source, validators, session=session, url=url, cancel=cancel)
    _check_cancel(cancel)
    if page.not_modified:
        with store.locked(config.lock_timeout):
            result = _record_unchanged(store, page, url, "not-modified")
            _apply_retention(store, source)
            return result
    log.info(
        "%s: fetched %d bytes from %s (charset %s from %s)",
        source.name, len(page.content), page.describe(), page.encoding, page.encoding_source,
    )
    rows = parse_page(page.text, source, page.describe())
    log.info("%s: parsed %d rows", source.name, len(rows))
    _check_cancel(cancel)
    with store.locked(config.lock_timeout):
        latest = store.latest()
        _warn_missing_versions(store, latest)
        if _fetched_before(page, latest):
            return _superseded(store, page, latest)
        diff = compare(latest["rows"] if latest else [], rows, source.key)
        if latest is not None and not diff:
            if _write_was_interrupted(store, latest):
                result = _finish_interrupted(store, page, url, latest)
            else:
                result = _record_unchanged(store, page, url, "unchanged")
        else:
            result = _write_change(store, source, page, url, rows, diff, latest)
        _apply_retention(store, source)
        return result


def _fetched_before(page: Page, latest: dict | None) -> bool:
    """Return whether ``latest`` was fetched after ``page``, by another run.

    Two runs can overlap: one waits for a slow server while the other fetches,
    parses and writes a newer page. The page of the slower run is then older than
    the latest version and must not become the latest, because versions are
    ordered by fetch time. Stored times have whole seconds, so two fetches in the
    same second count as simultaneous.
    """
    if latest is None:
        return False
    stored = parse_timestamp(latest["fetched_at"])
    # A fetch time later than now is not another run's: the clock was wrong or went
    # back. Skipping the write then would lose every change until the clock caught
    # up, so the page is written as usual.
    now = datetime.now(timezone.utc)
    return page.fetched_at.replace(microsecond=0) < stored <= now


def _superseded(store: Store, page: Page, latest: dict) -> SyncResult:
    log.warning(
        "%s: version %d, fetched at %s by another run, is newer than this run's page "
        "(fetched at %s), which is not written",
        store.source, latest["version"], latest["fetched_at"], _timestamp(page.fetched_at),
    )
    return SyncResult(
        store.source, "unchanged", version=latest["version"], rows=latest["row_count"]
    )


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()


def _stored_validators(store: Store, url: str) -> Validators | None:
    # Validators are used only for the URL they came from, and only while a version
    # exists, because a 304 without a stored version leaves nothing to compare.
    state = store.load_state()
    stored_url = state["validators"]["url"] if state else None
    if stored_url != redact_url(url) or store.newest_number(state) is None:
        return None
    validators = Validators(
        etag=state["validators"]["etag"],
        last_modified=state["validators"]["last_modified"],
    )
    return validators or None


def _record_unchanged(store: Store, page: Page, url: str, status: str) -> SyncResult:
    latest = store.latest()  # Validates the baseline even after a 304 response.
    if latest is None:
        raise StoreError(
            "the store has no versions, but the server answered 304 not modified",
            source=store.source,
            where=str(store.path),
            hint="run sync again; it fetches the page without validators",
        )
    latest_number = latest["version"]
    store.repair_latest(latest_number)
    store.write_state(
        _new_state(store, page, url, status, latest_number, store.load_state())
    )
    log.info("%s: %s, latest version %d", store.source, status, latest_number)
    return SyncResult(store.source, status, version=latest_number, rows=latest["row_count"])


def _warn_missing_versions(store: Store, latest: dict | None) -> None:
    state = store.load_state()
    newest = latest["version"] if latest else 0
    if state is not None and state["last_version"] > newest:
        log.warning(
            "%s: versions %d to %d are missing from %s; comparing with version %s",
            store.source, newest + 1, state["last_version"], store.versions_path,
            newest or "none (empty store)",
        )


def _write_was_interrupted(store: Store, latest: dict) -> bool:
    # state.yaml is written last. If it lags behind the newest version file, the
    # run that wrote that version was killed before it could report the change.
    state = store.load_state()
    return state is not None and state["last_version"] < latest["version"]


def _finish_interrupted(store: Store, page: Page, url: str, latest: dict) -> SyncResult:
    number = latest["version"]
    log.warning("%s: finishing version %d, whose run was interrupted", store.source, number)
    store.repair_latest(number)
    store.write_state(_new_state(store, page, url, "changed", number, store.load_state()))
    diff = Diff.from_data(latest["diff"])
    return SyncResult(store.source, "changed", version=number, diff=diff, rows=latest["row_count"])


def _write_change(
    store: Store,
    source: Source,
    page: Page,
    url: str,
    rows: list,
    diff: Diff,
    latest: dict | None,
) -> SyncResult:
    state = store.load_state()
    number = store.next_version_number(state)
    document = {
        "schema_version": SCHEMA_VERSION,
        "source": source.name,
        "version": number,
        "url": redact_url(url),
        "final_url": redact_url(page.final_url),
        "fetched_at": _timestamp(page.fetched_at),
        "page_sha256": page.sha256,
        "http": {
            "status": page.status,
            "etag": page.validators.etag,
            "last_modified": page.validators.last_modified,
            "encoding": page.encoding,
        },
        "tool_version": __version__,
        "row_count": len(rows),
        "rows": rows,
        "diff": {"previous_version": latest["version"] if latest else None, **diff.to_data()},
    }
    new_state = _new_state(store, page, url, "changed", number, state)
    path = store.write_version(document, new_state, capture=page.content)
    log.info("%s: wrote version %d to %s (%s)", source.name, number, path, diff.counts())
    return SyncResult(source.name, "changed", version=number, diff=diff, rows=len(rows))


def _apply_retention(store: Store, source: Source) -> None:
    # Runs after the sync's own writes, so a failure here never loses the result.
    if not source.retention.enabled:
        return
    try:
        expired = store.expired_versions(source.retention)
        for number in expired:
            store.delete_version(number)
    except StoreError as error:
        log.error("%s: retention not applied: %s", source.name, error)
        return
    if expired:
        log.info(
            "%s: deleted %d versions older than the retention setting keeps (%s)",
            source.name, len(expired), ", ".join(map(str, expired)),
        )


def _new_state(
    store: Store, page: Page, url: str, result: str, last_version: int, previous: dict | None
) -> dict:
    highest = max(last_version, previous["last_version"] if previous else 0)
    return {
        "schema_version": SCHEMA_VERSION,
        "source": store.source,
        "last_version": highest,
        "last_checked": _timestamp(page.fetched_at),
        "last_result": result,
        "validators": {
            "url": redact_url(url),
            "etag": page.validators.etag,
            "last_modified": page.validators.last_modified,
        },
    }


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
