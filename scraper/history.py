"""Questions about a store's past: one row's changes, and the matrix on a date."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timezone

from .diff import flatten
from .errors import UsageError
from .parse import key_identity, sort_key
from .store import Store, parse_timestamp


@dataclass
class RowEvent:
    """One version in which a row was added, changed or removed.

    ``fields`` maps each dotted field path to its (old, new) pair. An added row has
    None as every old value, and a removed row None as every new value.
    """

    version: int
    fetched_at: str
    kind: str  # "added", "changed" or "removed"
    fields: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def to_data(self) -> dict:
        return {
            "version": self.version,
            "fetched_at": self.fetched_at,
            "change": self.kind,
            "fields": {path: {"old": old, "new": new} for path, (old, new) in self.fields.items()},
        }


def row_history(store: Store, key_field: str, key: str) -> tuple[str, list[RowEvent]]:
    """Return the stored key that matches ``key`` and every change of that row.

    Reads the diff that each stored version keeps against the version before it.
    Keys match as versions do, so ``v1.28.9`` finds ``1.28.9``. Raises UsageError
    when no stored version mentions the row.
    """
    target = key_identity(key)
    matched = None
    events = []
    latest = None
    for number in store.version_numbers():
        document = store.load_version(number)
        latest = document
        diff = document["diff"]
        for kind, rows in (("added", diff["added"]), ("removed", diff["removed"])):
            for row in rows:
                if key_identity(row[key_field]) != target:
                    continue
                matched = row[key_field]
                values = {path: value for path, value in flatten(row).items() if path != key_field}
                pairs = {
                    path: (None, value) if kind == "added" else (value, None)
                    for path, value in values.items()
                }
                events.append(RowEvent(number, document["fetched_at"], kind, pairs))
        for change in diff["changed"]:
            if key_identity(change["key"]) == target:
                matched = change["key"]
                pairs = {
                    path: (values["old"], values["new"])
                    for path, values in change["fields"].items()
                }
                events.append(RowEvent(number, document["fetched_at"], "changed", pairs))
    if matched is None and latest is not None:
        for row in latest["rows"]:
            if key_identity(row[key_field]) == target:
                matched = row[key_field]
    if matched is None:
        known = sorted({row[key_field] for row in latest["rows"]}, key=sort_key) if latest else []
        raise UsageError(
            f"no stored version has a row with {key_field} {key!r}",
            source=store.source,
            where=str(store.path),
            hint=f"rows in the latest version: {', '.join(known)}" if known else "run 'scraper sync' first",
        )
    return matched, events


def parse_moment(text: str) -> datetime:
    """Parse a ``--at`` value: a date means the end of that day in UTC.

    A time without an offset is taken as UTC. Raises UsageError for anything else.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").date()
            return datetime.combine(day, time.max, tzinfo=timezone.utc)
        return parse_timestamp(value)
    except ValueError:
        raise UsageError(
            f"invalid date {text!r}",
            hint="write a date such as 2026-05-01, or a time such as 2026-05-01T12:00:00Z",
        ) from None


def version_at(store: Store, moment: datetime) -> int:
    """Return the number of the newest version fetched at or before ``moment``.

    Binary search over the version numbers, because versions are numbered in the
    order they were fetched. Raises UsageError when every version is newer.
    """
    numbers = store.version_numbers()
    low, high = 0, len(numbers)
    while low < high:
        middle = (low + high) // 2
        if _fetched_at(store, numbers[middle]) <= moment:
            low = middle + 1
        else:
            high = middle
    if low == 0:
        first = store.load_version(numbers[0])["fetched_at"] if numbers else None
        raise UsageError(
            f"no version existed at {_utc_text(moment)}",
            source=store.source,
            where=str(store.path),
            hint=f"the oldest stored version was fetched at {first}"
            if first
            else "run 'scraper sync' first",
        )
    return numbers[low - 1]


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fetched_at(store: Store, number: int) -> datetime:
    return parse_timestamp(store.load_version(number)["fetched_at"])


def history_text(source: str, key: str, events: list[RowEvent]) -> str:
    """Return a row's history as lines, oldest first, with old -> new values."""
    lines = [f"{source}: history of {key}"]
    if not events:
        lines.append("  no change in the stored versions")
    for event in events:
        lines.append(f"version {event.version}  {event.fetched_at}  {event.kind}")
        for path, (old, new) in event.fields.items():
            if event.kind == "added":
                lines.append(f"  + {path}: {new}")
            elif event.kind == "removed":
                lines.append(f"  - {path}: {old}")
            else:
                lines.append(f"  ~ {path}: {_shown(old)} -> {_shown(new)}")
    return "\n".join(lines)


def _shown(value: str | None) -> str:
    return "(none)" if value is None else value

