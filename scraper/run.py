"""A run: sync the chosen sources, update their run records, notify, write metrics.

``scraper sync`` and each job of ``scraper schedule`` call ``run_sync``, so a
scheduled run and a one-shot run behave the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from .config import Config, Source
from .errors import Cancelled, ScraperError, StoreError
from .records import RecordBook, RunRecord, metrics_text, now_text, parse_time, write_atomic
from .sync import SyncResult, sync_source

log = logging.getLogger(__name__)


def run_sync(
    config: Config,
    sources: list[Source],
    url: str | None = None,
    cancel: threading.Event | None = None,
    on_result: Callable[[SyncResult], None] | None = None,
) -> list[SyncResult]:
    """Sync ``sources`` one after another and return their results.

    A failing source never stops the others. Raises ConfigError before any fetch if a
    notification URL cannot be used. A run record or metrics file that cannot be
    written is logged as an error and does not change the results: the snapshots
    themselves are right.
    """
    notifying = any(source.notify.urls for source in sources)
    if notifying:
        from .notify import check_notify_settings

        check_notify_settings(config)
    from .fetch import build_session

    book = RecordBook(config.run_state_dir)
    sessions: dict = {}
    results: list[SyncResult] = []
    events = []
    try:
        for source in sources:
            if cancel is not None and cancel.is_set():
                break
            if source.fetch not in sessions:
                sessions[source.fetch] = build_session(source.fetch)
            result = _sync_one(
                config, source, url, sessions[source.fetch], cancel, log_error=on_result is None
            )
            if result is None:
                break
            results.append(result)
            if on_result is not None:
                on_result(result)
            try:
                events.extend(record_result(book, source, result))
            except StoreError as error:
                log.error("%s: run record not updated: %s", source.name, error)
    finally:
        for session in sessions.values():
            session.close()
    if notifying:
        _notify(config, sources, events)
    _write_metrics(config, book)
    return results


def _sync_one(config, source, url, session, cancel, log_error: bool) -> SyncResult | None:
    # With log_error false the caller reports errors itself, so they are not doubled.
    started = time.monotonic()
    log.info("%s: sync started", source.name)
    try:
        result = sync_source(config, source, url=url, session=session, cancel=cancel)
    except Cancelled:
        log.warning("%s: sync abandoned because the process is stopping", source.name)
        return None
    except ScraperError as error:
        log.log(logging.ERROR if log_error else logging.DEBUG, "%s", error)
        result = SyncResult(source.name, "error", error=error)
    log.info(
        "%s: sync finished in %.1f s: %s",
        source.name, time.monotonic() - started, result.status,
    )
    return result


def record_result(book: RecordBook, source: Source, result: SyncResult) -> list:
    """Update the run record of ``source`` and return the notifications it calls for."""
    from . import notify

    events = []
    with book.updating(source.name) as record:
        now = now_text()
        record.last_check = now
        record.last_result = result.status
        if result.error is not None:
            events.extend(_record_failure(record, source, result, now))
        else:
            if record.failing_notified:
                events.append(notify.recovered_event(source.name, record.consecutive_failures))
            record.consecutive_failures = 0
            record.failing_since = None
            record.last_error = None
            record.failing_notified = False
            record.stale_notified = False
            record.last_success = now
            record.latest_version = result.version
            record.rows = result.rows
            if result.status == "changed":
                record.last_change = now
                record.changes_total += 1
                events.append(
                    notify.changed_event(source.name, result.version, result.diff, source.key)
                )
    return events if source.notify.urls else []


def _record_failure(record: RunRecord, source: Source, result: SyncResult, now: str) -> list:
    from . import notify

    events = []
    record.consecutive_failures += 1
    record.failing_since = record.failing_since or now
    record.last_error = str(result.error)
    threshold = source.notify.failure_threshold
    if record.consecutive_failures >= threshold and not record.failing_notified:
        events.append(
            notify.failing_event(source.name, record.consecutive_failures, record.last_error)
        )
        record.failing_notified = True
    healthy_since = parse_time(record.last_success or record.failing_since)
    limit = timedelta(hours=source.notify.stale_after_hours)
    if healthy_since and datetime.now(timezone.utc) - healthy_since > limit:
        if not record.stale_notified:
            events.append(
                notify.stale_event(source.name, record.last_success, source.notify.stale_after_hours)
            )
            record.stale_notified = True
    return events


def _notify(config: Config, sources: list[Source], events: list) -> None:
    from .notify import Outbox

    outbox = Outbox(config.run_state_dir)
    try:
        for event in events:
            outbox.add(event)
        outbox.flush(config)
    except StoreError as error:
        log.error("notification outbox: %s", error)


def metrics_path(config: Config):
    return config.metrics_file or config.run_state_dir / "metrics.prom"


def _write_metrics(config: Config, book: RecordBook) -> None:
    try:
        records = book.load_all([source.name for source in config.sources])
        write_atomic(metrics_path(config), metrics_text(records).encode("utf-8"))
    except StoreError as error:
        log.error("metrics not written: %s", error)
