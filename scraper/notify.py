"""Notifications through Apprise, with an outbox on disk so none is lost.

Events (the matrix changed, a source is failing or recovered, a source is stale) are
first written to ``<state_dir>/outbox/`` and then sent. An event leaves the outbox
only when every URL configured for its source has accepted it, so a failed delivery
is retried on the next run. Outbox files hold no URLs: a URL is taken from the
configuration when it is sent, with ``${NAME}`` replaced from the environment, so
secrets stay out of files and out of the logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .config import Config, Source
from .errors import ConfigError
from .diff import Diff, flatten
from .records import now_text, write_atomic
from .redact import redact_url

log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SEND_ATTEMPTS = 2
RETRY_PAUSE = 1.0


@dataclass
class Event:
    """One notification waiting to be delivered."""

    source: str
    kind: str  # "changed", "failing", "recovered" or "stale"
    title: str
    body: str
    level: str = "info"  # "info", "success", "warning" or "failure"


def changed_event(source: str, version: int, diff: Diff, key: str) -> Event:
    """Build the message for a new version: added and removed keys, changed pins old -> new."""
    lines = []
    for row in diff.added:
        pins = ", ".join(f"{path} {value}" for path, value in flatten(row).items() if path != key)
        lines.append(f"+ {row[key]} added: {pins}")
    for row in diff.removed:
        lines.append(f"- {row[key]} removed")
    for change in diff.changed:
        for path, (old, new) in change.fields.items():
            lines.append(f"~ {change.key} {path}: {old or '(none)'} → {new or '(none)'}")
    return Event(
        source=source,
        kind="changed",
        title=f"{source}: matrix changed, version {version} ({diff.counts()})",
        body="\n".join(lines),
    )


def failing_event(source: str, failures: int, error: str) -> Event:
    return Event(
        source=source,
        kind="failing",
        title=f"{source}: sync failing ({failures} runs in a row)",
        body=f"Last error: {error}\nThe last good snapshot is kept until the source is fixed.",
        level="failure",
    )


def recovered_event(source: str, failures: int) -> Event:
    return Event(
        source=source,
        kind="recovered",
        title=f"{source}: sync recovered after {failures} failed runs",
        body="The source was synced successfully again.",
        level="success",
    )


def stale_event(source: str, last_success: str | None, hours: float) -> Event:
    since = f"since {last_success}" if last_success else "ever"
    return Event(
        source=source,
        kind="stale",
        title=f"{source}: no successful sync {since}",
        body=f"No successful sync for more than {hours:g} hours; the snapshot may be out of date.",
        level="warning",
    )


def expand_url(template: str, where: str) -> str:
    """Replace each ``${NAME}`` with the environment variable NAME; raise if it is unset."""

    def value_of(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"{where}: environment variable {name} is not set",
                hint=f"export {name} with the notification URL, or remove the URL",
            )
        return os.environ[name]

    return _VARIABLE.sub(value_of, template)


def check_notify_settings(config: Config) -> None:
    """Raise ConfigError if a notification URL needs an unset variable or is invalid."""
    for source in config.sources:
        for index, template in enumerate(source.notify.urls):
            where = f"source {source.name!r} notify.urls[{index}]"
            url = expand_url(template, where)
            if not _apprise_accepts(url):
                raise ConfigError(
                    f"{where}: Apprise does not recognise the URL {_mask(template, url)}",
                    where=str(config.path),
                    hint="see the Apprise documentation for the URL of each service",
                )


def _apprise_accepts(url: str) -> bool:
    import apprise

    return apprise.Apprise.instantiate(url) is not None


def _mask(template: str, url: str) -> str:
    # Show the template, which names variables, rather than the expanded secret.
    return template if _VARIABLE.search(template) else redact_url(url)


def url_id(template: str) -> str:
    """Return a short stable id of a URL template, recorded for each delivery."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:12]


class Outbox:
    """Events on disk, one JSON file each, sent in the order they were created."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / "outbox"

    def add(self, event: Event) -> Path:
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        entry = {
            "created": now_text(),
            "attempts": 0,
            "delivered": [],
            **event.__dict__,
        }
        path = self.folder / name
        write_atomic(path, json.dumps(entry, ensure_ascii=False, indent=2).encode("utf-8"))
        log.info("%s: queued %s notification", event.source, event.kind)
        return path

    def pending(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("*.json"))

    def flush(self, config: Config) -> int:
        """Send every pending event; return how many are still pending afterwards.

        A lock keeps two runs (two scheduler jobs, or a manual sync during the
        scheduler) from sending the same event twice.
        """
        from .locks import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(self.folder / ".lock", timeout=config.lock_timeout):
            return self._flush_locked(config)

    def _flush_locked(self, config: Config) -> int:
        sources = {source.name: source for source in config.sources}
        remaining = 0
        for path in self.pending():
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                log.error("notification %s is unreadable and was skipped: %s", path, error)
                remaining += 1
                continue
            source = sources.get(entry["source"])
            if source is None or not source.notify.urls:
                log.warning(
                    "dropping %s notification for %r: no notification URLs configured",
                    entry["kind"], entry["source"],
                )
                path.unlink(missing_ok=True)
                continue
            if not self.deliver(path, entry, source):
                remaining += 1
        return remaining

    def deliver(self, path: Path, entry: dict, source: Source) -> bool:
        entry["attempts"] += 1
        for index, template in enumerate(source.notify.urls):
            identity = url_id(template)
            if identity in entry["delivered"]:
                continue
            if send(template, f"notify.urls[{index}]", entry):
                entry["delivered"].append(identity)
        wanted = {url_id(template) for template in source.notify.urls}
        if wanted <= set(entry["delivered"]):
            path.unlink(missing_ok=True)
            log.info("%s: sent %s notification", entry["source"], entry["kind"])
            return True
        write_atomic(path, json.dumps(entry, ensure_ascii=False, indent=2).encode("utf-8"))
        log.warning(
            "%s: %s notification not delivered (attempt %d); kept in %s for the next run",
            entry["source"], entry["kind"], entry["attempts"], path,
        )
        return False


def send(template: str, where: str, entry: dict) -> bool:
    """Send one event to one URL, retrying once; never log the expanded URL."""
    import apprise

    try:
        url = expand_url(template, where)
    except ConfigError as error:
        log.error("%s", error)
        return False
    notifier = apprise.Apprise()
    if not notifier.add(url):
        log.error("%s: Apprise does not recognise the URL %s", where, _mask(template, url))
        return False
    secrets = [value for value in _expanded_values(template) if value]
    for attempt in range(1, SEND_ATTEMPTS + 1):
        with _captured_apprise_log() as messages:
            delivered = notifier.notify(
                title=entry["title"],
                body=entry["body"] or entry["title"],
                notify_type=apprise.NotifyType(entry.get("level", "info")),
            )
        if delivered:
            return True
        detail = "; ".join(_hide(message, secrets) for message in messages) or "no detail"
        log.warning("%s: delivery failed (attempt %d of %d): %s", where, attempt, SEND_ATTEMPTS, detail)
        if attempt < SEND_ATTEMPTS:
            time.sleep(RETRY_PAUSE)
    return False


def _expanded_values(template: str) -> list[str]:
    return [os.environ.get(name, "") for name in _VARIABLE.findall(template)]


def _hide(message: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


class _captured_apprise_log:
    """Collect Apprise's log messages instead of letting them reach stderr unmasked."""

    def __enter__(self) -> list[str]:
        self.messages: list[str] = []
        self.logger = logging.getLogger("apprise")
        self.saved = (self.logger.handlers[:], self.logger.propagate, self.logger.level)
        handler = logging.Handler(logging.WARNING)
        handler.emit = lambda record: self.messages.append(record.getMessage())
        self.logger.handlers[:] = [handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.WARNING)
        return self.messages

    def __exit__(self, *exc_info) -> None:
        self.logger.handlers[:], self.logger.propagate, level = self.saved
        self.logger.setLevel(level)
