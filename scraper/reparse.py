"""Derive each stored version again from its capture with the current parser.

A parser change that would read a past page differently shows up here before it
reaches a new snapshot. Nothing in the store is changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .charset import decode_html
from .config import Source
from .diff import Diff, compare
from .errors import ScraperError
from .parse import parse_page
from .store import Store

# Statuses of one reparsed version.
SAME = "same"
DIFFERS = "differs"
FAILED = "failed"
NO_CAPTURE = "no-capture"


@dataclass
class Reparsed:
    """The outcome for one version: its status, and the diff or error behind it."""

    version: int
    status: str
    diff: Diff | None = None
    message: str | None = None

    def to_data(self) -> dict:
        return {
            "version": self.version,
            "status": self.status,
            "diff": self.diff.to_data() if self.diff is not None else None,
            "message": self.message,
        }


def reparse_versions(store: Store, source: Source, numbers: Iterable[int]) -> Iterator[Reparsed]:
    """Yield the outcome of parsing each version's capture again, in order.

    Raises StoreError when a version file is damaged. A capture that cannot be
    read or parsed, or is larger than the source's ``fetch.max_bytes`` when
    decompressed, is reported as FAILED, not raised, so the other versions are
    still read.
    """
    for number in numbers:
        yield reparse_version(store, source, number)


def reparse_version(store: Store, source: Source, number: int) -> Reparsed:
    document = store.load_version(number)
    try:
        content = store.load_capture(number, max_bytes=source.fetch.max_bytes)
    except ScraperError as error:
        return Reparsed(number, FAILED, message=error.message)
    if content is None:
        return Reparsed(number, NO_CAPTURE, message="no capture was kept for this version")
    if hashlib.sha256(content).hexdigest() != document["page_sha256"]:
        return Reparsed(
            number, FAILED, message="the capture does not match the page_sha256 of the version"
        )
    encoding = document["http"]["encoding"]
    # The codec recorded at fetch time reproduces the original decoding: a byte
    # order mark still wins over it, as it did then.
    text, _, _ = decode_html(content, f"text/html; charset={encoding}" if encoding else None)
    try:
        rows = parse_page(text, source, f"capture of version {number}")
    except ScraperError as error:
        return Reparsed(number, FAILED, message=f"{error.stage}: {error.message}")
    if rows == document["rows"]:
        return Reparsed(number, SAME)
    diff = compare(document["rows"], rows, source.key)
    message = None if diff else "same rows in a different order"
    return Reparsed(number, DIFFERS, diff=diff, message=message)
