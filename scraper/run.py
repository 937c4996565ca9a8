"""A run: sync the chosen sources, update their run records, notify, write metrics.

``scraper sync`` and each job of ``scraper schedule`` call ``run_sync``, so a
scheduled run and a one-shot run behave the same.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

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
    """Sync ``sources`` and return their results, in the order of ``sources``.

    Up to ``config.concurrency`` sources are synced at once, but requests to one
    host and port go one at a time. A failing source never stops the others.
    ``on_result`` is called in the calling thread, in the order of ``sources``.
    Raises ConfigError before any fetch if a notification URL cannot be used. A run
    record or metrics file that cannot be written is logged as an error and does
    not change the results: the snapshots themselves are right.
    """
    notifying = any(source.notify.urls for source in sources)
    if notifying:
        from .notify import check_notify_settings

        check_notify_settings(config)

    book = RecordBook(config.run_state_dir, config.lock_timeout)
    hosts = _HostSlots()
    stop = _Stop(cancel)
    results: list[SyncResult] = []
    events = []

    def sync(source: Source) -> SyncResult | None:
        if stop.is_set():
            return None
        session = hosts.session(source.fetch, url or source.url)
        return _sync_one(
            config, source, url, session, stop, log_error=on_result is None, hosts=hosts
        )

    def finish(source: Source, result: SyncResult | None) -> None:
        if result is None:
            return
        results.append(result)
        if on_result is not None:
            on_result(result)
        try:
            events.extend(record_result(book, source, result))
        except StoreError as error:
            log.error("%s: run record not updated: %s", source.name, error)

    workers = min(config.concurrency, len(sources))
    try:
        if workers <= 1:
            for source in sources:
                finish(source, sync(source))
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="sync") as executor:
                futures = [(source, executor.submit(sync, source)) for source in sources]
                try:
                    for source, future in futures:
                        finish(source, future.result())
                except BaseException:
                    # Ctrl-C or an error in the caller's callback: the running syncs
                    # stop at their next step and the queued ones never start.
                    stop.set()
                    raise
    finally:
        hosts.close()
    if notifying:
        _notify(config, sources, events)
    _write_metrics(config, book)
    return results


class _Stop:
    """A cancel flag set by the caller's event or by this run itself.

    The run sets its own flag when it is interrupted, without setting the caller's
    event, which may belong to a scheduler that keeps running.
    """

    def __init__(self, outer: threading.Event | None) -> None:
        self._outer = outer
        self._own = threading.Event()

    def set(self) -> None:
        self._own.set()

    def is_set(self) -> bool:
        return self._own.is_set() or (self._outer is not None and self._outer.is_set())


class _HostSlots:
    """One lock and one HTTP session per host and port, shared by a run's threads.

    A thread holds the host's lock for the whole download, so a server gets one
    request at a time from a run, and the host's session is never used by two
    threads at once. NOTE: a redirect to another host is followed inside the first
    host's slot, so that host may briefly see two requests from one run.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple, threading.Lock] = {}
        self._sessions: dict[tuple, object] = {}

    @staticmethod
    def host(url: str) -> tuple:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            port = {"http": 80, "https": 443}.get(parts.scheme.lower())
        return (parts.hostname or "", port)

    def session(self, settings, url: str):
        from .fetch import build_session

        key = (settings, self.host(url))
        with self._guard:
            if key not in self._sessions:
                self._sessions[key] = build_session(settings)
            return self._sessions[key]

    @contextlib.contextmanager
    def slot(self, url: str) -> Iterator[None]:
        host = self.host(url)
        if not host[0]:  # A file path or file:// URL: no server to spare.
            yield
            return
        with self._guard:
            lock = self._locks.setdefault(host, threading.Lock())
        with lock:
            yield

    def close(self) -> None:
        with self._guard:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()


def _sync_one(
    config, source, url, session, cancel, log_error: bool, hosts: _HostSlots
) -> SyncResult | None:
    # With log_error false the caller reports errors itself, so they are not doubled.
    started = time.monotonic()
    log.info("%s: sync started", source.name)
    try:
        result = sync_source(
            config, source, url=url, session=session, cancel=cancel, fetch_slot=hosts.slot
        )
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
    """Update the run record of ``source`` and return the notifications it calls for.

    The record's flags change the same way whether or not the source has
    notification URLs. Events are built only when it has them, so a run that sends
    nothing never imports the notification module.
    """
    notify = _notify_module(source)
    events = []
    with book.updating(source.name) as record:
        now = now_text()
        record.last_check = now
        record.last_result = result.status
        if result.error is not None:
            events.extend(_record_failure(record, source, result, now))
        else:
            if record.failing_notified and notify:
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
                if notify:
                    events.append(
                        notify.changed_event(source.name, result.version, result.diff, source.key)
                    )
    return events


def _notify_module(source: Source):
    # The notification module, or None when the source sends no notifications.
    if not source.notify.urls:
        return None
    from . import notify

    return notify


def _record_failure(record: RunRecord, source: Source, result: SyncResult, now: str) -> list:
    notify = _notify_module(source)
    events = []
    record.consecutive_failures += 1
    record.failing_since = record.failing_since or now
    record.last_error = str(result.error)
    threshold = source.notify.failure_threshold
    if record.consecutive_failures >= threshold and not record.failing_notified:
        if notify:
            events.append(
                notify.failing_event(source.name, record.consecutive_failures, record.last_error)
            )
        record.failing_notified = True
    healthy_since = parse_time(record.last_success or record.failing_since)
    limit = timedelta(hours=source.notify.stale_after_hours)
    if healthy_since and datetime.now(timezone.utc) - healthy_since > limit:
        if not record.stale_notified:
            if notify:
                events.append(notify.stale_event(
                    source.name, record.last_success, source.notify.stale_after_hours
                ))
            record.stale_notified = True
    return events


def _notify(config: Config, sources: list[Source], events: list) -> None:
    from .locks import LockTimeout
    from .notify import Outbox

    outbox = Outbox(config.run_state_dir)
    try:
        for event in events:
            outbox.add(event)
        outbox.flush(config)
    except StoreError as error:
        log.error("notification outbox: %s", error)
    except LockTimeout as error:
        # Another run is sending; the events stay in the outbox for the next flush.
        log.error("notification outbox not flushed: %s", error)
    except OSError as error:
        # The outbox or its lock cannot be written, but the sync's result is kept.
        log.error(
            "notification outbox not flushed: %s: %s",
            error.filename or outbox.folder, error.strerror or error,
        )


def metrics_path(config: Config):
    return config.metrics_file or config.run_state_dir / "metrics.prom"


def _write_metrics(config: Config, book: RecordBook) -> None:
    try:
        records = book.load_all([source.name for source in config.sources])
        write_atomic(metrics_path(config), metrics_text(records).encode("utf-8"))
    except StoreError as error:
        log.error("metrics not written: %s", error)
