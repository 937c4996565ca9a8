"""Exit codes and the exceptions that map to them."""

from __future__ import annotations

import enum

from .redact import redact_url


class ExitCode(enum.IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    CHANGED = 1
    USAGE = 2
    FETCH = 3
    PARSE = 4
    STORE = 5
    INTERNAL = 70
    INTERRUPTED = 130


class Cancelled(Exception):
    """The process is stopping; the sync gave up before touching any file."""


class ScraperError(Exception):
    """An expected failure: reported as one line on stderr with an exit code.

    ``stage`` names the step that failed (config, fetch, locate table, parse, store)
    and ``where`` the URL or file it failed on.
    """

    exit_code = ExitCode.INTERNAL
    stage = "run"

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.where = redact_url(where) if where else where
        self.hint = hint

    def __str__(self) -> str:
        parts = []
        if self.source:
            parts.append(f"source {self.source!r}")
        parts.append(self.stage)
        if self.where:
            parts.append(self.where)
        text = ": ".join(parts) + ": " + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(ScraperError):
    """The configuration file or the command line is invalid."""

    exit_code = ExitCode.USAGE
    stage = "config"


class UsageError(ConfigError):
    """The command line requests something that cannot be done."""

    stage = "usage"


class FetchError(ScraperError):
    """The page could not be downloaded, or what came back is not an HTML page."""

    exit_code = ExitCode.FETCH
    stage = "fetch"


class TableNotFoundError(ScraperError):
    """The page has no table, or more than one, matching the source's headers."""

    exit_code = ExitCode.PARSE
    stage = "locate table"


class ParseError(ScraperError):
    """The matching table was found but a row or cell does not have the expected form."""

    exit_code = ExitCode.PARSE
    stage = "parse"


class StoreError(ScraperError):
    """The snapshot store could not be read, validated, locked or written."""

    exit_code = ExitCode.STORE
    stage = "store"
