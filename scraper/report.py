"""Write a static HTML report of each source's current matrix and version history.

The report is one self-contained page, ``index.html``, with a section per source: the
rows of the latest version as a table, then a timeline of every stored version, newest
first, with the rows that version added, removed and changed. The page has inline CSS
and nothing else: no scripts, fonts, images or links to other hosts, so it opens from
the file system in any browser. Every value taken from a snapshot is escaped with
``html.escape``.

The page is produced as a stream of small strings, one version at a time, so a long
history never needs every version in memory at once.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from . import __version__
from .config import Source
from .diff import Diff, RowChange
from .errors import StoreError, UsageError
from .files import write_file
from .redact import redact_url
from .store import Store

log = logging.getLogger(__name__)

REPORT_FILE = "index.html"

# The newest version's changes start expanded unless they span more rows than this.
# Every older version starts collapsed, so a long history stays short on screen.
MAX_EXPANDED_ROWS = 50

_MARKERS = {"added": "+ added", "removed": "- removed", "changed": "~ changed"}


@dataclass(frozen=True)
class _SourceStore:
    """A source to report on, its store and the numbers of its stored versions."""

    source: Source
    store: Store
    numbers: list[int]


def write_report(
    snapshots_dir: Path,
    sources: Sequence[Source],
    out_dir: Path,
    generated_at: datetime | None = None,
) -> Path:
    """Write ``out_dir/index.html`` for ``sources`` and return its path.

    Raises StoreError when a source has no stored version or a version file is
    invalid, and UsageError when ``out_dir`` cannot be created or written. The page
    is written with files.write_file: a regular file is replaced atomically, so a
    failed run leaves the previous report in place, a symbolic link keeps pointing
    to the replaced file, and a FIFO is written in place.
    """
    reported = [_open_source(snapshots_dir, source) for source in sources]
    moment = generated_at or datetime.now(timezone.utc)
    folder = _make_folder(Path(out_dir))
    # NOTE: write_file takes the whole file as bytes, so the pieces go to
    # a buffer in memory, not straight to disk. The buffer contains the page once,
    # and each version file is loaded only while its entry is written.
    buffer = io.BytesIO()
    for chunk in _render_page(reported, moment):
        buffer.write(chunk.encode("utf-8"))
    path = folder / REPORT_FILE
    try:
        write_file(path, buffer.getbuffer())
    except OSError as error:
        raise UsageError(
            f"cannot write the report: {error.strerror or error}",
            where=str(path),
            hint="choose a writable folder with --out",
        ) from None
    log.info("wrote %s for %s", path, ", ".join(item.source.name for item in reported))
    return path


def _open_source(snapshots_dir: Path, source: Source) -> _SourceStore:
    store = Store(snapshots_dir, source.name)
    numbers = store.version_numbers()
    if numbers:
        return _SourceStore(source, store, numbers)
    if not store.path.is_dir():
        raise StoreError(
            "no snapshots found: the store folder does not exist",
            source=source.name,
            where=str(store.path),
            hint=f"run 'scraper sync --source {source.name}' first, "
            "or check snapshots_dir in the configuration",
        )
    raise StoreError(
        "no versions stored yet",
        source=source.name,
        where=str(store.versions_path),
        hint=f"run 'scraper sync --source {source.name}' first",
    )


def _make_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(
            "--out names a file, not a folder",
            where=str(folder),
            hint="give a folder for index.html, for example --out report",
        ) from None
    except OSError as error:
        raise UsageError(
            f"cannot create the report folder: {error.strerror or error}",
            where=str(folder),
            hint="choose a writable folder with --out",
        ) from None
    return folder


# The page


def _render_page(
    reported: Sequence[_SourceStore], generated_at: datetime
) -> Iterator[str]:
    """Yield the HTML of the report page in small pieces."""
    stamp = generated_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    names = [item.source.name for item in reported]
    title = "scraper report: " + ", ".join(names)
    yield '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    yield '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    yield f'<meta name="generator" content="scraper {_text(__version__)}">\n'
    yield f"<title>{_text(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
    yield '<header class="page">\n<h1>Compatibility matrix report</h1>\n'
    yield (
        f'<p class="generated">Generated <time datetime="{_attribute(stamp)}">'
        f'{_text(stamp)}</time> by <span class="tool">scraper {_text(__version__)}'
        "</span></p>\n"
    )
    if len(reported) > 1:
        yield '<nav class="sources" aria-label="Sources"><ul>\n'
        for name in names:
            yield f'<li><a href="#{_attribute(_anchor(name))}">{_text(name)}</a></li>\n'
        yield "</ul></nav>\n"
    yield "</header>\n<main>\n"
    for item in reported:
        yield from _source_section(item)
    yield "</main>\n</body>\n</html>\n"


def _source_section(item: _SourceStore) -> Iterator[str]:
    source, store, numbers = item.source, item.store, item.numbers
    latest = store.load_version(numbers[-1])
    order = _field_order(source, latest["rows"])
    anchor = _anchor(source.name)
    yield f'<section class="source" id="{_attribute(anchor)}">\n'
    yield f"<h2>{_text(source.name)}</h2>\n"
    yield (
        f'<p class="summary">Latest version <span class="latest-version">{latest["version"]}'
        f"</span> ({_plural(len(numbers), 'version')} stored), fetched "
        f'<time datetime="{_attribute(latest["fetched_at"])}">'
        f'{_text(latest["fetched_at"])}</time> from <code class="url">'
        f"{_text(redact_url(latest['url']))}</code></p>\n"
    )
    rows = _plural(len(latest["rows"]), "row")
    yield f'<h3 id="{_attribute(anchor)}-matrix">Current matrix ({rows})</h3>\n'
    yield from _matrix_table(source, latest["rows"], order)
    yield f'<h3 id="{_attribute(anchor)}-history">History, newest first</h3>\n'
    yield '<ol class="timeline">\n'
    stored = frozenset(numbers)
    for position, number in enumerate(reversed(numbers)):
        document = latest if position == 0 else store.load_version(number)
        yield from _version_entry(source, document, stored, order, newest=position == 0)
    yield "</ol>\n</section>\n"


def _matrix_table(source: Source, rows: list[dict], order: list[str]) -> Iterator[str]:
    fields = [name for name in order if any(name in row for row in rows)]
    yield '<div class="scroll"><table class="matrix">\n<thead><tr>'
    for name in fields:
        yield f'<th scope="col">{_text(_label(source, name))}</th>'
    yield "</tr></thead>\n<tbody>\n"
    for row in rows:
        yield "<tr>"
        for name in fields:
            if name == source.key:
                yield f'<th scope="row" class="key">{_text(row.get(name, ""))}</th>'
            else:
                yield "<td>"
                yield from _value(row.get(name))
                yield "</td>"
        yield "</tr>\n"
    yield "</tbody>\n</table></div>\n"


# The timeline


def _version_entry(
    source: Source,
    document: dict,
    stored: frozenset[int],
    order: list[str],
    newest: bool,
) -> Iterator[str]:
    number = document["version"]
    diff = Diff.from_data(document["diff"])
    yield f'<li class="version" id="{_attribute(_anchor(source.name))}-v{number}">\n'
    yield f'<h4>Version <span class="number">{number}</span></h4>\n<p class="facts">'
    yield (
        f'Fetched <time class="fetched" datetime="{_attribute(document["fetched_at"])}">'
        f"{_text(document['fetched_at'])}</time>"
    )
    rows = _plural(document["row_count"], "row")
    yield f' · <span class="row-count">{rows}</span>'
    yield f' · <span class="previous">{_text(_previous(document, stored))}</span>'
    yield f'<br>URL <code class="url">{_text(redact_url(document["url"]))}</code>'
    if document["final_url"] != document["url"]:
        yield (
            ' · final URL <code class="final-url">'
            f"{_text(redact_url(document['final_url']))}</code>"
        )
    yield "</p>\n"
    total = len(diff.added) + len(diff.removed) + len(diff.changed)
    if not total:
        yield '<p class="no-changes">No row changes recorded.</p>\n</li>\n'
        return
    expanded = newest and total <= MAX_EXPANDED_ROWS
    yield "<details open>" if expanded else "<details>"
    yield "<summary>"
    yield _count("added", "+", len(diff.added))
    yield " "
    yield _count("removed", "-", len(diff.removed))
    yield " "
    yield _count("changed", "~", len(diff.changed))
    yield "</summary>\n"
    yield from _changes_table(source, diff, order)
    yield "</details>\n</li>\n"


def _count(kind: str, sign: str, count: int) -> str:
    classes = f"count {kind}" if count else f"count {kind} zero"
    return f'<span class="{classes}">{sign}{count} {kind}</span>'


def _previous(document: dict, stored: frozenset[int]) -> str:
    previous = document["diff"]["previous_version"]
    if previous is None:
        return "first version, compared with an empty store"
    if previous not in stored:
        return f"compared with version {previous}, which is no longer stored"
    return f"compared with version {previous}"


def _changes_table(source: Source, diff: Diff, order: list[str]) -> Iterator[str]:
    fields = _diff_fields(source, diff, order)
    yield '<div class="scroll"><table class="changes">\n<thead><tr><th scope="col">Change</th>'
    yield f'<th scope="col">{_text(_label(source, source.key))}</th>'
    for name in fields:
        yield f'<th scope="col">{_text(_label(source, name))}</th>'
    yield "</tr></thead>\n<tbody>\n"
    for kind, rows in (("added", diff.added), ("removed", diff.removed)):
        for row in rows:
            yield f'<tr class="{kind}"><td class="mark">{_MARKERS[kind]}</td>'
            yield f'<th scope="row" class="key">{_text(row.get(source.key, ""))}</th>'
            for name in fields:
                yield "<td>"
                yield from _value(row.get(name))
                yield "</td>"
            yield "</tr>\n"
    for change in diff.changed:
        yield from _changed_row(change, fields)
    yield "</tbody>\n</table></div>\n"


def _changed_row(change: RowChange, fields: list[str]) -> Iterator[str]:
    by_field = _changes_by_field(change)
    yield f'<tr class="changed"><td class="mark">{_MARKERS["changed"]}</td>'
    yield f'<th scope="row" class="key">{_text(change.key)}</th>'
    for name in fields:
        pairs = by_field.get(name)
        if not pairs:
            yield "<td></td>"
            continue
        yield '<td><ul class="pairs">'
        for sub_path, (old, new) in pairs:
            yield "<li>"
            if sub_path:
                yield f'<span class="name">{_text(sub_path)}</span> = '
            yield '<span class="change">'
            yield _old_value(old)
            yield ' <span class="arrow">→</span> '
            yield _new_value(new)
            yield "</span></li>"
        yield "</ul></td>"
    yield "</tr>\n"


def _changes_by_field(change: RowChange) -> dict[str, list[tuple[str, tuple]]]:
    """Group a row's changed paths by their top-level field: ``dependencies.cni_version``
    becomes field ``dependencies``, sub-path ``cni_version``."""
    grouped: dict[str, list[tuple[str, tuple]]] = {}
    for path, values in change.fields.items():
        name, _, sub_path = path.partition(".")
        grouped.setdefault(name, []).append((sub_path, values))
    return grouped


def _old_value(value: str | None) -> str:
    if value is None:
        return '<span class="none">(none)</span>'
    return f'<del class="old">{_text(value)}</del>'


def _new_value(value: str | None) -> str:
    if value is None:
        return '<span class="none">(none)</span>'
    return f'<ins class="new">{_text(value)}</ins>'


# Fields, labels and values


def _field_order(source: Source, rows: Iterable[dict]) -> list[str]:
    """Return the key first, then the configured fields, then any other field seen."""
    order = [source.key]
    order.extend(
        column.field for column in source.columns if column.field != source.key
    )
    for row in rows:
        order.extend(name for name in row if name not in order)
    return order


def _diff_fields(source: Source, diff: Diff, order: list[str]) -> list[str]:
    """Return the non-key fields that this diff touches, in the page's column order."""
    seen: list[str] = []
    for row in (*diff.added, *diff.removed):
        seen.extend(name for name in row if name not in seen)
    for change in diff.changed:
        seen.extend(name for name in _changes_by_field(change) if name not in seen)
    known = [name for name in order if name in seen]
    extra = [name for name in seen if name not in order]
    return [name for name in known + extra if name != source.key]


def _label(source: Source, name: str) -> str:
    for column in source.columns:
        if column.field == name:
            return column.header
    return name


def _value(value: object) -> Iterator[str]:
    """Yield a cell's content: a string as text, a mapping as one ``name = value`` a line."""
    if value is None:
        return
    if isinstance(value, dict):
        yield '<ul class="pairs">'
        for name, item in value.items():
            yield (
                f'<li><span class="name">{_text(name)}</span> = '
                f'<span class="value">{_text(item)}</span></li>'
            )
        yield "</ul>"
        return
    yield _text(value)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _anchor(name: str) -> str:
    return f"source-{name}"


def _text(value: object) -> str:
    return escape(str(value), quote=False)


def _attribute(value: object) -> str:
    return escape(str(value), quote=True)


_STYLE = """
:root {
  color-scheme: light dark;
  --text: #1f2328; --muted: #59636e; --page: #ffffff; --panel: #f6f8fa;
  --line: #d1d9e0; --accent: #0969da;
  --added: #dafbe1; --added-text: #116329;
  --removed: #ffebe9; --removed-text: #a40e26;
  --changed: #fff8c5; --changed-text: #7d4e00;
}
@media (prefers-color-scheme: dark) {
  :root {
    --text: #e6edf3; --muted: #9198a1; --page: #0d1117; --panel: #151b23;
    --line: #3d444d; --accent: #4493f8;
    --added: #12361f; --added-text: #7ee787;
    --removed: #3c1618; --removed-text: #ffa198;
    --changed: #3b2e0a; --changed-text: #e3b341;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; color: var(--text); background: var(--page);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
header.page, main { max-width: 80rem; margin: 0 auto; padding: 0 1.5rem; }
header.page { padding-top: 1.5rem; padding-bottom: 0.5rem; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.6rem; margin: 0 0 0.25rem; }
h2 { font-size: 1.35rem; margin: 2rem 0 0.25rem; }
h3 { font-size: 1.1rem; margin: 1.75rem 0 0.75rem; }
h4 { font-size: 1rem; margin: 0; }
.generated, .summary, .facts { color: var(--muted); margin: 0.25rem 0; }
nav.sources ul { list-style: none; display: flex; flex-wrap: wrap; gap: 0.5rem 1.25rem;
  padding: 0; margin: 0.5rem 0; }
a { color: var(--accent); }
code, td, th.key, .mark {
  font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 0.875rem;
}
code { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid var(--line); padding: 0.35rem 0.75rem; text-align: left;
  vertical-align: top; }
thead th { background: var(--panel); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: var(--panel); }
th.key { font-weight: 600; white-space: nowrap; }
ul.pairs { list-style: none; margin: 0; padding: 0; }
ul.pairs .name { color: var(--muted); }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 1.25rem;
  border-left: 2px solid var(--line); }
li.version { position: relative; margin: 0 0 1.25rem; }
li.version::before { content: ""; position: absolute; left: -1.25rem; top: 0.45rem;
  width: 0.7rem; height: 0.7rem; margin-left: -0.4rem; border-radius: 50%;
  background: var(--page); border: 2px solid var(--accent); }
details { margin: 0.4rem 0 0; }
summary { cursor: pointer; width: max-content; max-width: 100%; }
.count { display: inline-block; padding: 0 0.45rem; border-radius: 0.75rem;
  font-size: 0.85rem; font-weight: 600; }
.count.added { background: var(--added); color: var(--added-text); }
.count.removed { background: var(--removed); color: var(--removed-text); }
.count.changed { background: var(--changed); color: var(--changed-text); }
.count.zero { background: transparent; color: var(--muted); font-weight: 400; }
table.changes tbody tr.added { background: var(--added); }
table.changes tbody tr.removed { background: var(--removed); }
table.changes tbody tr.changed { background: var(--changed); }
.mark { font-weight: 600; white-space: nowrap; }
tr.added .mark { color: var(--added-text); }
tr.removed .mark { color: var(--removed-text); }
tr.changed .mark { color: var(--changed-text); }
del.old { color: var(--removed-text); background: var(--removed); }
ins.new { color: var(--added-text); background: var(--added); text-decoration: none;
  font-weight: 600; }
.none { color: var(--muted); font-style: italic; }
.arrow { color: var(--muted); }
.change { white-space: nowrap; }
"""
