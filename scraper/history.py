"""Questions about a store's past: one row's changes, and the matrix on a date."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone

from .diff import flatten
from .errors import UsageError
from .parse import key_identity, sort_key
from .store import Store, parse_timestamp

# The --at forms: a date, or a date and a time to the minute, second or microsecond,
# with an optional offset (Z, +HH:MM, +HHMM or +HH). RFC 3339 allows lower-case t and z.
_MOMENT = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,6}))?)?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<offset_hours>\d{2})(?::?(?P<offset_minutes>\d{2}))?)?)?",
    re.ASCII,
)


@dataclass
class RowEvent:
    """One version in which a row was added, changed or removed.

    ``fields`` maps each dotted field path to its (old, new) pair. An added row has
    None as every old value, and a removed row None as every new value.
    """

    version: int
    fetched_at: str
    kind: str  # "added", "changed", "removed", or "present" for RowHistory.present
    fields: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def to_data(self) -> dict:
        return {
            "version": self.version,
            "fetched_at": self.fetched_at,
            "change": self.kind,
            "fields": {path: {"old": old, "new": new} for path, (old, new) in self.fields.items()},
        }


@dataclass
class RowHistory:
    """A row's changes across the stored versions, oldest first.

    ``unstored`` lists the ranges of version numbers, up to the highest ever written,
    that are not in the store because retention pruned them or someone deleted them. Changes made
    in those versions are unknown. ``present`` is the row as the oldest stored
    version has it, when earlier versions are unstored and that version neither
    added nor changed the row, so the history starts from a known state. Otherwise
    it is None.
    """

    key: str
    events: list[RowEvent]
    unstored: list[tuple[int, int]]
    present: RowEvent | None = None

    def to_data(self, source: str) -> dict:
        return {
            "source": source,
            "key": self.key,
            "not_stored": [list(pair) for pair in self.unstored],
            "present_in_oldest": self.present.to_data() if self.present else None,
            "changes": [event.to_data() for event in self.events],
        }


def row_history(store: Store, key_field: str, key: str) -> RowHistory:
    """Return the stored key that matches ``key`` and every change of that row.

    Reads the diff that each stored version keeps against the version before it,
    which stays true after that earlier version is deleted. Keys match as versions
    do, so ``v1.28.9`` finds ``1.28.9``. Raises UsageError when no stored version
    has the row.
    """
    target = key_identity(key)
    matched = None
    events = []
    numbers = store.version_numbers()
    documents = {}
    for number in numbers:
        document = store.load_version(number)
        documents[number] = document
        diff = document["diff"]
        for kind, rows in (("added", diff["added"]), ("removed", diff["removed"])):
            for row in rows:
                if key_identity(row[key_field]) != target:
                    continue
                matched = row[key_field]
                values = _row_values(row, key_field)
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
    present = _present_in_oldest(documents, numbers, key_field, target, events)
    if present is not None:
        matched = matched or present[0]
    if matched is None and numbers:
        for row in documents[numbers[-1]]["rows"]:
            if key_identity(row[key_field]) == target:
                matched = row[key_field]
    if matched is None:
        latest = documents[numbers[-1]] if numbers else None
        known = sorted({row[key_field] for row in latest["rows"]}, key=sort_key) if latest else []
        raise UsageError(
            f"no stored version has a row with {key_field} {key!r}",
            source=store.source,
            where=str(store.path),
            hint=f"rows in the latest version: {', '.join(known)}" if known else "run 'scraper sync' first",
        )
    state = store.load_state()
    return RowHistory(
        matched,
        events,
        _unstored(numbers, state["last_version"] if state else 0),
        present[1] if present is not None else None,
    )


def _present_in_oldest(
    documents: dict[int, dict],
    numbers: list[int],
    key_field: str,
    target: object,
    events: list[RowEvent],
) -> tuple[str, RowEvent] | None:
    # The row as the oldest stored version has it, when versions before that one are
    # unstored and that version did not add or change the row: the only known state
    # before the row's events. A change in that version shows both states already.
    if not numbers or numbers[0] == 1:
        return None
    oldest = numbers[0]
    if any(event.version == oldest for event in events):
        return None
    document = documents[oldest]
    for row in document["rows"]:
        if key_identity(row[key_field]) == target:
            values = _row_values(row, key_field)
            pairs = {path: (value, value) for path, value in values.items()}
            return row[key_field], RowEvent(oldest, document["fetched_at"], "present", pairs)
    return None


def _row_values(row: dict, key_field: str) -> dict[str, str]:
    # The row's dotted field paths and values, without its key.
    return {path: value for path, value in flatten(row).items() if path != key_field}


def _unstored(numbers: list[int], last_written: int) -> list[tuple[int, int]]:
    # The ranges of numbers from 1 to the highest version ever written (state.yaml's
    # last_version) that are not stored.
    ranges = []
    expected = 1
    for number in numbers:
        if number > expected:
            ranges.append((expected, number - 1))
        expected = number + 1
    if last_written >= expected:
        ranges.append((expected, last_written))
    return ranges


def parse_moment(text: str) -> datetime:
    """Parse a ``--at`` value into an aware UTC time.

    A date alone means the end of that day in UTC, and a time without an offset is
    taken as UTC. Raises UsageError for any other form and for a time that cannot be
    expressed in UTC, such as 0001-01-01T00:00+01:00.
    """
    match = _MOMENT.fullmatch(text.strip())
    invalid = UsageError(
        f"invalid date {text!r}",
        hint="write a date such as 2026-05-01, or a time such as 2026-05-01T12:00:00Z",
    )
    if not match:
        raise invalid
    parts = match.groupdict()
    try:
        if parts["hour"] is None:
            day = datetime(int(parts["year"]), int(parts["month"]), int(parts["day"]))
            return datetime.combine(day.date(), time.max, tzinfo=timezone.utc)
        moment = datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"]),
            int(parts["minute"]),
            int(parts["second"] or 0),
            int((parts["fraction"] or "0").ljust(6, "0")),
            tzinfo=_offset(parts),
        )
        return moment.astimezone(timezone.utc)
    except ValueError:
        raise invalid from None
    except OverflowError:
        raise UsageError(
            f"the time {text!r} is out of range in UTC",
            hint="give a time between 0001-01-01 and 9999-12-31 in UTC",
        ) from None


def _offset(parts: dict) -> timezone:
    if parts["offset"] is None or parts["offset"] in "Zz":
        return timezone.utc
    hours = int(parts["offset_hours"])
    minutes = int(parts["offset_minutes"] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"invalid offset {parts['offset']!r}")
    sign = -1 if parts["sign"] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


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
    # isoformat pads the year to four digits, which strftime's %Y does not on Linux.
    utc = moment.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None)
    return utc.isoformat() + "Z"


def _fetched_at(store: Store, number: int) -> datetime:
    return parse_timestamp(store.load_version(number)["fetched_at"])


def history_text(source: str, history: RowHistory) -> str:
    """Return a row's history as lines, oldest first, with old -> new values."""
    lines = [f"{source}: history of {history.key}"]
    if history.unstored:
        spans = ", ".join(
            str(first) if first == last else f"{first} to {last}"
            for first, last in history.unstored
        )
        lines.append(
            f"  versions not stored (pruned or deleted): {spans}; "
            "changes made in them are not shown"
        )
    if history.present is not None:
        event = history.present
        lines.append(f"version {event.version}  {event.fetched_at}  present in the oldest stored version")
        for path, (value, _) in event.fields.items():
            lines.append(f"  = {path}: {value}")
    if not history.events:
        lines.append("  no change in the stored versions")
    for event in history.events:
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

