"""Run records: what happened the last time each source was synced.

The snapshot store changes only when the matrix changes, and a failed run must not
touch it. Failure streaks, the last error and the last check time therefore live
under ``state_dir``: ``sources/<name>.yaml`` per source, and the Prometheus text file
written from them. Each record is updated under its own lock, so two runs at once
never lose an update.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import yaml

from . import yamlio
from .files import replace_atomically
from .errors import StoreError

log = logging.getLogger(__name__)

RECORD_SCHEMA = 1


@dataclass
class RunRecord:
    """The outcome history of one source, as ``scraper status`` shows it.

    Times are UTC ISO 8601 strings.
    """

    source: str
    last_check: str | None = None
    last_success: str | None = None
    last_change: str | None = None
    last_result: str | None = None
    latest_version: int | None = None
    rows: int | None = None
    consecutive_failures: int = 0
    failing_since: str | None = None
    last_error: str | None = None
    changes_total: int = 0
    failing_notified: bool = False
    stale_notified: bool = False

    def to_data(self) -> dict:
        return {"schema_version": RECORD_SCHEMA, **asdict(self)}


def now_text() -> str:
    """Return the current UTC time as an ISO 8601 string with a ``Z`` suffix."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """Return the aware datetime of a stored time string, or None."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class RecordBook:
    """Read and update the run records under ``state_dir``."""

    def __init__(self, state_dir: Path, lock_timeout: float = 60) -> None:
        self.state_dir = Path(state_dir)
        self.folder = self.state_dir / "sources"
        self.lock_timeout = lock_timeout

    def path(self, source: str) -> Path:
        return self.folder / f"{source}.yaml"

    def load(self, source: str) -> RunRecord:
        """Return the record of ``source``; an empty one before its first run."""
        path = self.path(source)
        try:
            data = yamlio.load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return RunRecord(source)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            detail = " ".join(str(error).split())[:200]
            raise _record_error(path, f"cannot read the run record: {detail}") from None
        return _validated(data, source, path)

    @contextlib.contextmanager
    def updating(self, source: str):
        """Yield the record of ``source`` under its lock and save it afterwards."""
        from .locks import FileLock, LockTimeout

        lock_path = self.folder / f"{source}.lock"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = FileLock(lock_path, timeout=self.lock_timeout)
            lock.acquire()
        except LockTimeout:
            # The lock file must not be deleted while another run holds it, so this
            # error does not carry _record_error's "delete the file" hint.
            raise StoreError(
                "cannot update the run record: another run has held its lock for more "
                f"than {self.lock_timeout:g} s",
                where=str(lock_path),
                hint="wait for the other run to finish, or raise lock_timeout",
            ) from None
        except OSError as error:
            raise StoreError(
                f"cannot update the run record: cannot create the lock: {error.strerror}",
                where=str(lock_path),
                hint="make the state folder writable, and remove anything that is "
                "not a file at this path",
            ) from None
        try:
            try:
                record = self.load(source)
            except StoreError as error:
                # Run records are only history; a damaged one is started afresh.
                log.warning("%s; starting a new run record", error)
                record = RunRecord(source)
            yield record
            write_atomic(self.path(source), yamlio.dump(record.to_data()).encode("utf-8"))
        finally:
            lock.release()

    def load_all(self, sources: list[str]) -> list[RunRecord]:
        return [self.load(source) for source in sources]


def _validated(data: object, source: str, path: Path) -> RunRecord:
    known = {item.name: item for item in fields(RunRecord)}
    if not isinstance(data, dict) or data.get("schema_version") != RECORD_SCHEMA:
        raise _record_error(path, "the run record is damaged or from another release")
    values = {key: value for key, value in data.items() if key != "schema_version"}
    unknown = set(values) - set(known)
    if unknown or values.get("source") != source:
        raise _record_error(path, f"the run record has unexpected keys {sorted(unknown)}")
    return RunRecord(**values)


def _record_error(path: Path, message: str) -> StoreError:
    return StoreError(
        message,
        where=str(path),
        hint="delete the file; it only holds run history and is rebuilt by the next run",
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; raise StoreError on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, data)
    except OSError as error:
        raise StoreError(f"cannot write: {error.strerror or error}", where=str(path)) from None


def metrics_text(records: list[RunRecord]) -> str:
    """Return the records as Prometheus text-format metrics, labelled by source."""
    families = (
        ("scraper_last_success_timestamp_seconds", "gauge",
         "Unix time of the last successful sync.", lambda r: _timestamp(r.last_success)),
        ("scraper_last_check_timestamp_seconds", "gauge",
         "Unix time of the last sync attempt.", lambda r: _timestamp(r.last_check)),
        ("scraper_consecutive_failures", "gauge",
         "Failed syncs since the last success.", lambda r: r.consecutive_failures),
        ("scraper_rows", "gauge",
         "Rows in the latest snapshot version.", lambda r: r.rows),
        ("scraper_latest_version", "gauge",
         "Number of the latest snapshot version.", lambda r: r.latest_version),
        ("scraper_changes_total", "counter",
         "Snapshot versions written because the matrix changed.", lambda r: r.changes_total),
    )
    lines = []
    for name, kind, help_text, value_of in families:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for record in records:
            value = value_of(record)
            if value is not None:
                lines.append(f'{name}{{source="{_label(record.source)}"}} {value}')
    return "\n".join(lines) + "\n"


def _timestamp(text: str | None) -> float | None:
    moment = parse_time(text)
    return moment.timestamp() if moment else None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
