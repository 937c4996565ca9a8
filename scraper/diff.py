"""Compare two sets of rows keyed by their key field.

The result is plain data: rows added, rows removed, and for each changed row the old
and new value of every field that differs. Row order never counts as a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .parse import Row, sort_key


@dataclass
class RowChange:
    """The fields of one row that differ, by dotted path, as (old, new) pairs."""

    key: str
    fields: dict[str, tuple[str | None, str | None]]

    def to_data(self) -> dict:
        return {
            "key": self.key,
            "fields": {
                path: {"old": old, "new": new} for path, (old, new) in self.fields.items()
            },
        }


@dataclass
class Diff:
    """Rows added, removed and changed between two versions."""

    added: list[Row] = field(default_factory=list)
    removed: list[Row] = field(default_factory=list)
    changed: list[RowChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def counts(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed"
        )

    def to_data(self) -> dict:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": [change.to_data() for change in self.changed],
        }

    @classmethod
    def from_data(cls, data: dict) -> Diff:
        changed = [
            RowChange(
                key=item["key"],
                fields={
                    path: (values["old"], values["new"])
                    for path, values in item["fields"].items()
                },
            )
            for item in data["changed"]
        ]
        return cls(added=list(data["added"]), removed=list(data["removed"]), changed=changed)


def compare(old_rows: list[Row], new_rows: list[Row], key: str) -> Diff:
    """Return what changed from ``old_rows`` to ``new_rows``, matching rows by ``key``."""
    old = {row[key]: row for row in old_rows}
    new = {row[key]: row for row in new_rows}
    ordered = sorted(old.keys() | new.keys(), key=sort_key)
    diff = Diff()
    for row_key in ordered:
        if row_key not in old:
            diff.added.append(new[row_key])
        elif row_key not in new:
            diff.removed.append(old[row_key])
        else:
            fields = compare_fields(flatten(old[row_key]), flatten(new[row_key]))
            if fields:
                diff.changed.append(RowChange(key=row_key, fields=fields))
    return diff


def compare_fields(old: dict, new: dict) -> dict[str, tuple[str | None, str | None]]:
    """Return the paths whose values differ, with a missing value given as None."""
    paths = sorted(old.keys() | new.keys())
    return {
        path: (old.get(path), new.get(path))
        for path in paths
        if old.get(path) != new.get(path)
    }


def flatten(row: Row, prefix: str = "") -> dict[str, str]:
    """Flatten nested dicts into dotted paths: ``dependencies.cni_version``."""
    flat: dict[str, str] = {}
    for name, value in row.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat
