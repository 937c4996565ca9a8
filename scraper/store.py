"""The versioned snapshot store of one source.

Layout under ``<snapshots_dir>/<source>/``:

- ``versions/000001.yaml``, ``000002.yaml``, ...: immutable snapshots, one per change.
- ``captures/000001.html.gz``, ...: the fetched page of each version, gzip-compressed,
  so ``scraper reparse`` can derive the rows again with a newer parser.
- ``latest.yaml``: a copy of the newest version, at a path that never changes.
- ``state.yaml``: when the source was last checked, the server's cache validators and
  the highest version number ever written, so numbers are never reused.
- ``.lock``: the lock file that keeps two runs from writing at once.

Every write goes to a temporary file in the same folder, is flushed and fsynced, then
renamed into place. Every file read back is parsed with a safe loader and validated,
including a checksum over its content, so a damaged or truncated file is an error
instead of a baseline.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from . import yamlio
from .config import FetchSettings
from .files import replace_atomically
from .locks import FileLock, LockTimeout
from .errors import StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
VERSION_FILE = re.compile(r"^(\d{6,})\.yaml$")
SNAPSHOT_KEYS = (
    "schema_version", "source", "version", "url", "final_url", "fetched_at",
    "page_sha256", "http", "tool_version", "row_count", "rows", "diff", "checksum",
)
STATE_KEYS = (
    "schema_version", "source", "last_version", "last_checked", "last_result",
    "validators", "checksum",
)


def checksum(document: dict) -> str:
    """Return the sha256 of the document's canonical JSON, without its checksum key."""
    body = {key: value for key, value in document.items() if key != "checksum"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Store:
    """Read and write the snapshot files of one source."""

    def __init__(self, root: Path, source: str) -> None:
        self.root = Path(root)
        self.source = source
        self.path = self.root / source
        if self.path.resolve().parent != self.root.resolve():
            raise StoreError(
                f"source name {source!r} would leave the snapshots folder",
                where=str(self.root),
            )
        self.versions_path = self.path / "versions"
        self.captures_path = self.path / "captures"
        self.latest_path = self.path / "latest.yaml"
        self.state_path = self.path / "state.yaml"
        self.lock_path = self.path / ".lock"

    def error(self, path: Path, message: str, hint: str | None = None) -> StoreError:
        return StoreError(message, source=self.source, where=str(path), hint=hint)

    # Locking

    @contextlib.contextmanager
    def locked(self, timeout: float) -> Iterator[None]:
        """Hold the store's lock, waiting up to ``timeout`` seconds for another run."""
        self.make_folders()
        lock = FileLock(self.lock_path, timeout)
        try:
            lock.acquire()
        except LockTimeout:
            raise self.error(
                self.lock_path,
                f"another run has held the lock for more than {timeout:g} s",
                "wait for it to finish, or raise lock_timeout",
            ) from None
        except OSError as error:
            raise self.error(self.lock_path, f"cannot create the lock: {error.strerror}") from None
        try:
            self.remove_stale_temporaries()
            yield
        finally:
            lock.release()

    def make_folders(self) -> None:
        self.make_folder(self.versions_path)

    def make_folder(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self.error(folder, f"cannot create the folder: {error.strerror}") from None

    def remove_stale_temporaries(self, folders: tuple[Path, ...] | None = None) -> None:
        """Delete temporary files that a killed run left in ``folders``.

        Call with the lock held, so no other run is writing them. By default only
        the store's top folder is cleaned, because listing the versions folder costs
        time that grows with the history. A version write cleans that folder too.
        """
        for folder in folders or (self.path,):
            for temporary in folder.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    temporary.unlink()

    # Reading

    def version_numbers(self) -> list[int]:
        """Return the numbers of the stored versions in ascending order."""
        try:
            names = os.listdir(self.versions_path)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise self.error(self.versions_path, f"cannot list: {error.strerror}") from None
        numbers = (VERSION_FILE.match(name) for name in names)
        return sorted(int(match.group(1)) for match in numbers if match)

    def version_path(self, number: int) -> Path:
        return self.versions_path / f"{number:06d}.yaml"

    def load_version(self, number: int) -> dict:
        """Load, validate and return version ``number``."""
        path = self.version_path(number)
        document = self.read_yaml(path)
        if document is None and path.exists():
            raise self.error(path, "invalid snapshot: the file is empty", _DAMAGED_HINT)
        if document is None:
            known = self.version_numbers()
            raise self.error(
                path,
                f"version {number} does not exist",
                f"stored versions: {_ranges(known)}" if known else "the store is empty",
            )
        validate_snapshot(document, self.source, number, path)
        return document

    def newest_number(self, state: dict | None = None) -> int | None:
        """Return the number of the newest stored version, or None for an empty store.

        Starts from ``last_version`` in ``state`` (loaded when not given) and looks
        only at the files next to it, so the cost does not grow with the history.
        The versions folder is listed only when that number's file is missing: a
        version deleted by hand, or a store without state.yaml.
        """
        if state is None:
            state = self.load_state()
        number = state["last_version"] if state else 0
        if number and self.version_path(number).exists():
            # state.yaml is written after the version, so a killed run can leave
            # one newer version than it records.
            while self.version_path(number + 1).exists():
                number += 1
            return number
        numbers = self.version_numbers()
        return numbers[-1] if numbers else None

    def latest(self, state: dict | None = None) -> dict | None:
        """Return the newest stored version, or None for an empty store."""
        number = self.newest_number(state)
        return self.load_version(number) if number is not None else None

    def capture_path(self, number: int) -> Path:
        return self.captures_path / f"{number:06d}.html.gz"

    def load_capture(
        self, number: int, max_bytes: int = FetchSettings.max_bytes
    ) -> bytes | None:
        """Return the page fetched for version ``number``, or None if none was kept.

        Decompression stops after ``max_bytes`` + 1 bytes, so a damaged or crafted
        capture cannot fill the memory. A larger page raises StoreError, as a larger
        download fails the fetch.
        """
        path = self.capture_path(number)
        try:
            with gzip.open(path, "rb") as handle:
                content = handle.read(max_bytes + 1)
        except FileNotFoundError:
            return None
        except (OSError, EOFError) as error:
            raise self.error(
                path,
                f"the capture cannot be read: {error}",
                "delete the damaged capture; reparse then skips this version",
            ) from None
        if len(content) > max_bytes:
            raise self.error(
                path,
                f"the capture is larger than fetch.max_bytes ({max_bytes} bytes) "
                "when decompressed",
                "raise fetch.max_bytes if the page really is that large, or delete "
                "the capture so that reparse skips this version",
            )
        return content

    def load_state(self) -> dict | None:
        """Return the validated state file, or None before the first successful run."""
        document = self.read_yaml(self.state_path, hint=_STATE_HINT)
        if document is not None:
            validate_state(document, self.source, self.state_path)
        return document

    def read_yaml(self, path: Path, hint: str | None = None) -> dict | None:
        """Parse a store file with the safe loader; None when it does not exist.

        ``hint`` is the fix offered for a damaged file.
        """
        hint = hint or _DAMAGED_HINT
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise self.error(path, "the file is not UTF-8 text", hint) from None
        except OSError as error:
            raise self.error(path, f"cannot read: {error.strerror}") from None
        try:
            return yamlio.load(text)
        except yaml.constructor.ConstructorError as error:
            raise self.error(
                path,
                f"the file is not plain data ({error.problem})",
                "snapshots hold only strings, numbers, lists and mappings; "
                "delete the file or restore it from a backup",
            ) from None
        except yaml.YAMLError as error:
            raise self.error(
                path, f"invalid YAML: {' '.join(str(error).split())}", hint
            ) from None

    # Writing

    def next_version_number(self, state: dict | None) -> int:
        newest = self.newest_number(state) or 0
        return max(newest, state["last_version"] if state else 0) + 1

    def write_version(self, document: dict, state: dict, capture: bytes | None = None) -> Path:
        """Write a new version, its capture, ``latest.yaml`` and ``state.yaml``, or none.

        Call with the lock held. ``capture`` is the fetched page, stored compressed.
        If any write fails, the new version and capture files are removed and the
        previous ``latest.yaml`` and ``state.yaml`` are put back, so the next run
        finds the change again instead of a half-recorded one.
        """
        document["checksum"] = checksum(document)
        validate_snapshot(document, self.source, document["version"], "(new version)")
        data = yamlio.dump(document).encode("utf-8")
        path = self.version_path(document["version"])
        if path.exists():
            raise self.error(path, "refusing to overwrite an existing version")
        capture_path = self.capture_path(document["version"])
        self.remove_stale_temporaries((self.versions_path, self.captures_path))
        backups = {target: self.keep_backup(target) for target in (self.latest_path, self.state_path)}
        try:
            if capture is not None:
                self.make_folder(self.captures_path)
                # mtime=0 keeps the compressed bytes a function of the page alone.
                self.write_atomic(capture_path, gzip.compress(capture, mtime=0))
            self.write_atomic(path, data)
            self.write_atomic(self.latest_path, data)
            self.write_state(state)
        except StoreError:
            self.roll_back((path, capture_path), backups)
            raise
        finally:
            for backup in backups.values():
                if backup is not None:
                    backup.unlink(missing_ok=True)
        return path

    def expired_versions(self, retention, now: datetime | None = None) -> list[int]:
        """Return the numbers of the versions that ``retention`` no longer keeps.

        A version is kept when it is one of the newest ``keep_versions`` or younger
        than ``keep_days``. The newest version is always kept. Ages come from each
        version's ``fetched_at``. The scan starts at the oldest version and stops
        at the first one young enough to keep, because versions are numbered in
        the order they were fetched.

        When any version expires, every version that would be kept is loaded and
        validated first, and one that cannot be read raises StoreError. Deleting
        the good old versions of a store whose kept versions are damaged could
        leave no readable history at all. The check reads every kept version, so
        its cost grows with the kept history, and is paid only when one expires.
        """
        numbers = self.version_numbers()
        expired = self.select_expired(numbers, retention, now)
        if expired:
            self.validate_kept_versions(numbers[len(expired):])
        return expired

    def select_expired(
        self, numbers: list[int], retention, now: datetime | None
    ) -> list[int]:
        """Return the oldest of ``numbers`` that ``retention`` no longer keeps."""
        candidates = numbers[:-1]
        if retention.keep_versions is not None:
            candidates = numbers[: max(len(numbers) - retention.keep_versions, 0)]
        if retention.keep_days is None:
            return candidates
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention.keep_days)
        expired = []
        for number in candidates:
            if parse_timestamp(self.load_version(number)["fetched_at"]) >= cutoff:
                break
            expired.append(number)
        return expired

    def validate_kept_versions(self, numbers: list[int]) -> None:
        """Load each of ``numbers`` and raise StoreError at the first invalid version."""
        for number in numbers:
            try:
                self.load_version(number)
            except StoreError as error:
                raise StoreError(
                    f"no version was deleted, because version {number}, which the "
                    f"retention setting keeps, cannot be read: {error.message}",
                    source=self.source,
                    where=error.where,
                    hint=error.hint,
                ) from None

    def delete_version(self, number: int) -> None:
        """Delete version ``number`` and its capture. Call with the lock held."""
        for path in (self.version_path(number), self.capture_path(number)):
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                raise self.error(path, f"cannot delete: {error.strerror}") from None

    def keep_backup(self, target: Path) -> Path | None:
        """Hard-link ``target`` to a backup name, so restoring it needs no free space."""
        backup = target.with_name(f".{target.name}.backup.tmp")
        backup.unlink(missing_ok=True)
        try:
            os.link(target, backup)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self.error(target, f"cannot keep a backup: {error.strerror}") from None
        return backup

    def roll_back(self, new_files: tuple[Path, ...], backups: dict[Path, Path | None]) -> None:
        """Remove a half-written version's files and rename the backups back into place.

        Each step is tried even when an earlier one fails, so one file that cannot be
        removed does not keep latest.yaml and state.yaml from being restored.
        """
        # NOTE: renames need no free space, so a step fails only on a broken file
        # system, a path that is not a file or a missing permission. The next
        # locked run validates whatever is left.
        for new_file in new_files:
            try:
                new_file.unlink(missing_ok=True)
            except OSError as error:
                log.error("%s: rolling back: cannot remove %s: %s", self.source, new_file, error)
        for target, backup in backups.items():
            try:
                if backup is None:
                    target.unlink(missing_ok=True)
                else:
                    os.replace(backup, target)
            except OSError as error:
                log.error("%s: rolling back: cannot restore %s: %s", self.source, target, error)

    def repair_latest(self, number: int) -> None:
        """Make ``latest.yaml`` a copy of version ``number`` again if it is not."""
        data = self.version_path(number).read_bytes()
        try:
            current = self.latest_path.read_bytes()
        except FileNotFoundError:
            current = None
        if current != data:
            log.warning("%s: restoring %s from version %d", self.source, self.latest_path, number)
            self.write_atomic(self.latest_path, data)

    def write_state(self, state: dict) -> None:
        state["checksum"] = checksum(state)
        validate_state(state, self.source, "(new state)")
        self.write_atomic(self.state_path, yamlio.dump(state).encode("utf-8"))

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Replace ``path`` with ``data`` atomically; raise StoreError on failure."""
        try:
            replace_atomically(path, data)
        except OSError as error:
            raise self.error(
                path, f"cannot write: {error.strerror or error}", _write_hint(error)
            ) from None


_STATE_HINT = "delete state.yaml; the next sync rebuilds it from the versions"
_DAMAGED_HINT = (
    "the file is damaged; restore it from a backup, or delete it and the versions "
    "after it so the next sync rebuilds from the page"
)


def _write_hint(error: OSError) -> str | None:
    if error.errno == errno.ENOSPC:
        return "the disk is full; free space and run again, nothing was lost"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the snapshots folder is not writable; fix its permissions or snapshots_dir"
    return None


def parse_timestamp(text: str) -> datetime:
    """Parse a stored ISO 8601 time; one without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]} to {numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    return ", ".join(map(str, numbers))


class _Invalid(Exception):
    pass


class _NewerSchema(_Invalid):
    """A file written by a newer release: intact, in a format this one cannot read."""

    def __init__(self, schema: int) -> None:
        super().__init__(
            f"schema_version {schema} was written by a newer scraper (this one reads "
            f"{SCHEMA_VERSION})"
        )
        self.hint = (
            f"upgrade scraper to a release that reads schema_version {schema}, and "
            "keep the file, because it is not damaged"
        )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _Invalid(message)


def _check_keys(document: object, keys: tuple[str, ...], what: str) -> None:
    _require(isinstance(document, dict), f"{what} is not a mapping")
    missing = [key for key in keys if key not in document]
    unknown = [key for key in document if key not in keys]
    _require(not missing, f"{what} lacks {', '.join(missing)} (cut short?)")
    _require(not unknown, f"{what} has unknown keys {', '.join(map(str, unknown))}")


def _check_schema_version(document: dict) -> None:
    schema = document.get("schema_version")
    _require(type(schema) is int, f"schema_version is {schema!r}, expected a whole number")
    if schema > SCHEMA_VERSION:
        raise _NewerSchema(schema)
    _require(schema == SCHEMA_VERSION, f"unsupported schema_version {schema}")


def _check_text(value: object, what: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    _require(
        type(value) is str,
        f"{what} is {value!r} ({type(value).__name__}), expected a quoted string",
    )


def _check_timestamp(value: object, what: str) -> None:
    _check_text(value, what)
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Invalid(f"{what} {value!r} is not an ISO 8601 time") from None


def _check_row(row: object, what: str) -> None:
    _require(isinstance(row, dict) and row, f"{what} is not a non-empty mapping")
    for name, value in row.items():
        _check_text(name, f"{what} field name")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"{what} {name} key")
                _check_text(item, f"{what} {name}.{key}")
        else:
            _check_text(value, f"{what} {name}")


def _check_diff(diff: object) -> None:
    _check_keys(diff, ("previous_version", "added", "removed", "changed"), "diff")
    previous = diff["previous_version"]
    _require(previous is None or type(previous) is int, "diff.previous_version is not a number")
    for name in ("added", "removed"):
        _require(isinstance(diff[name], list), f"diff.{name} is not a list")
        for index, row in enumerate(diff[name]):
            _check_row(row, f"diff.{name}[{index}]")
    _require(isinstance(diff["changed"], list), "diff.changed is not a list")
    for index, change in enumerate(diff["changed"]):
        what = f"diff.changed[{index}]"
        _check_keys(change, ("key", "fields"), what)
        _check_text(change["key"], f"{what}.key")
        _require(isinstance(change["fields"], dict), f"{what}.fields is not a mapping")
        for path, values in change["fields"].items():
            _check_keys(values, ("old", "new"), f"{what}.fields.{path}")
            _check_text(values["old"], f"{what}.fields.{path}.old", optional=True)
            _check_text(values["new"], f"{what}.fields.{path}.new", optional=True)


def _validation_error(
    error: _Invalid, what: str, source: str, path: object, damaged_hint: str
) -> StoreError:
    """Return the StoreError for a file that failed validation.

    A file from a newer release is intact, so it gets only the advice to upgrade;
    any other failure gets ``damaged_hint``.
    """
    if isinstance(error, _NewerSchema):
        return StoreError(
            f"unsupported {what}: {error}", source=source, where=str(path), hint=error.hint
        )
    return StoreError(
        f"invalid {what}: {error}", source=source, where=str(path), hint=damaged_hint
    )


def validate_snapshot(document: object, source: str, number: int, path: object) -> None:
    """Raise StoreError unless ``document`` is a complete, intact snapshot."""
    try:
        _check_snapshot(document, source, number)
    except _Invalid as error:
        raise _validation_error(error, "snapshot", source, path, _DAMAGED_HINT) from None


def _check_snapshot(document: object, source: str, number: int) -> None:
    _require(isinstance(document, dict), "the file is not a mapping")
    _check_schema_version(document)
    _check_keys(document, SNAPSHOT_KEYS, "the snapshot")
    _require(document["source"] == source, f"source is {document['source']!r}, expected {source!r}")
    _require(
        type(document["version"]) is int and document["version"] == number,
        f"version is {document['version']!r}, expected {number}",
    )
    for name in ("url", "final_url", "page_sha256", "tool_version"):
        _check_text(document[name], name)
    _check_timestamp(document["fetched_at"], "fetched_at")
    http = document["http"]
    _check_keys(http, ("status", "etag", "last_modified", "encoding"), "http")
    _require(http["status"] is None or type(http["status"]) is int, "http.status is not a number")
    for name in ("etag", "last_modified", "encoding"):
        _check_text(http[name], f"http.{name}", optional=True)
    rows = document["rows"]
    _require(isinstance(rows, list) and rows, "rows is not a non-empty list")
    for index, row in enumerate(rows):
        _check_row(row, f"rows[{index}]")
    _require(
        document["row_count"] == len(rows),
        f"row_count is {document['row_count']!r} but the file holds {len(rows)} rows",
    )
    _check_diff(document["diff"])
    _require(document["checksum"] == checksum(document), "the checksum does not match the content")


def validate_state(document: object, source: str, path: object) -> None:
    """Raise StoreError unless ``document`` is an intact state file."""
    try:
        _require(isinstance(document, dict), "the file is not a mapping")
        _check_schema_version(document)
        _check_keys(document, STATE_KEYS, "the state file")
        _require(document["source"] == source, f"source is {document['source']!r}")
        _require(
            type(document["last_version"]) is int and document["last_version"] >= 0,
            "last_version is not a whole number",
        )
        _check_timestamp(document["last_checked"], "last_checked")
        _check_text(document["last_result"], "last_result")
        validators = document["validators"]
        _check_keys(validators, ("url", "etag", "last_modified"), "validators")
        for name in ("url", "etag", "last_modified"):
            _check_text(validators[name], f"validators.{name}", optional=True)
        _require(document["checksum"] == checksum(document), "the checksum does not match")
    except _Invalid as error:
        raise _validation_error(error, "state file", source, path, _STATE_HINT) from None
