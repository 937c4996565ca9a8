"""Several sources in one run: the shipped second source, failures kept apart, bounded
concurrency with one request per host at a time, and the retention setting applied by
`scraper sync` and `scraper prune`."""

from __future__ import annotations

import copy
import json
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from scraper.config import DEFAULT_CONCURRENCY, Retention, load_config
from scraper.diff import compare
from scraper.store import SCHEMA_VERSION, Store
from scraper.run import _HostSlots
from tests.conftest import FAST_FETCH, FIXTURES, ROOT, fixture_bytes, store_files
from tests.httpserver import Reply

CAPI = "capi-image-builder"
PALETTE = "palette-cli"
CAPI_PAGE = "matrix-4rows-asc.html"
PALETTE_PAGE = "second-source/palette-cli-compatibility-matrix.html"
PAGE = "/matrix/"

EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_3 = EXPECTED["captures"]["matrix-3rows-asc.html"]
ROWS_4 = EXPECTED["captures"][CAPI_PAGE]

# The page's second table ("CLI Version"), in key order. Its first table has the same
# "Palette Release" column next to "Recommended CLI Version", with other values
# (4.6.12 -> v4.6.1), so these rows also show that the first table was not picked.
PALETTE_ROWS = [
    {"palette_release": "4.5.3", "cli_version": "v4.5.3"},
    {"palette_release": "4.5.4", "cli_version": "v4.5.3"},
    {"palette_release": "4.5.5", "cli_version": "v4.5.5"},
    {"palette_release": "4.5.8", "cli_version": "v4.5.7"},
    {"palette_release": "4.5.10", "cli_version": "v4.5.7"},
    {"palette_release": "4.5.11", "cli_version": "v4.5.7"},
    {"palette_release": "4.5.15", "cli_version": "v4.5.11"},
    {"palette_release": "4.5.20", "cli_version": "v4.5.14"},
    {"palette_release": "4.5.21", "cli_version": "v4.5.15"},
    {"palette_release": "4.6.6", "cli_version": "v4.6.3"},
    {"palette_release": "4.6.12", "cli_version": "v4.6.9"},
]

SHIPPED = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))

# Seconds each counting server delays a request before it sends the response, so
# that requests which may overlap do overlap. The tests assert counts, never durations.
HOLD_SECONDS = 0.3
# Seconds a delayed request waits for its release event before the response is sent.
RELEASE_TIMEOUT = 10
# Read timeouts far above any hold, so a held request never times out.
SLOW_FETCH = {"read_timeout": 20, "deadline": 30}


def shipped_source(name: str) -> dict:
    """Return a copy of the source ``name`` from the repository's config.yaml."""
    for source in SHIPPED["sources"]:
        if source["name"] == name:
            return copy.deepcopy(source)
    raise LookupError(f"config.yaml has no source {name!r}")


def capi_source(name: str, url: str, **settings) -> dict:
    """Return a source with the shipped CAPI matrix columns under another name and URL."""
    return {**shipped_source(CAPI), "name": name, "url": url, **settings}


def write_sources_config(folder: Path, sources: list[dict], **top) -> Path:
    """Write a config.yaml with ``sources`` and top-level settings ``top``."""
    data = {"snapshots_dir": "snapshots", "lock_timeout": 5, "fetch": dict(FAST_FETCH)}
    data.update(top)
    data["sources"] = sources
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def store_of(workdir: Path, name: str) -> Store:
    return Store(workdir / "snapshots", name)


def version_names(store: Store) -> list[str]:
    return sorted(path.name for path in store.versions_path.iterdir())


def capture_names(store: Store) -> list[str]:
    return sorted(path.name for path in store.captures_path.iterdir())


def file_names(numbers: list[int]) -> tuple[list[str], list[str]]:
    """Return the version and capture file names of ``numbers``."""
    return (
        [f"{number:06d}.yaml" for number in numbers],
        [f"{number:06d}.html.gz" for number in numbers],
    )


# 1. The shipped sources in one run


@pytest.fixture
def shipped_pair(workdir, server):
    """The shipped config.yaml's sources, each pointed at its own path on the test server."""
    sources = []
    for source in SHIPPED["sources"]:
        path = urlsplit(source["url"]).path
        sources.append({**source, "url": server.url(path)})
    pages = {CAPI: CAPI_PAGE, PALETTE: PALETTE_PAGE}
    for source in sources:
        server.route(
            urlsplit(source["url"]).path,
            Reply.html(fixture_bytes(pages[source["name"]])),
        )
    write_sources_config(workdir, sources)
    return {source["name"]: source["url"] for source in sources}


def test_shipped_config_sources():
    assert [source["name"] for source in SHIPPED["sources"]] == [CAPI, PALETTE]


def test_sync_two_sources_output(shipped_pair, scraper):
    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == (
        f"{CAPI}: changed, version 1 (4 added, 0 removed, 0 changed)\n"
        f"{PALETTE}: changed, version 1 (11 added, 0 removed, 0 changed)\n"
    )


def test_sync_two_sources_rows(shipped_pair, workdir, scraper):
    assert scraper("sync").code == 0
    assert store_of(workdir, CAPI).load_version(1)["rows"] == ROWS_4
    assert store_of(workdir, PALETTE).load_version(1)["rows"] == PALETTE_ROWS


def test_show_second_source_json(shipped_pair, workdir, scraper):
    assert scraper("sync").code == 0
    fetched_at = store_of(workdir, PALETTE).load_version(1)["fetched_at"]
    result = scraper("show", "--source", PALETTE, "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "source": PALETTE,
        "version": 1,
        "fetched_at": fetched_at,
        "url": shipped_pair[PALETTE],
        "rows": PALETTE_ROWS,
    }


def test_second_sync_unchanged_both(shipped_pair, scraper):
    assert scraper("sync").code == 0
    result = scraper("sync")
    assert result.code == 0, result.err
    assert (
        result.out == f"{CAPI}: unchanged, version 1\n{PALETTE}: unchanged, version 1\n"
    )


def test_reparse_every_source(shipped_pair, scraper):
    assert scraper("sync").code == 0
    result = scraper("reparse")
    assert result.code == 0, result.err
    assert result.out == (
        f"{CAPI}: reparsed 1 version: 1 same\n"
        f"{PALETTE}: reparsed 1 version: 1 same\n"
    )


def test_reparse_every_source_json(shipped_pair, scraper):
    assert scraper("sync").code == 0
    result = scraper("reparse", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert [entry["source"] for entry in data["sources"]] == [CAPI, PALETTE]
    statuses = [
        version["status"] for entry in data["sources"] for version in entry["versions"]
    ]
    assert statuses == ["same", "same"]
    assert [entry["skipped"] for entry in data["sources"]] == [None, None]


def test_reparse_one_source_json(shipped_pair, scraper):
    assert scraper("sync").code == 0
    result = scraper("reparse", "--source", PALETTE, "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["source"] == PALETTE
    assert [version["version"] for version in data["versions"]] == [1]


def test_reparse_damaged_store_others_checked(shipped_pair, workdir, scraper):
    assert scraper("sync").code == 0
    damaged = workdir / "snapshots" / CAPI / "versions" / "000001.yaml"
    damaged.write_bytes(damaged.read_bytes().replace(b"1.27.13", b"1.27.14"))
    result = scraper("reparse")
    assert result.code == 5
    assert str(damaged) in result.err
    assert result.out == f"{PALETTE}: reparsed 1 version: 1 same\n"


def test_reparse_damaged_store_in_json(shipped_pair, workdir, scraper):
    assert scraper("sync").code == 0
    damaged = workdir / "snapshots" / CAPI / "versions" / "000001.yaml"
    damaged.write_bytes(damaged.read_bytes().replace(b"1.27.13", b"1.27.14"))
    result = scraper("reparse", "--format", "json")
    assert result.code == 5
    entries = json.loads(result.out)["sources"]
    assert [entry["source"] for entry in entries] == [CAPI, PALETTE]
    assert entries[0]["versions"] == []
    assert entries[0]["skipped"].startswith("error: ")
    assert str(damaged) in entries[0]["skipped"]
    assert entries[1]["skipped"] is None


def test_reparse_empty_versions_folder_skipped(workdir, scraper):
    # A sync that failed before its first version can leave an empty versions/.
    two_sources(workdir)
    (workdir / "palette.html").write_bytes(fixture_bytes(PALETTE_PAGE))
    assert scraper("sync", "--source", PALETTE).code == 0
    (workdir / "snapshots" / CAPI / "versions").mkdir(parents=True)
    result = scraper("reparse", "--format", "json")
    assert result.code == 0, result.err
    entries = json.loads(result.out)["sources"]
    assert entries[0] == {"source": CAPI, "versions": [], "skipped": "no versions stored yet"}
    assert f"{CAPI}: no versions stored yet" in result.err


def test_reparse_skips_never_synced(workdir, scraper):
    two_sources(workdir)
    (workdir / "palette.html").write_bytes(fixture_bytes(PALETTE_PAGE))
    assert scraper("sync", "--source", PALETTE).code == 0
    result = scraper("reparse")
    assert result.code == 0, result.err
    assert result.out == f"{PALETTE}: reparsed 1 version: 1 same\n"
    assert f"{CAPI}: no versions stored yet" in result.err


# 2. Failing sources


@pytest.fixture
def three_sources(workdir, server, scraper):
    """Three synced sources. Afterwards "good" serves a new row, "missing" a 404 and
    "redesigned" a page without the table."""
    paths = {"good": "/good/", "missing": "/missing/", "redesigned": "/redesigned/"}
    sources = [capi_source(name, server.url(path)) for name, path in paths.items()]
    write_sources_config(workdir, sources)
    for path in paths.values():
        server.route(path, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    assert scraper("sync").code == 0
    server.route(paths["good"], Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    server.route(
        paths["missing"], Reply.html(b"<html><body>gone</body></html>", status=404)
    )
    server.route(
        paths["redesigned"], Reply.html(fixture_bytes("cases/layout-changed.html"))
    )
    return paths


def test_failures_exit_code_is_worst(three_sources, scraper):
    assert scraper("sync").code == 4


def test_failures_every_source_prints(three_sources, scraper):
    result = scraper("sync")
    assert result.out.splitlines() == [
        "good: changed, version 2 (1 added, 0 removed, 0 changed)",
        "missing: error: fetch: HTTP 404 Not Found",
        (
            "redesigned: error: locate table: matrix table not found: expected a table "
            "with headers 'Kubernetes Version', 'Dependencies Version'; found 0 tables"
        ),
    ]


def test_failures_reported_on_stderr(three_sources, scraper):
    errors = scraper("sync").err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("scraper: error: source 'missing': fetch: ")
    assert errors[1].startswith("scraper: error: source 'redesigned': locate table: ")


def test_failures_good_source_written(three_sources, workdir, scraper):
    scraper("sync")
    store = store_of(workdir, "good")
    assert store.version_numbers() == [1, 2]
    assert store.load_version(2)["rows"] == ROWS_4


def test_failures_leave_stores_untouched(three_sources, workdir, scraper):
    folders = [workdir / "snapshots" / name for name in ("missing", "redesigned")]
    before = [store_files(folder) for folder in folders]
    scraper("sync")
    assert [store_files(folder) for folder in folders] == before


def test_exit_code_option_error_wins(three_sources, server, scraper):
    # Only the fetch error is left, next to a change.
    server.route(
        three_sources["redesigned"], Reply.html(fixture_bytes("matrix-3rows-asc.html"))
    )
    result = scraper("sync", "--exit-code")
    assert result.code == 3
    assert (
        result.out.splitlines()[0]
        == "good: changed, version 2 (1 added, 0 removed, 0 changed)"
    )


# 3. Concurrency


class InFlight:
    """The requests being served at this moment, the maximum seen, and the names of
    the servers in the order they started their responses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.maximum = 0
        self.finished: list[str] = []

    def enter(self) -> None:
        with self._lock:
            self.current += 1
            self.maximum = max(self.maximum, self.current)

    def leave(self) -> None:
        with self._lock:
            self.current -= 1

    def finish(self, name: str) -> None:
        with self._lock:
            self.finished.append(name)


class CountingServer:
    """A threaded HTTP server on 127.0.0.1 that serves one page to every GET.

    It counts the requests in flight on itself (``own``) and on an InFlight shared
    with other servers (``shared``). Each request is delayed ``hold`` seconds, or
    until ``release`` is set when one is given. The count drops before the response
    is sent, so a client that waits for each response before its next request to
    this server is never counted twice.
    """

    def __init__(
        self,
        name: str,
        shared: InFlight,
        hold: float = HOLD_SECONDS,
        release: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.shared = shared
        self.own = InFlight()
        self.hold = hold
        self.release = release
        self.served = threading.Event()
        self.paths: list[str] = []
        self.page = fixture_bytes(CAPI_PAGE)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.own.enter()
                owner.shared.enter()
                try:
                    if owner.release is not None:
                        owner.release.wait(RELEASE_TIMEOUT)
                    else:
                        time.sleep(owner.hold)
                finally:
                    owner.shared.leave()
                    owner.own.leave()
                # Recorded before the response, so the test sees it once sync returns.
                owner.paths.append(self.path)
                owner.shared.finish(owner.name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(owner.page)))
                self.end_headers()
                self.wfile.write(owner.page)
                self.wfile.flush()
                owner.served.set()

            def log_message(self, format, *args) -> None:
                pass

        return Handler


@pytest.fixture
def counting_servers():
    """Start CountingServers on demand; every one is stopped after the test."""
    started: list[CountingServer] = []

    def start(name: str, shared: InFlight, **options) -> CountingServer:
        server = CountingServer(name, shared, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def changed_lines(sources: list[str]) -> list[str]:
    return [
        f"{name}: changed, version 1 (4 added, 0 removed, 0 changed)"
        for name in sources
    ]


def six_servers(
    counting_servers, workdir, **top
) -> tuple[InFlight, list[CountingServer]]:
    """Six sources, each on its own server, and the InFlight they share."""
    shared = InFlight()
    servers = [counting_servers(f"server-{index}", shared) for index in range(1, 7)]
    sources = [
        capi_source(f"s{index}", server.url(PAGE))
        for index, server in enumerate(servers, 1)
    ]
    write_sources_config(workdir, sources, fetch={**FAST_FETCH, **SLOW_FETCH}, **top)
    return shared, servers


def test_one_request_per_host(counting_servers, workdir, scraper):
    server = counting_servers("one", InFlight())
    sources = [
        capi_source(f"s{index}", server.url(f"/page/{index}")) for index in range(1, 7)
    ]
    write_sources_config(
        workdir, sources, concurrency=4, fetch={**FAST_FETCH, **SLOW_FETCH}
    )
    result = scraper("sync")
    assert result.code == 0, result.err
    assert sorted(server.paths) == [f"/page/{index}" for index in range(1, 7)]
    assert server.own.maximum == 1


@pytest.mark.parametrize("limit", [2, 3])
def test_concurrency_bounds_sources(counting_servers, workdir, scraper, limit):
    shared, servers = six_servers(counting_servers, workdir, concurrency=limit)
    result = scraper("sync")
    assert result.code == 0, result.err
    assert [len(server.paths) for server in servers] == [1] * 6
    assert shared.maximum <= limit
    assert shared.maximum > 1


def test_concurrency_option_one(counting_servers, workdir, scraper):
    shared, servers = six_servers(counting_servers, workdir, concurrency=4)
    result = scraper("sync", "--concurrency", "1")
    assert result.code == 0, result.err
    assert [len(server.paths) for server in servers] == [1] * 6
    assert shared.maximum == 1


def test_results_printed_in_config_order(counting_servers, workdir, scraper):
    shared = InFlight()
    fast = counting_servers("fast", shared, hold=0)
    # The first source's page is sent only after the second source's page.
    slow = counting_servers("slow", shared, release=fast.served)
    sources = [
        capi_source("first", slow.url(PAGE)),
        capi_source("second", fast.url(PAGE)),
    ]
    write_sources_config(workdir, sources, fetch={**FAST_FETCH, **SLOW_FETCH})
    result = scraper("sync")
    assert result.code == 0, result.err
    assert shared.finished == ["fast", "slow"]
    assert result.out.splitlines() == changed_lines(["first", "second"])


def test_six_sources_printed_in_order(counting_servers, workdir, scraper):
    six_servers(counting_servers, workdir, concurrency=3)
    result = scraper("sync")
    assert result.out.splitlines() == changed_lines(
        [f"s{index}" for index in range(1, 7)]
    )


# 4. Validation of the new settings


@pytest.mark.parametrize(
    ("top", "message"),
    [
        (
            {"concurrency": 0},
            "concurrency: 0 is below the minimum 1 (use a value of at least 1)",
        ),
        (
            {"concurrency": 65},
            "concurrency: 65 is more than 64 (use a number from 1 to 64)",
        ),
        (
            {"concurrency": "four"},
            "concurrency: expected a whole number, found 'four' (str) (write a whole number here)",
        ),
        (
            {"concurrency": 2.5},
            "concurrency: expected a whole number, found 2.5 (float) (write a whole number here)",
        ),
        (
            {"retention": {"keep_versions": 0}},
            "retention.keep_versions: 0 is below the minimum 1 (use a value of at least 1)",
        ),
        (
            {"retention": {"keep_days": -1}},
            "retention.keep_days: -1 is below the minimum 0.001 (use a value of at least 0.001)",
        ),
        (
            {"retention": {"keep": 3}},
            (
                "retention.keep: unknown key (remove it or fix its spelling; "
                "known keys here: keep_versions, keep_days)"
            ),
        ),
    ],
)
def test_invalid_setting_rejected(workdir, scraper, top, message):
    write_sources_config(workdir, [capi_source(CAPI, "page.html")], **top)
    result = scraper("sync")
    assert result.code == 2
    assert result.err == f"scraper: error: config: config.yaml: {message}\n"


def test_invalid_source_retention_rejected(workdir, scraper):
    source = capi_source(CAPI, "page.html", retention={"keep_versions": 0})
    write_sources_config(workdir, [source])
    result = scraper("sync")
    assert result.code == 2
    assert result.err == (
        "scraper: error: config: config.yaml: sources[0].retention.keep_versions: "
        "0 is below the minimum 1 (use a value of at least 1)\n"
    )


@pytest.mark.parametrize("value", ["0", "x", "65", "\u00b3"])
def test_concurrency_option_invalid(workdir, scraper, capsys, value):
    write_sources_config(workdir, [capi_source(CAPI, "page.html")])
    with pytest.raises(SystemExit) as exit_info:
        scraper("sync", "--concurrency", value)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error == (
        f"scraper sync: error: argument --concurrency: invalid number {value!r}: "
        "use a whole number from 1 to 64"
    )


def test_concurrency_setting_loaded(workdir):
    default = write_sources_config(workdir, [capi_source(CAPI, "page.html")])
    assert load_config(default).concurrency == DEFAULT_CONCURRENCY
    highest = write_sources_config(
        workdir, [capi_source(CAPI, "page.html")], concurrency=64
    )
    assert load_config(highest).concurrency == 64


def test_retention_inherited_and_overridden(workdir):
    sources = [
        capi_source("own-count", "a.html", retention={"keep_versions": 2}),
        capi_source("inherits", "b.html"),
        capi_source("no-count", "c.html", retention={"keep_versions": None}),
        capi_source(
            "none", "d.html", retention={"keep_versions": None, "keep_days": None}
        ),
    ]
    path = write_sources_config(
        workdir, sources, retention={"keep_versions": 5, "keep_days": 30}
    )
    config = load_config(path)
    assert config.source("own-count").retention == Retention(
        keep_versions=2, keep_days=30.0
    )
    assert config.source("inherits").retention == Retention(
        keep_versions=5, keep_days=30.0
    )
    assert config.source("no-count").retention == Retention(
        keep_versions=None, keep_days=30.0
    )
    assert config.source("none").retention == Retention()
    assert not config.source("none").retention.enabled


# 5. Retention applied by sync


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_history(
    store: Store, template: dict, capture: bytes, ages_days: list[float], url: str, etag
) -> None:
    """Write versions 1..N fetched ``ages_days`` ago, as a sync writes them.

    Rows alternate between the 3-row and the 4-row capture and end with the 4-row
    one, so the served 4-row page is no change. State validators carry ``etag``.
    """
    now = datetime.now(timezone.utc)
    count = len(ages_days)
    previous: list = []
    for number, age in enumerate(ages_days, start=1):
        rows = copy.deepcopy(ROWS_4 if (count - number) % 2 == 0 else ROWS_3)
        fetched_at = timestamp(now - timedelta(days=age))
        diff = compare(previous, rows, "kubernetes_version").to_data()
        document = copy.deepcopy(template)
        del document["checksum"]
        document.update(
            version=number,
            fetched_at=fetched_at,
            rows=rows,
            row_count=len(rows),
            diff={"previous_version": number - 1 or None, **diff},
        )
        state = {
            "schema_version": SCHEMA_VERSION,
            "source": store.source,
            "last_version": number,
            "last_checked": fetched_at,
            "last_result": "changed",
            "validators": {"url": url, "etag": etag, "last_modified": None},
        }
        with store.locked(5):
            store.write_version(document, state, capture=capture)
        previous = rows


@pytest.fixture
def history(workdir, server, scraper):
    """Return a builder of CAPI stores whose versions have chosen ages in days.

    A real sync of the 4-row page writes version 1, the template of every version.
    The builder then rebuilds the store with the chosen ``fetched_at`` times, and the
    server keeps serving the 4-row page.
    """
    url = server.url(PAGE)

    def build(ages_days: list[float], etag: str | None = None, **top) -> Store:
        write_sources_config(workdir, [capi_source(CAPI, url)], **top)
        server.route(PAGE, Reply.html(fixture_bytes(CAPI_PAGE)))
        assert scraper("sync").code == 0
        store = store_of(workdir, CAPI)
        template = store.load_version(1)
        capture = store.load_capture(1)
        shutil.rmtree(store.path)
        write_history(store, template, capture, ages_days, url, etag)
        assert store.version_numbers() == list(range(1, len(ages_days) + 1))
        return store

    return build


FIVE_DAYS = [5, 4, 3, 2, 1]


def test_keep_versions_only(history, scraper):
    store = history([6, 5, 4, 3, 2, 1], retention={"keep_versions": 2})
    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == f"{CAPI}: unchanged, version 6\n"
    versions, captures = file_names([5, 6])
    assert version_names(store) == versions
    assert capture_names(store) == captures


def test_keep_days_only(history, scraper):
    store = history([100, 50, 10, 1], retention={"keep_days": 30})
    assert scraper("sync").code == 0
    versions, captures = file_names([3, 4])
    assert version_names(store) == versions
    assert capture_names(store) == captures


@pytest.mark.parametrize(
    ("ages", "retention", "kept"),
    [
        # keep_days keeps version 3, which keep_versions alone would delete.
        ([100, 60, 20, 10, 5], {"keep_versions": 2, "keep_days": 30}, [3, 4, 5]),
        # keep_versions keeps versions 4 and 5, which keep_days alone would delete.
        ([100, 90, 80, 70, 60, 5], {"keep_versions": 3, "keep_days": 30}, [4, 5, 6]),
    ],
    ids=["days-keep-more", "count-keeps-more"],
)
def test_both_rules_either_keeps(history, scraper, ages, retention, kept):
    store = history(ages, retention=retention)
    assert scraper("sync").code == 0
    assert version_names(store) == file_names(kept)[0]


@pytest.mark.parametrize(
    "retention",
    [{"keep_days": 30}, {"keep_versions": 1}, {"keep_versions": 1, "keep_days": 1}],
)
def test_newest_always_kept(history, scraper, retention):
    store = history([100, 90, 80], retention=retention)
    assert scraper("sync").code == 0
    assert version_names(store) == file_names([3])[0]
    assert store.latest_path.read_bytes() == store.version_path(3).read_bytes()


@pytest.mark.parametrize(
    ("reply", "line", "kept"),
    [
        (
            "3rows",
            f"{CAPI}: changed, version 6 (0 added, 1 removed, 0 changed)",
            [5, 6],
        ),
        ("4rows", f"{CAPI}: unchanged, version 5", [4, 5]),
        ("304", f"{CAPI}: unchanged (HTTP 304 not modified), version 5", [4, 5]),
    ],
    ids=["changed", "unchanged", "not-modified"],
)
def test_retention_after_every_sync(history, server, scraper, reply, line, kept):
    store = history(FIVE_DAYS, etag='"v5"', retention={"keep_versions": 2})
    replies = {
        "3rows": Reply.html(fixture_bytes("matrix-3rows-asc.html")),
        "4rows": Reply.html(fixture_bytes(CAPI_PAGE)),
        "304": Reply(status=304, headers={"ETag": '"v5"'}),
    }
    server.route(PAGE, replies[reply])
    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == line + "\n"
    assert server.requests_for(PAGE)[-1].headers.get("If-None-Match") == '"v5"'
    versions, captures = file_names(kept)
    assert version_names(store) == versions
    assert capture_names(store) == captures


def test_failed_sync_keeps_versions(history, server, scraper):
    store = history(FIVE_DAYS, retention={"keep_versions": 2})
    before = store_files(store.path)
    server.route(PAGE, Reply.html(b"<html><body>gone</body></html>", status=404))
    assert scraper("sync").code == 3
    assert store_files(store.path) == before


def test_damaged_version_stops_retention(history, scraper):
    store = history([100, 50, 10, 1], retention={"keep_days": 30})
    # Version 1 is old enough to delete, but reading version 2's age fails first.
    damaged = store.version_path(2)
    damaged.write_bytes(damaged.read_bytes().replace(b"1.27.13", b"1.27.14"))
    before = store_files(store.versions_path), store_files(store.captures_path)
    result = scraper("sync")
    assert result.code == 0
    assert result.out == f"{CAPI}: unchanged, version 4\n"
    errors = [
        line for line in result.err.splitlines() if line.startswith("scraper: ERROR: ")
    ]
    assert len(errors) == 1
    assert errors[0].startswith(f"scraper: ERROR: {CAPI}: retention not applied: ")
    assert str(damaged) in errors[0]
    assert (
        store_files(store.versions_path),
        store_files(store.captures_path),
    ) == before


def test_next_change_after_pruning(history, server, scraper):
    store = history(FIVE_DAYS, retention={"keep_versions": 1})
    assert scraper("sync").code == 0
    assert store.version_numbers() == [5]
    server.route(PAGE, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    result = scraper("sync")
    assert result.out == f"{CAPI}: changed, version 6 (0 added, 1 removed, 0 changed)\n"
    assert store.version_numbers() == [6]
    assert store.load_version(6)["diff"]["previous_version"] == 5


# 6. scraper prune


def test_prune_dry_run_lists(history, scraper):
    history(FIVE_DAYS, retention={"keep_versions": 2})
    result = scraper("prune", "--dry-run")
    assert result.code == 0, result.err
    assert result.out == f"{CAPI}: would delete versions 1, 2, 3\n"


def test_prune_dry_run_deletes_nothing(history, scraper):
    store = history(FIVE_DAYS, retention={"keep_versions": 2})
    before = store_files(store.path)
    assert scraper("prune", "--dry-run").code == 0
    assert store_files(store.path) == before


def test_prune_deletes_listed(history, scraper):
    store = history(FIVE_DAYS, retention={"keep_versions": 2})
    latest, state = store.latest_path.read_bytes(), store.state_path.read_bytes()
    result = scraper("prune")
    assert result.code == 0, result.err
    assert result.out == f"{CAPI}: deleted versions 1, 2, 3\n"
    versions, captures = file_names([4, 5])
    assert version_names(store) == versions
    assert capture_names(store) == captures
    assert store.latest_path.read_bytes() == latest
    assert store.state_path.read_bytes() == state


def test_prune_twice_deletes_nothing(history, scraper):
    history(FIVE_DAYS, retention={"keep_versions": 2})
    assert scraper("prune").code == 0
    result = scraper("prune", "--source", CAPI)
    assert result.code == 0, result.err
    assert result.out == f"{CAPI}: deleted no versions\n"


def test_prune_damaged_version_fails(history, scraper):
    store = history([100, 50, 10, 1], retention={"keep_days": 30})
    damaged = store.version_path(2)
    damaged.write_bytes(damaged.read_bytes().replace(b"1.27.13", b"1.27.14"))
    before = store_files(store.versions_path)
    result = scraper("prune")
    assert result.code == 5
    assert str(damaged) in result.err
    assert store_files(store.versions_path) == before


def test_prune_damaged_store_others_pruned(workdir, scraper):
    two_sources(
        workdir, capi_retention={"keep_days": 0.001}, retention={"keep_versions": 1}
    )
    (workdir / "palette.html").write_bytes(
        fixture_bytes("second-source/palette-cli-compatibility-matrix.html")
    )
    for page in ("matrix-3rows-asc.html", "matrix-4rows-asc.html"):
        (workdir / "capi.html").write_bytes(fixture_bytes(page))
        assert scraper("sync").code == 0
    damaged = workdir / "snapshots" / CAPI / "versions" / "000001.yaml"
    damaged.write_bytes(damaged.read_bytes().replace(b"1.27.13", b"1.27.14"))
    result = scraper("prune")
    assert result.code == 5
    assert str(damaged) in result.err
    assert result.out == f"{PALETTE}: deleted no versions\n"
    assert damaged.exists()


def test_prune_never_synced_store(workdir, scraper):
    two_sources(workdir, capi_retention={"keep_versions": 2})
    result = scraper("prune", "--source", CAPI)
    assert result.code == 0, result.err
    assert result.out == f"{CAPI}: no versions stored yet\n"
    assert not (workdir / "snapshots").exists()


def two_sources(workdir: Path, capi_retention: dict | None = None, **top) -> None:
    """A config with the CAPI source and the Palette CLI source, both file paths."""
    capi = capi_source(CAPI, "capi.html")
    if capi_retention is not None:
        capi["retention"] = capi_retention
    palette = {**shipped_source(PALETTE), "url": "palette.html"}
    write_sources_config(workdir, [capi, palette], **top)


def test_prune_source_without_retention(workdir, scraper):
    two_sources(workdir, capi_retention={"keep_versions": 2})
    result = scraper("prune", "--source", PALETTE)
    assert result.code == 2
    assert result.err == (
        f"scraper: error: usage: config.yaml: source '{PALETTE}' has no retention setting "
        "(set retention.keep_versions or retention.keep_days in config.yaml)\n"
    )


def test_prune_source_null_overrides_top(workdir, scraper):
    two_sources(
        workdir, capi_retention={"keep_versions": None}, retention={"keep_versions": 1}
    )
    result = scraper("prune", "--source", CAPI)
    assert result.code == 2
    assert f"source '{CAPI}' has no retention setting" in result.err


def test_prune_without_any_retention(workdir, scraper):
    two_sources(workdir)
    result = scraper("prune")
    assert result.code == 0, result.err
    assert result.out == (
        f"{CAPI}: no retention setting; every version is kept\n"
        f"{PALETTE}: no retention setting; every version is kept\n"
    )
    assert not (workdir / "snapshots").exists()


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("http://example.com/a", "http://example.com:80/b", True),
        ("https://Example.com/a", "https://example.com:443/b", True),
        ("http://example.com/a", "https://example.com/a", False),
        ("http://example.com:8080/a", "http://example.com/a", False),
        ("http://localhost/a", "http://127.0.0.1/a", False),
    ],
)
def test_host_slot_key(first, second, same):
    assert (_HostSlots.host(first) == _HostSlots.host(second)) is same
