"""Files that the benchmarks run on: configurations, generated pages and big stores."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from scraper import __version__, yamlio
from scraper.config import load_config
from scraper.store import SCHEMA_VERSION, Store, checksum

ROOT = Path(__file__).resolve().parent.parent
PROJECT_CONFIG = ROOT / "config.yaml"
LOOPBACK_PREFIX = "http://127.0.0.1:"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def write_scraper_config(folder: Path, sources: list[tuple[str, str]]) -> Path:
    """Write ``folder/config.yaml``: the project's configuration with other sources.

    Each source is a (name, url) pair and keeps the key and columns of the first
    source in the project's config.yaml. Raises ValueError for a URL that is neither
    on 127.0.0.1 nor a local file, so no run can reach another host.
    """
    for _, url in sources:
        if not (url.startswith(LOOPBACK_PREFIX) or Path(url).is_absolute()):
            raise ValueError(
                f"benchmark source {url!r} is neither on 127.0.0.1 nor a file"
            )
    config = yaml.safe_load(PROJECT_CONFIG.read_text(encoding="utf-8"))
    template = config["sources"][0]
    config["sources"] = [
        {**template, "name": name, "url": url} for name, url in sources
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def write_urlwatch_job(folder: Path, url: str) -> Path:
    """Write an urlwatch jobs file with one job: ``url`` filtered to its table."""
    if not url.startswith(LOOPBACK_PREFIX):
        raise ValueError(f"benchmark URL {url!r} is not on 127.0.0.1")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "urls.yaml"
    job = {"name": "matrix", "url": url, "filter": [{"css": "table"}]}
    path.write_text(yaml.safe_dump(job, sort_keys=False), encoding="utf-8")
    return path


def synthetic_page(page: bytes, row_count: int) -> bytes:
    """Return ``page`` with its table body replaced by ``row_count`` generated rows.

    The rows have the shape of the captured ones: a version, then three
    ``<code>name</code> = version`` lines separated by ``<br>``.
    """
    rows = []
    for index in range(row_count):
        kubernetes = f"1.{index // 100}.{index % 100}"
        cni = f"1.{index % 4}.0"
        containerd = f"1.7.{index % 20}"
        crictl = f"1.{20 + index % 10}.0"
        rows.append(
            f"<tr><td>{kubernetes}</td><td><code>cni_version</code> = {cni} <br> "
            f"<code>containerd_version</code> = {containerd} <br> "
            f"<code>crictl_version</code> = {crictl}</td></tr>"
        )
    body = "<tbody>" + "".join(rows) + "</tbody>"
    text = page.decode("utf-8")
    replaced, count = re.subn(
        r"<tbody>.*?</tbody>", body, text, count=1, flags=re.DOTALL
    )
    if count != 1:
        raise ValueError("the page has no <tbody> to replace")
    return replaced.encode("utf-8")


def build_history(
    folder: Path, url: str, page: bytes, rows: list, versions: int
) -> None:
    """Create a store under ``folder`` with ``versions`` valid versions of ``rows``.

    Versions 1 to N-1 are written straight to their files, without fsync, which
    keeps a 10,000-version store quick to build. Version N goes through
    Store.write_version under the store's lock, which also writes latest.yaml and
    state.yaml the way a sync does. Each document carries its own checksum, so the
    tool's validation accepts any of them. No version has a page capture, which
    neither `scraper sync` nor `scraper show` reads.

    Raises RuntimeError unless state.yaml's ``last_version`` is N, because the sync
    finds the newest version from it and would otherwise list the versions folder.
    """
    write_scraper_config(folder, [("capi-image-builder", url)])
    config = load_config(folder / "config.yaml")
    source = config.sources[0]
    store = Store(config.snapshots_dir, source.name)
    store.make_folders()
    page_sha256 = hashlib.sha256(page).hexdigest()
    for number in range(1, versions):
        document = history_document(source, url, page_sha256, rows, number)
        document["checksum"] = checksum(document)
        text = yamlio.dump(document)
        store.version_path(number).write_text(text, encoding="utf-8")
    state = {
        "schema_version": SCHEMA_VERSION,
        "source": source.name,
        "last_version": versions,
        "last_checked": _day(versions),
        "last_result": "changed",
        "validators": {"url": url, "etag": None, "last_modified": None},
    }
    with store.locked(config.lock_timeout):
        store.write_version(
            history_document(source, url, page_sha256, rows, versions), state
        )
    # A sample read back through the tool's own validation.
    for number in sorted({1, versions // 2 or 1, versions}):
        store.load_version(number)
    recorded = store.load_state()["last_version"]
    if recorded != versions or store.newest_number() != versions:
        raise RuntimeError(
            f"the built store's state.yaml records version {recorded} and its newest "
            f"version is {store.newest_number()}, expected {versions}"
        )


def history_document(
    source, url: str, page_sha256: str, rows: list, number: int
) -> dict:
    """Return snapshot ``number`` of a history in which each version changed one field.

    Every version stores the same rows, so the newest matches the served page.
    """
    if number == 1:
        diff = {"previous_version": None, "added": rows, "removed": [], "changed": []}
    else:
        change = {
            "key": rows[-1][source.key],
            "fields": {
                "dependencies.crictl_version": {"old": "1.27.0", "new": "1.28.0"}
            },
        }
        diff = {
            "previous_version": number - 1,
            "added": [],
            "removed": [],
            "changed": [change],
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "source": source.name,
        "version": number,
        "url": url,
        "final_url": url,
        "fetched_at": _day(number),
        "page_sha256": page_sha256,
        "http": {
            "status": 200,
            "etag": None,
            "last_modified": None,
            "encoding": "utf-8",
        },
        "tool_version": __version__,
        "row_count": len(rows),
        "rows": rows,
        "diff": diff,
    }


def _day(number: int) -> str:
    moment = datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(hours=number)
    return moment.strftime(TIME_FORMAT)
