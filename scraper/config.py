"""Load and validate the configuration file.

Every error names the file, the key path (``sources[0].fetch.retries``) and the fix.
Relative paths in the file are resolved against the file's own folder.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .errors import ConfigError

PARSE_KINDS = ("version", "key_value", "text")
SOURCE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
FIELD_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
URL_SCHEMES = ("http", "https", "file")
DEFAULT_STATE_DIR = ".scraper-state"
TOP_LEVEL_KEYS = (
    "snapshots_dir", "state_dir", "metrics_file", "lock_timeout", "concurrency", "schedule",
    "notify", "retention", "fetch", "sources",
)
# Sources synced at once by one run; requests to one host still go one at a time.
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64


@dataclass(frozen=True)
class FetchSettings:
    """How one source's page is downloaded. Times are in seconds, sizes in bytes."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 120.0
    retries: int = 3
    backoff_factor: float = 1.0
    max_retry_after: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    user_agent: str | None = None
    allow_redirect_hosts: tuple[str, ...] = ()
    ca_bundle: str | None = None
    require_complete_page: bool = True


@dataclass(frozen=True)
class Schedule:
    """When the scheduler runs the sync: a five-field cron expression in a time zone.

    ``jitter`` and ``misfire_grace_time`` are in seconds.
    """

    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    jitter: int = 0
    misfire_grace_time: int = 3600


@dataclass(frozen=True)
class Notify:
    """Where change and failure notifications go, as Apprise URLs.

    A URL may contain ``${NAME}``, replaced from the environment when it is sent.
    """

    urls: tuple[str, ...] = ()
    failure_threshold: int = 3
    stale_after_hours: float = 48.0


# The largest number any setting accepts: 10^9 seconds is over 30 years and 10^9
# bytes is a gigabyte, so a larger value is a typing mistake. Larger timeouts also
# overflow: urllib3 passes connect_timeout to socket.settimeout, which raises
# OverflowError for 10^10 seconds on Linux.
MAX_NUMBER = 10**9


def _shorten(value: object) -> str:
    # A number of hundreds of digits is cut down for the error message.
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)"


# Upper limits of the retention setting. The cutoff time is now minus keep_days, and
# datetime raises OverflowError when it falls before the year 1, about 739,000 days
# back. 100 years keeps the whole history of any store. An hourly sync takes 114
# years to write a million versions. Larger values are rejected as typing mistakes,
# because null keeps every version.
MAX_KEEP_DAYS = 36500
MAX_KEEP_VERSIONS = 1_000_000


@dataclass(frozen=True)
class Retention:
    """Which old versions a sync deletes; None keeps every version.

    A version is kept when it is one of the newest ``keep_versions`` or younger
    than ``keep_days`` days. The newest version is always kept.
    """

    keep_versions: int | None = None
    keep_days: float | None = None

    @property
    def enabled(self) -> bool:
        return self.keep_versions is not None or self.keep_days is not None


@dataclass(frozen=True)
class Column:
    """One table column: its header text, the row field it fills and how it is read."""

    header: str
    field: str
    parse: str


@dataclass(frozen=True)
class Source:
    """One page to sync and how to find and read its table."""

    name: str
    url: str
    key: str
    columns: tuple[Column, ...]
    selector: str | None = None
    fetch: FetchSettings = field(default_factory=FetchSettings)
    schedule: Schedule = field(default_factory=Schedule)
    notify: Notify = field(default_factory=Notify)
    retention: Retention = field(default_factory=Retention)

    @property
    def key_column(self) -> Column:
        return next(column for column in self.columns if column.field == self.key)


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    path: Path
    snapshots_dir: Path
    sources: tuple[Source, ...]
    schedule: Schedule = field(default_factory=Schedule)
    lock_timeout: float = 60.0
    state_dir: Path | None = None
    metrics_file: Path | None = None
    concurrency: int = DEFAULT_CONCURRENCY

    @property
    def run_state_dir(self) -> Path:
        """Folder of run records, the notification outbox and the metrics file."""
        return self.state_dir or self.path.parent.resolve() / DEFAULT_STATE_DIR

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(source.name for source in self.sources)
        raise ConfigError(
            f"unknown source {name!r}",
            where=str(self.path),
            hint=f"configured sources: {known}",
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects a mapping with the same key twice."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> Config:
    """Read, validate and return the configuration at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "configuration file not found",
            where=str(path),
            hint="pass --config PATH or run from the folder that holds config.yaml",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the file: {error}", where=str(path)) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ValueError as error:
        # PyYAML lets a ValueError through from a scalar it converts: an integer of
        # more than 4300 digits (sys.set_int_max_str_digits), or a date such as
        # 2026-02-30.
        raise ConfigError(
            f"invalid YAML: {error}",
            where=str(path),
            hint="fix the value, or put it in quotes to keep it as text",
        ) from None
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split()).replace('"<unicode string>"', path.name)
        duplicate = "duplicate key" in detail
        raise ConfigError(
            f"invalid YAML: {detail}",
            where=str(path),
            hint="remove one of the two keys" if duplicate else "fix the syntax at the line and column shown",
        ) from None
    return _Validator(path).config(data)


class _Validator:
    """Walk the loaded YAML and build the dataclasses, naming the key path on error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent

    def fail(self, key_path: str, message: str, hint: str) -> ConfigError:
        return ConfigError(f"{key_path}: {message}", where=str(self.path), hint=hint)

    def mapping(self, value: Any, key_path: str, known: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(
                key_path,
                f"expected a mapping, found {_describe(value)}",
                "write it as 'key: value' lines",
            )
        for key in value:
            if key not in known:
                raise self.fail(
                    _join(key_path, key),
                    "unknown key",
                    f"remove it or fix its spelling; known keys here: {', '.join(known)}",
                )
        return value

    def typed(self, value: Any, key_path: str, kind: type | tuple, name: str) -> Any:
        is_bool = isinstance(value, bool)
        if kind in (int, float, (int, float)) and is_bool or not isinstance(value, kind):
            raise self.fail(
                key_path,
                f"expected {name}, found {_describe(value)}",
                f"write {name} here",
            )
        return value

    def number(self, value: Any, key_path: str, minimum: float, integer=False) -> Any:
        name = "a whole number" if integer else "a number"
        kind = int if integer else (int, float)
        self.typed(value, key_path, kind, name)
        # An int is compared before math.isfinite, which converts it to a float and
        # raises OverflowError above about 1e308.
        if isinstance(value, int) and value > MAX_NUMBER or (
            isinstance(value, float) and math.isfinite(value) and value > MAX_NUMBER
        ):
            raise self.fail(
                key_path,
                f"{_shorten(value)} is above the maximum {MAX_NUMBER:.0e}",
                "use a smaller value",
            )
        if not math.isfinite(value):
            raise self.fail(key_path, f"{value} is not a finite number", f"write {name} here")
        if value < minimum:
            raise self.fail(
                key_path,
                f"{value} is below the minimum {minimum}",
                f"use a value of at least {minimum}",
            )
        return value

    def text(self, value: Any, key_path: str) -> str:
        self.typed(value, key_path, str, "a string")
        if not value.strip():
            raise self.fail(key_path, "is empty", "write a non-empty string")
        return value

    def config(self, data: Any) -> Config:
        if data is None:
            raise self.fail("(top level)", "the file is empty", "add a 'sources' list")
        top = self.mapping(data, "(top level)", TOP_LEVEL_KEYS)
        defaults = self.fetch_settings(top.get("fetch", {}), "fetch", FetchSettings())
        schedule = self.schedule(top.get("schedule", {}), "schedule", Schedule())
        notify = self.notify(top.get("notify", {}), "notify", Notify())
        retention = self.retention(top.get("retention", {}), "retention", Retention())
        sources_data = top.get("sources")
        if sources_data is None:
            raise self.fail("sources", "missing", "add a list with at least one source")
        self.typed(sources_data, "sources", list, "a list of sources")
        if not sources_data:
            raise self.fail("sources", "is empty", "add at least one source")
        sources = tuple(
            self.source(item, f"sources[{index}]", defaults, schedule, notify, retention)
            for index, item in enumerate(sources_data)
        )
        self.check_unique_names(sources)
        snapshots = self.text(top.get("snapshots_dir", "snapshots"), "snapshots_dir")
        lock_timeout = self.number(top.get("lock_timeout", 60.0), "lock_timeout", 0)
        concurrency = self.number(
            top.get("concurrency", DEFAULT_CONCURRENCY), "concurrency", 1, integer=True
        )
        if concurrency > MAX_CONCURRENCY:
            raise self.fail(
                "concurrency",
                f"{concurrency} is more than {MAX_CONCURRENCY}",
                f"use a number from 1 to {MAX_CONCURRENCY}",
            )
        return Config(
            path=self.path,
            snapshots_dir=self.resolve(snapshots),
            sources=sources,
            schedule=schedule,
            lock_timeout=float(lock_timeout),
            state_dir=self.optional_path(top.get("state_dir"), "state_dir"),
            metrics_file=self.optional_path(top.get("metrics_file"), "metrics_file"),
            concurrency=concurrency,
        )

    def optional_path(self, value: Any, key_path: str) -> Path | None:
        if value is None:
            return None
        return self.resolve(self.text(value, key_path))

    def resolve(self, path: str) -> Path:
        """Return ``path`` with ``~`` expanded, relative to the config file's folder."""
        return (self.base / Path(path).expanduser()).resolve()

    def check_unique_names(self, sources: tuple[Source, ...]) -> None:
        first_index: dict[str, int] = {}
        for index, source in enumerate(sources):
            if source.name in first_index:
                raise self.fail(
                    f"sources[{index}].name",
                    f"duplicate source name {source.name!r}, "
                    f"also used by sources[{first_index[source.name]}]",
                    "give each source a unique name",
                )
            first_index[source.name] = index

    def schedule(self, data: Any, key_path: str, defaults: Schedule) -> Schedule:
        known = tuple(Schedule.__dataclass_fields__)
        values = self.mapping(data, key_path, known)
        result = defaults
        if "cron" in values:
            cron = self.text(values["cron"], _join(key_path, "cron"))
            problem = cron_problem(cron)
            if problem:
                raise self.fail(
                    _join(key_path, "cron"),
                    f"invalid cron expression {cron!r}: {problem}",
                    "write 'minute hour day month weekday', for example '0 2 * * *'",
                )
            result = replace(result, cron=cron)
        if "timezone" in values:
            timezone = self.text(values["timezone"], _join(key_path, "timezone"))
            self.check_timezone(timezone, _join(key_path, "timezone"))
            result = replace(result, timezone=timezone)
        for name in ("jitter", "misfire_grace_time"):
            if name in values:
                number = self.number(values[name], _join(key_path, name), 0, integer=True)
                result = replace(result, **{name: number})
        return result

    def check_timezone(self, name: str, key_path: str) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(
                key_path,
                f"unknown time zone {name!r}",
                "use an IANA time zone name such as 'UTC' or 'Europe/Berlin'",
            ) from None

    def notify(self, data: Any, key_path: str, defaults: Notify) -> Notify:
        known = tuple(Notify.__dataclass_fields__)
        values = self.mapping(data, key_path, known)
        result = defaults
        if "urls" in values:
            urls_path = _join(key_path, "urls")
            urls = self.typed(values["urls"], urls_path, list, "a list of Apprise URLs")
            checked = tuple(
                self.text(url, f"{urls_path}[{index}]") for index, url in enumerate(urls)
            )
            for index, url in enumerate(checked):
                if "://" not in url and not url.strip().startswith("${"):
                    raise self.fail(
                        f"{urls_path}[{index}]",
                        "not an Apprise URL",
                        "write a URL such as 'json://host/path' or '${SCRAPER_NOTIFY_URL}'",
                    )
            result = replace(result, urls=checked)
        if "failure_threshold" in values:
            threshold = self.number(
                values["failure_threshold"], _join(key_path, "failure_threshold"), 1, integer=True
            )
            result = replace(result, failure_threshold=threshold)
        if "stale_after_hours" in values:
            hours = self.number(values["stale_after_hours"], _join(key_path, "stale_after_hours"), 0.01)
            result = replace(result, stale_after_hours=float(hours))
        return result

    def retention(self, data: Any, key_path: str, defaults: Retention) -> Retention:
        values = self.mapping(data, key_path, tuple(Retention.__dataclass_fields__))
        result = defaults
        if "keep_versions" in values:
            count = values["keep_versions"]
            if count is not None:
                count_path = _join(key_path, "keep_versions")
                self.typed(count, count_path, int, "a whole number")
                # Compared before number(), so the message names this setting's
                # own maximum rather than the general one.
                if count > MAX_KEEP_VERSIONS:
                    raise self.fail(
                        count_path,
                        f"{_shorten(count)} is above the maximum {MAX_KEEP_VERSIONS}",
                        f"use a value from 1 to {MAX_KEEP_VERSIONS}, "
                        "or null to keep every version",
                    )
                count = self.number(count, count_path, 1, integer=True)
            result = replace(result, keep_versions=count)
        if "keep_days" in values:
            days = values["keep_days"]
            if days is not None:
                days_path = _join(key_path, "keep_days")
                self.typed(days, days_path, (int, float), "a number")
                if days > MAX_KEEP_DAYS:
                    raise self.fail(
                        days_path,
                        f"{_shorten(days)} is above the maximum {MAX_KEEP_DAYS} (100 years)",
                        f"use a value from 0.001 to {MAX_KEEP_DAYS}, "
                        "or null to keep versions of any age",
                    )
                days = float(self.number(days, days_path, 0.001))
            result = replace(result, keep_days=days)
        return result

    def fetch_settings(
        self, data: Any, key_path: str, defaults: FetchSettings
    ) -> FetchSettings:
        known = tuple(FetchSettings.__dataclass_fields__)
        values = self.mapping(data, key_path, known)
        changes: dict[str, Any] = {}
        for name in ("connect_timeout", "read_timeout", "deadline"):
            if name in values:
                changes[name] = float(self.number(values[name], _join(key_path, name), 0.1))
        for name in ("backoff_factor", "max_retry_after"):
            if name in values:
                changes[name] = float(self.number(values[name], _join(key_path, name), 0))
        if "retries" in values:
            changes["retries"] = self.number(
                values["retries"], _join(key_path, "retries"), 0, integer=True
            )
        if "max_bytes" in values:
            changes["max_bytes"] = self.number(
                values["max_bytes"], _join(key_path, "max_bytes"), 1024, integer=True
            )
        for name in ("user_agent", "ca_bundle"):
            if values.get(name) is not None:
                changes[name] = self.text(values[name], _join(key_path, name))
        if changes.get("user_agent") and not changes["user_agent"].isprintable():
            raise self.fail(
                _join(key_path, "user_agent"),
                "contains a line break or control character",
                "write the User-Agent on one line",
            )
        if changes.get("ca_bundle"):
            bundle = self.resolve(changes["ca_bundle"])
            if not bundle.is_file():
                raise self.fail(
                    _join(key_path, "ca_bundle"),
                    f"CA bundle {str(bundle)!r} not found",
                    "give the path of a PEM file with the CA certificates",
                )
            changes["ca_bundle"] = str(bundle)
        if "require_complete_page" in values:
            changes["require_complete_page"] = self.typed(
                values["require_complete_page"],
                _join(key_path, "require_complete_page"),
                bool,
                "true or false",
            )
        if "allow_redirect_hosts" in values:
            hosts_path = _join(key_path, "allow_redirect_hosts")
            hosts = self.typed(values["allow_redirect_hosts"], hosts_path, list, "a list")
            changes["allow_redirect_hosts"] = tuple(
                self.text(host, f"{hosts_path}[{index}]").lower()
                for index, host in enumerate(hosts)
            )
        return replace(defaults, **changes)

    def source(
        self,
        data: Any,
        key_path: str,
        defaults: FetchSettings,
        schedule: Schedule,
        notify: Notify,
        retention: Retention,
    ) -> Source:
        known = (
            "name", "url", "key", "columns", "table", "fetch", "schedule", "notify", "retention",
        )
        values = self.mapping(data, key_path, known)
        for required in ("name", "url", "key", "columns"):
            if required not in values:
                raise self.fail(
                    _join(key_path, required),
                    "missing",
                    _MISSING_HINTS[required],
                )
        name = self.text(values["name"], _join(key_path, "name"))
        if not SOURCE_NAME_PATTERN.match(name):
            raise self.fail(
                _join(key_path, "name"),
                f"invalid source name {name!r}",
                "use 1 to 64 lowercase letters, digits, '.', '_' or '-', "
                "starting with a letter or digit; it becomes a folder name",
            )
        columns = self.columns(values["columns"], _join(key_path, "columns"))
        key = self.text(values["key"], _join(key_path, "key"))
        self.check_key(key, columns, _join(key_path, "key"))
        table = self.mapping(values.get("table", {}), _join(key_path, "table"), ("selector",))
        selector = table.get("selector")
        if selector is not None:
            selector = self.text(selector, _join(key_path, "table.selector"))
            self.check_selector(selector, _join(key_path, "table.selector"))
        fetch = self.fetch_settings(values.get("fetch", {}), _join(key_path, "fetch"), defaults)
        return Source(
            name=name,
            url=self.url(values["url"], _join(key_path, "url")),
            key=key,
            columns=columns,
            selector=selector,
            fetch=fetch,
            schedule=self.schedule(
                values.get("schedule", {}), _join(key_path, "schedule"), schedule
            ),
            notify=self.notify(values.get("notify", {}), _join(key_path, "notify"), notify),
            retention=self.retention(
                values.get("retention", {}), _join(key_path, "retention"), retention
            ),
        )

    def url(self, value: Any, key_path: str) -> str:
        url = self.text(value, key_path).strip()
        scheme = urlsplit(url).scheme.lower()
        if scheme and len(scheme) > 1 and scheme not in URL_SCHEMES:
            raise self.fail(
                key_path,
                f"unsupported URL scheme {scheme!r} in {url!r}",
                "use an http://, https:// or file:// URL, or a file path",
            )
        if scheme in ("http", "https") and not urlsplit(url).hostname:
            raise self.fail(key_path, f"URL {url!r} has no host", "write the full URL")
        if not scheme or len(scheme) == 1:
            # A plain path (a one-letter scheme is a Windows drive letter).
            return str(self.resolve(url))
        return url

    def columns(self, data: Any, key_path: str) -> tuple[Column, ...]:
        self.typed(data, key_path, list, "a list of columns")
        if not data:
            raise self.fail(key_path, "is empty", "list the table's columns")
        columns = []
        for index, item in enumerate(data):
            item_path = f"{key_path}[{index}]"
            values = self.mapping(item, item_path, ("header", "field", "parse"))
            for required in ("header", "field"):
                if required not in values:
                    raise self.fail(
                        _join(item_path, required), "missing", _MISSING_HINTS[required]
                    )
            field_name = self.text(values["field"], _join(item_path, "field"))
            if field_name == "notes":
                raise self.fail(
                    _join(item_path, "field"),
                    "the field name 'notes' is reserved for notes found in cells",
                    "choose another field name",
                )
            if not FIELD_NAME_PATTERN.match(field_name):
                raise self.fail(
                    _join(item_path, "field"),
                    f"invalid field name {field_name!r}",
                    "use lowercase letters, digits and '_', starting with a letter",
                )
            parse = values.get("parse", "text")
            if parse not in PARSE_KINDS:
                raise self.fail(
                    _join(item_path, "parse"),
                    f"invalid value {parse!r}",
                    f"use one of: {', '.join(PARSE_KINDS)}",
                )
            header = self.text(values["header"], _join(item_path, "header"))
            columns.append(Column(header=header, field=field_name, parse=parse))
        self.check_unique_columns(columns, key_path)
        return tuple(columns)

    def check_unique_columns(self, columns: list[Column], key_path: str) -> None:
        from .parse import normalize_header

        headers: set[str] = set()
        fields: set[str] = set()
        for index, column in enumerate(columns):
            header = normalize_header(column.header)
            if header in headers:
                raise self.fail(
                    f"{key_path}[{index}].header",
                    f"duplicate header {column.header!r}",
                    "each column needs its own header text",
                )
            if column.field in fields:
                raise self.fail(
                    f"{key_path}[{index}].field",
                    f"duplicate field {column.field!r}",
                    "each column needs its own field name",
                )
            headers.add(header)
            fields.add(column.field)

    def check_key(self, key: str, columns: tuple[Column, ...], key_path: str) -> None:
        matches = [column for column in columns if column.field == key]
        if not matches:
            fields = ", ".join(column.field for column in columns)
            raise self.fail(
                key_path,
                f"{key!r} is not the field of any column",
                f"set it to one of: {fields}",
            )
        if matches[0].parse == "key_value":
            raise self.fail(
                key_path,
                f"the key column {key!r} is parsed as key_value",
                "the key column must use parse: version or parse: text",
            )

    def check_selector(self, selector: str, key_path: str) -> None:
        from cssselect import SelectorError
        from lxml.cssselect import CSSSelector

        try:
            CSSSelector(selector)
        except SelectorError as error:
            raise self.fail(
                key_path,
                f"invalid CSS selector {selector!r}: {error}",
                "write a CSS selector that matches the table element",
            ) from None


_MISSING_HINTS = {
    "name": "add a unique name such as 'capi-image-builder'",
    "url": "add the page's http(s) URL, a file:// URL or a file path",
    "key": "add the field of the column that identifies a row",
    "columns": "list the table's columns with header, field and parse",
    "header": "add the header text of this column as shown on the page",
    "field": "add the field name this column fills in each row",
}


def _join(key_path: str, key: Any) -> str:
    if key_path == "(top level)":
        return str(key)
    return f"{key_path}.{key}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{value!r} ({type(value).__name__})"


_CRON_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: index for index, name in enumerate(
        "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}),
    ("day of week", 0, 7, {name: index for index, name in enumerate(
        "sun mon tue wed thu fri sat".split())}),
)


def cron_problem(expression: str) -> str | None:
    """Return what is wrong with a five-field cron expression, or None.

    Checks each field's values and ranges here, so a bad schedule fails when the
    configuration loads instead of only when the scheduler starts.
    """
    fields = expression.split()
    if len(fields) != 5:
        return f"it has {len(fields)} fields, not five"
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS):
        for part in text.lower().split(","):
            problem = _cron_part_problem(part, low, high, names)
            if problem:
                return f"{name} field {text!r}: {problem}"
    if fields[2] != "*" and fields[4] != "*":
        # crontab runs when either day field matches; APScheduler only when both do.
        return (
            "it restricts both the day of month and the day of week, which cron and "
            "APScheduler read differently; restrict only one of them"
        )
    return None


def expand_weekdays(field: str) -> list[int]:
    """Return the crontab day-of-week field as day numbers, 0 for Sunday to 6.

    7 also means Sunday, as in crontab. The field must be valid (see cron_problem).
    """
    names = _CRON_FIELDS[4][3]
    days: set[int] = set()
    for part in field.lower().split(","):
        base, _, step = part.partition("/")
        if base == "*":
            first, last = 0, 6
        else:
            bounds = [names.get(b, int(b) if b.isdigit() else 0) for b in base.split("-", 1)]
            first, last = bounds[0], bounds[-1]
            if step and len(bounds) == 1:
                last = 7
        days.update(day % 7 for day in range(first, last + 1, int(step or 1)))
    return sorted(days)


def _cron_part_problem(part: str, low: int, high: int, names: dict[str, int]) -> str | None:
    base, _, step = part.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        return f"invalid step {step!r}"
    if base == "*":
        return None
    for bound in base.split("-", 1):
        value = names.get(bound, int(bound) if bound.isdigit() else None)
        if value is None:
            return f"{bound!r} is not a number"
        if not low <= value <= high:
            return f"{value} is outside {low}-{high}"
    return None
