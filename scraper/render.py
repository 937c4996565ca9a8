"""Format rows, diffs and history for the terminal, YAML or JSON."""

from __future__ import annotations

import json

from . import yamlio
from .diff import Diff, flatten
from .parse import Row


def to_json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def rows_table(rows: list[Row], key: str) -> str:
    """Return the rows as an aligned text table, nested fields as their own columns."""
    flat_rows = [flatten(row) for row in rows]
    columns = [key]
    for flat in flat_rows:
        columns.extend(path for path in flat if path not in columns)
    headers = [column.split(".")[-1] if column.count(".") == 1 else column for column in columns]
    if any(headers.count(header) > 1 for header in headers):
        headers = columns
    cells = [[flat.get(column, "") for column in columns] for flat in flat_rows]
    widths = [max(len(text) for text in [header, *(row[i] for row in cells)]) for i, header in enumerate(headers)]
    lines = ["  ".join(text.ljust(width) for text, width in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for row in cells:
        lines.append("  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip())
    return "\n".join(lines)


def diff_text(diff: Diff, key: str, title: str) -> str:
    """Return a diff as readable lines: + added, - removed, ~ changed field old -> new."""
    lines = [f"{title}: {diff.counts()}"]
    for row in diff.added:
        lines.append(f"+ {row[key]}  {_pins(row, key)}")
    for row in diff.removed:
        lines.append(f"- {row[key]}  {_pins(row, key)}")
    for change in diff.changed:
        for path, (old, new) in change.fields.items():
            lines.append(f"~ {change.key}  {path}: {_value(old)} -> {_value(new)}")
    return "\n".join(lines)


def _pins(row: Row, key: str) -> str:
    return " ".join(f"{path}={value}" for path, value in flatten(row).items() if path != key)


def _value(value: str | None) -> str:
    return "(none)" if value is None else value


def dump_yaml(data: object) -> str:
    return yamlio.dump(data).rstrip("\n")


def status_text(entries: list[dict]) -> str:
    """Return one block per source with its status fields, "-" for unknown values."""
    blocks = []
    for entry in entries:
        lines = [entry["source"]]
        for name, value in entry.items():
            if name != "source":
                lines.append(f"  {name + ':':<22}{'-' if value is None else value}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
