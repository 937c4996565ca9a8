"""Run every benchmark of scraper and write the report, BENCHMARKS.md by default.

Start it with `bash bench/run`, which prepares bench/.venv and then runs this file
with that environment's Python. Every page comes from a server on 127.0.0.1 that
this process starts. Contenders run interleaved (their order rotates every
repetition) so that they share the machine's noise, and each table reports
medians. Times are never checked against a limit: a missed goal is reported, not
failed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import lxml.html
import yaml
from harness import (
    InFlight,
    PageServer,
    ProcessRun,
    Samples,
    rotated,
    run_process,
    time_calls,
)
from importtimes import profile_imports
from report import plural, render
from workspaces import (
    PROJECT_CONFIG,
    ROOT,
    build_history,
    synthetic_page,
    write_scraper_config,
    write_urlwatch_job,
)

# Repetition counts. `--quick` lowers each one to QUICK_REPEATS for a trial run.
REPEATS_WHOLE_RUN = 15  # benchmark 1: each contender's first and unchanged run
REPEATS_PHASES = 9  # benchmark 1: in-process phase timings of scraper and the floor
REPEATS_PARSE = 9  # benchmark 2: timeit repeats per contender and page
MIN_LOOP_SECONDS = 0.2  # benchmark 2: shortest timeit loop
SYNTHETIC_ROWS = 5_000  # benchmark 2: rows of the generated page
# Benchmark 2: rows parsed under cProfile per page, in as many calls as that takes.
PROFILE_ROWS = 1_000
REPEATS_NOT_MODIFIED = 15  # benchmark 3
HISTORY_SIZES = (1, 1_000, 10_000)  # benchmark 4: stored versions
REPEATS_HISTORY = 11  # benchmark 4
REPEATS_HISTORY_CALLS = 7  # benchmark 4: timeit repeats of the store's listing calls
# Benchmark 5: the sources are spread round-robin over this many loopback servers,
# because a sync sends one request at a time to each host and port.
SOURCE_SERVERS = 10
# Benchmark 5: every response waits this long before it is sent. The delay models a
# network round trip, which loopback lacks. It is a modelling choice, not a measurement.
RESPONSE_DELAY_SECONDS = 0.050
# Benchmark 5: (sources, response delay in seconds), measured in this order.
SOURCE_CASES = (
    (1, RESPONSE_DELAY_SECONDS),
    (10, RESPONSE_DELAY_SECONDS),
    (10, 0.0),
    (100, RESPONSE_DELAY_SECONDS),
)
REPEATS_SOURCES = {1: 9, 10: 7, 100: 5}  # benchmark 5, per source count
# Benchmark 5: repetitions of the one-process-per-source series, which runs in the
# first repetitions only. At 100 sources one series starts 100 processes, so it is
# by far the slowest mode.
REPEATS_SOURCES_APART = {1: 9, 10: 7, 100: 3}
REPEATS_STARTUP = 15  # benchmark 6
REPEATS_IMPORTTIME = 7  # benchmark 6: runs under python -X importtime
QUICK_REPEATS = 2

BIN = Path(sys.executable).parent
PYTHON = BIN / "python"
SCRAPER = BIN / "scraper"
URLWATCH = BIN / "urlwatch"
FLOOR = ROOT / "bench" / "floor.py"
PHASES = ROOT / "bench" / "phases.py"
PAGE = ROOT / "fixtures" / "matrix-4rows-desc-preview-full-site.html"
SMALL_PAGE = ROOT / "fixtures" / "matrix-4rows-asc.html"
SOURCE = "capi-image-builder"
CONTENT_TYPE = "text/html; charset=utf-8"
REPORT = ROOT / "BENCHMARKS.md"


class Context:
    """Shared state of the benchmarks: the server, the temporary folder and the results."""

    def __init__(self, server: PageServer, temporary: Path) -> None:
        self.server = server
        self.temporary = temporary
        self.page = PAGE.read_bytes()
        self.plain_url = server.add("/matrix/plain", self.page)
        self.etag_url = server.add("/matrix/etag", self.page, etag='"matrix-v1"')
        self.port = server.server.server_address[1]
        self.commands: dict[str, list[tuple[str, str]]] = {}
        self.processes: dict[str, Samples] = {}
        self.results: dict[str, object] = {}
        self.aliases: dict[str, str] = {}
        self._folders = 0

    def fresh(self, prefix: str, alias: str | None = None) -> Path:
        """Create a new folder; ``alias`` is its name in the report's commands."""
        self._folders += 1
        folder = self.temporary / f"{prefix}-{self._folders}"
        folder.mkdir()
        if alias is not None:
            self.aliases[str(folder)] = alias
        return folder

    def note_command(
        self, section: str, label: str, argv: list, cwd: Path | None = None
    ) -> None:
        """Record a command once, with local paths shortened, for the report."""
        text = " ".join(_quoted(str(part)) for part in argv)
        if cwd is not None:
            text = f"cd {cwd} && {text}"
        for folder, alias in self.aliases.items():
            text = text.replace(folder, alias)
        text = text.replace(str(BIN), "bench/.venv/bin").replace(str(ROOT) + "/", "")
        text = text.replace(str(self.temporary), "$TMP").replace(
            f":{self.port}/", ":$PORT/"
        )
        entries = self.commands.setdefault(section, [])
        if label not in [known for known, _ in entries]:
            entries.append((label, text))

    def keep(self, samples: Samples) -> Samples:
        """Keep a whole-process contender for the peak memory table."""
        self.processes[samples.name] = samples
        return samples


def _quoted(part: str) -> str:
    return f"'{part}'" if any(character in part for character in " ;&|") else part


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def expect(run: ProcessRun, fragment: str, what: str) -> None:
    """Raise RuntimeError unless ``fragment`` is in the run's standard output."""
    if fragment not in run.stdout:
        raise RuntimeError(
            f"{what}: expected {fragment!r} in its output, got:\n{run.stdout}{run.stderr}"
        )


# Benchmark 1: whole sync processes


def scraper_runs(ctx: Context, folder: Path, url: str) -> tuple[ProcessRun, ProcessRun]:
    write_scraper_config(folder, [(SOURCE, url)])
    ctx.note_command(
        "1", "scraper, first and unchanged run", [SCRAPER, "sync"], Path("$TMP/NEW")
    )
    first = run_process([SCRAPER, "sync"], folder)
    expect(first, f"{SOURCE}: changed, version 1", "scraper first run")
    unchanged = run_process([SCRAPER, "sync"], folder)
    expect(unchanged, f"{SOURCE}: unchanged, version 1", "scraper unchanged run")
    return first, unchanged


def urlwatch_argv(folder: Path, config: Path) -> list:
    """Return the urlwatch command for the jobs, cache and hooks files in ``folder``."""
    return [
        URLWATCH,
        "--urls",
        folder / "urls.yaml",
        "--config",
        config,
        "--cache",
        folder / "cache.db",
        "--hooks",
        folder / "hooks.py",
    ]


def urlwatch_runs(
    ctx: Context, folder: Path, url: str, config: Path
) -> tuple[ProcessRun, ProcessRun]:
    write_urlwatch_job(folder, url)
    argv = urlwatch_argv(folder, config)
    shown = urlwatch_argv(Path("$TMP/NEW"), Path("$TMP/urlwatch.yaml"))
    ctx.note_command("1", "urlwatch, first and unchanged run", shown)
    statuses = ctx.server.routes["/matrix/plain"].statuses
    served = len(statuses)
    first = run_process(argv, folder)
    expect(first, "NEW: matrix", "urlwatch first run")
    unchanged = run_process(argv, folder)
    for word in ("ERROR", "CHANGED", "NEW"):
        if word in unchanged.stdout:
            raise RuntimeError(
                f"urlwatch unchanged run reported {word}:\n{unchanged.stdout}"
            )
    if len(statuses) != served + 2:
        raise RuntimeError("urlwatch did not download the page once per run")
    return first, unchanged


def floor_run(ctx: Context, folder: Path, url: str) -> ProcessRun:
    output = folder / "rows.yaml"
    ctx.note_command("1", "floor", [PYTHON, FLOOR, url, "$TMP/NEW/rows.yaml"])
    run = run_process([PYTHON, FLOOR, url, output], folder)
    rows = yaml.safe_load(output.read_text(encoding="utf-8"))
    if len(rows) != 4:
        raise RuntimeError(f"the floor script wrote {len(rows)} rows, expected 4")
    return run


def bench_whole_runs(ctx: Context, repeats: int) -> None:
    log("1: whole sync processes (scraper, urlwatch, floor)")
    url = ctx.plain_url
    urlwatch_config = ctx.temporary / "urlwatch.yaml"
    setup = ctx.fresh("urlwatch-setup")
    write_urlwatch_job(setup, url)
    # urlwatch writes its default configuration on first use; that is not timed.
    run_process([*urlwatch_argv(setup, urlwatch_config), "--list"], setup)

    names = (
        "scraper first",
        "scraper unchanged",
        "urlwatch first",
        "urlwatch unchanged",
        "floor",
    )
    samples = {name: ctx.keep(Samples(name)) for name in names}

    # Warm-up: one untimed round, so every program's bytecode cache exists.
    scraper_runs(ctx, ctx.fresh("warm"), url)
    urlwatch_runs(ctx, ctx.fresh("warm"), url, urlwatch_config)
    floor_run(ctx, ctx.fresh("warm"), url)
    for turn in range(repeats):
        for program in rotated(["scraper", "urlwatch", "floor"], turn):
            folder = ctx.fresh("whole")
            if program == "scraper":
                first, unchanged = scraper_runs(ctx, folder, url)
                samples["scraper first"].add(first)
                samples["scraper unchanged"].add(unchanged)
            elif program == "urlwatch":
                first, unchanged = urlwatch_runs(ctx, folder, url, urlwatch_config)
                samples["urlwatch first"].add(first)
                samples["urlwatch unchanged"].add(unchanged)
            else:
                samples["floor"].add(floor_run(ctx, folder, url))
            shutil.rmtree(folder)

    ctx.results["whole"] = samples
    ctx.results["phases"] = measure_phases(
        ctx, url, REPEATS_PHASES if repeats > QUICK_REPEATS else repeats
    )


def measure_phases(
    ctx: Context, url: str, repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Time imports and work inside an unchanged scraper run and a floor run."""
    folder = ctx.fresh("phases", alias="$TMP/PHASES")
    write_scraper_config(folder, [(SOURCE, url)])
    run_process([SCRAPER, "sync"], folder)
    result = folder / "phases.json"
    commands = {
        "scraper sync (first)": [PYTHON, PHASES, "scraper-first", result],
        "scraper sync (unchanged)": [PYTHON, PHASES, "scraper", result],
        "floor": [PYTHON, PHASES, "floor", result, url, folder / "rows.yaml"],
    }
    for label, argv in commands.items():
        ctx.note_command("1", f"phase timing, {label}", argv, folder)

    phases: dict[str, dict[str, list[float]]] = {label: {} for label in commands}
    late_imports: list[str] = []
    fsync_calls: dict[str, int] = {}
    dataclass_counts: dict[str, int] = {}
    for turn in range(repeats):
        # The first run must come before the unchanged one, which syncs the store
        # that the first run wrote; only the floor's place rotates.
        order = ["scraper sync (first)", "scraper sync (unchanged)"]
        order.insert(turn % 3, "floor")
        for label in order:
            run = run_process(commands[label], folder)
            measured = json.loads(result.read_text(encoding="utf-8"))
            if label == "scraper sync (unchanged)":
                late_imports = measured.pop("late imports", late_imports)
            measured.pop("late imports", None)
            if "fsync calls" in measured:
                fsync_calls[label] = measured.pop("fsync calls")
            if "dataclasses created" in measured:
                dataclass_counts[label] = measured.pop("dataclasses created")
            for phase, seconds in measured.items():
                phases[label].setdefault(phase, []).append(seconds)
            phases[label].setdefault("whole process", []).append(run.seconds)

    profile_path = folder / "sync.prof"
    argv = [PYTHON, PHASES, "profile", profile_path]
    ctx.note_command(
        "1", "cProfile of the sync work, scraper sync (unchanged)", argv, folder
    )
    run_process(argv, folder)
    ctx.results["late imports"] = late_imports
    ctx.results["fsync calls"] = fsync_calls
    ctx.results["dataclasses created"] = dataclass_counts
    ctx.results["sync profile"] = top_functions(pstats.Stats(str(profile_path)), 15)
    return phases


def profile_calls(function, calls: int) -> list[tuple[str, int, float, float]]:
    """Profile ``calls`` calls of ``function`` and return its top_functions per call."""
    profiler = cProfile.Profile()
    for _ in range(calls):
        profiler.runcall(function)
    return [
        (name, round(count / calls), own / calls, cumulative / calls)
        for name, count, own, cumulative in top_functions(pstats.Stats(profiler), 12)
    ]


def top_functions(
    profile: pstats.Stats, limit: int
) -> list[tuple[str, int, float, float]]:
    """Return (function, calls, own s, cumulative s) of scraper's functions and of imports.

    An import is the ``<module>`` code of a third-party package's ``__init__.py``,
    named ``import PACKAGE``. The result is sorted by cumulative time, longest first.
    """
    found = []
    for (filename, line, function), entry in profile.stats.items():
        calls, own, cumulative = entry[1], entry[2], entry[3]
        if "/scraper/" in filename:
            name = f"scraper/{filename.rsplit('/scraper/', 1)[1]}:{line} {function}"
        elif function == "<module>" and "/site-packages/" in filename:
            inside = filename.split("/site-packages/", 1)[1].split("/")
            if len(inside) != 2 or inside[1] != "__init__.py":
                continue
            name = f"import {inside[0]}"
        else:
            continue
        found.append((name, calls, own, cumulative))
    return sorted(found, key=lambda item: -item[3])[:limit]


# Benchmark 2: in-process parse


def bench_parse(ctx: Context, repeats: int) -> None:
    log("2: in-process parse (scraper, bare lxml, pandas.read_html)")
    import pandas

    from scraper.charset import decode_html
    from scraper.config import load_config
    from scraper.parse import parse_page

    source = load_config(PROJECT_CONFIG).sources[0]

    def scraper_parse(content: bytes) -> list:
        text, _, _ = decode_html(content, CONTENT_TYPE)
        return parse_page(text, source, "benchmark page")

    def lxml_walk(content: bytes) -> list:
        document = lxml.html.fromstring(content)
        found = document.find(".//table")
        return [[cell.text_content() for cell in row] for row in found.iter("tr")]

    def pandas_parse(content: bytes) -> list:
        return pandas.read_html(io.BytesIO(content), flavor="lxml")

    pages = {
        "captured page": (ctx.page, 4),
        f"synthetic page, {SYNTHETIC_ROWS:,} rows": (
            synthetic_page(ctx.page, SYNTHETIC_ROWS),
            SYNTHETIC_ROWS,
        ),
    }
    results = {}
    for label, (content, row_count) in pages.items():
        counts = {
            "scraper": len(scraper_parse(content)),
            "lxml": len(lxml_walk(content)) - 1,
            "pandas": len(pandas_parse(content)[0]),
        }
        if set(counts.values()) != {row_count}:
            raise RuntimeError(
                f"{label}: expected {row_count} rows from each parser, got {counts}"
            )
        contenders = {
            "scraper": lambda content=content: scraper_parse(content),
            "lxml": lambda content=content: lxml_walk(content),
            "pandas": lambda content=content: pandas_parse(content),
        }
        results[label] = (
            len(content),
            row_count,
            time_calls(contenders, repeats, MIN_LOOP_SECONDS),
        )

    # Profile every page; a small page is parsed many times, so its numbers are steady.
    profiles = {}
    for label, (content, row_count) in pages.items():
        calls = max(1, PROFILE_ROWS // row_count)
        profiles[label] = (
            calls,
            profile_calls(lambda content=content: scraper_parse(content), calls),
        )
    ctx.results["parse profile"] = profiles
    ctx.results["parse"] = results
    ctx.results["pandas version"] = pandas.__version__
    ctx.results["minimum loop seconds"] = MIN_LOOP_SECONDS


# Benchmark 3: 304 not modified


def store_times(folder: Path) -> dict[str, int]:
    """Return the modification time in nanoseconds of every file under ``folder``."""
    return {
        str(path.relative_to(folder)): path.stat().st_mtime_ns
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def bench_not_modified(ctx: Context, repeats: int) -> None:
    log("3: unchanged run answered 304 vs downloaded and parsed")
    folders = {
        "304": ctx.fresh("etag", alias="$TMP/ETAG"),
        "200": ctx.fresh("plain", alias="$TMP/PLAIN"),
    }
    urls = {"304": ctx.etag_url, "200": ctx.plain_url}
    routes = {
        "304": ctx.server.routes["/matrix/etag"],
        "200": ctx.server.routes["/matrix/plain"],
    }
    expected = {
        "304": "unchanged (HTTP 304 not modified), version 1",
        "200": "unchanged, version 1",
    }
    for mode, folder in folders.items():
        write_scraper_config(folder, [(SOURCE, urls[mode])])
        expect(
            run_process([SCRAPER, "sync"], folder),
            "changed, version 1",
            f"{mode} first run",
        )
        expect(
            run_process([SCRAPER, "sync"], folder),
            expected[mode],
            f"{mode} warm-up run",
        )

    ctx.note_command(
        "3", "unchanged run, server answers 304", [SCRAPER, "sync"], folders["304"]
    )
    ctx.note_command(
        "3",
        "unchanged run, server without validators",
        [SCRAPER, "sync"],
        folders["200"],
    )

    samples = {
        "304": ctx.keep(Samples("sync unchanged, 304 not modified")),
        "200": ctx.keep(Samples("sync unchanged, 200 downloaded and parsed")),
    }
    for turn in range(repeats):
        for mode in rotated(["304", "200"], turn):
            run = samples[mode].add(run_process([SCRAPER, "sync"], folders[mode]))
            expect(run, expected[mode], f"{mode} run")
            if routes[mode].statuses[-1] != int(mode):
                raise RuntimeError(
                    f"the server responded {routes[mode].statuses[-1]}, expected {mode}"
                )

    evidence = {}
    for mode, folder in folders.items():
        ctx.note_command(
            "3", f"log of one {mode} run", [SCRAPER, "-vv", "sync"], folder
        )
        before = store_times(folder)
        run = run_process([SCRAPER, "-vv", "sync"], folder)
        after = store_times(folder)
        evidence[mode] = {
            "status": routes[mode].statuses[-1],
            "changed files": [
                name for name in after if before.get(name) != after[name]
            ],
            "unchanged files": [
                name for name in after if before.get(name) == after[name]
            ],
            "log": run.stderr,
            "stdout": run.stdout.strip(),
        }

    ctx.results["not modified"] = (
        samples,
        evidence,
        time_runs_in_process(folders, repeats),
    )


def time_runs_in_process(folders: dict[str, Path], repeats: int) -> dict[str, Samples]:
    """Time scraper.run.run_sync of each store inside this process, imports done.

    run_sync is what `scraper sync` calls after parsing its options: fetch, parse,
    compare, state file, run record and metrics. Raises RuntimeError unless each
    run ends as the process runs did.
    """
    from scraper.config import load_config
    from scraper.run import run_sync

    expected = {"304": "not-modified", "200": "unchanged"}
    configs = {
        mode: load_config(folder / "config.yaml") for mode, folder in folders.items()
    }

    def sync(mode: str) -> None:
        config = configs[mode]
        (result,) = run_sync(config, list(config.sources))
        if result.status != expected[mode]:
            raise RuntimeError(
                f"in-process {mode} run ended {result.status}: {result.error}"
            )

    contenders = {mode: lambda mode=mode: sync(mode) for mode in folders}
    return time_calls(contenders, repeats, MIN_LOOP_SECONDS)


# Benchmark 4: history growth


def bench_history(ctx: Context, repeats: int) -> None:
    log(
        f"4: history growth, building stores of {', '.join(map(str, HISTORY_SIZES))} versions"
    )
    from scraper.charset import decode_html
    from scraper.config import load_config
    from scraper.parse import parse_page

    source = load_config(PROJECT_CONFIG).sources[0]
    rows = parse_page(decode_html(ctx.page, CONTENT_TYPE)[0], source, "benchmark page")
    folders = {}
    build_seconds = {}
    for size in HISTORY_SIZES:
        folder = ctx.fresh(f"history-{size}")
        started = time.perf_counter()
        build_history(folder, ctx.plain_url, ctx.page, rows, size)
        build_seconds[size] = time.perf_counter() - started
        run = run_process([SCRAPER, "sync"], folder)
        expect(
            run,
            f"{SOURCE}: unchanged, version {size}",
            f"warm-up sync of {size} versions",
        )
        folders[size] = folder

    ctx.note_command("4", "sync, unchanged", [SCRAPER, "sync"], Path("$TMP/HISTORY-N"))
    ctx.note_command("4", "show", [SCRAPER, "show"], Path("$TMP/HISTORY-N"))
    sync = {
        size: ctx.keep(Samples(f"sync unchanged, {plural(size, 'version')}"))
        for size in HISTORY_SIZES
    }
    show = {
        size: ctx.keep(Samples(f"show, {plural(size, 'version')}"))
        for size in HISTORY_SIZES
    }
    for turn in range(repeats):
        for size in rotated(list(HISTORY_SIZES), turn):
            run = sync[size].add(run_process([SCRAPER, "sync"], folders[size]))
            expect(run, f"unchanged, version {size}", f"sync of {size} versions")
            run = show[size].add(run_process([SCRAPER, "show"], folders[size]))
            expect(run, f"version: {size}\n", f"show of {size} versions")

    call_repeats = min(repeats, REPEATS_HISTORY_CALLS)
    ctx.results["history"] = (
        sync,
        show,
        build_seconds,
        store_calls(folders, call_repeats),
    )


# Benchmark 4's counted calls: the Store methods whose cost grows with the history.
# `remove_stale_temporaries` counts only when its folders include versions/.
LISTING_CALLS = ("version_numbers", "remove_stale_temporaries")
# Benchmark 4: the key that counts every os.listdir and os.scandir of the versions
# folder, from any caller.
FOLDER_LISTINGS = "folder listings"


def store_calls(folders: dict[int, Path], repeats: int) -> dict:
    """Count the calls that list the versions folder, and time one call of each.

    The counts come from one in-process `scraper sync` and one `scraper show` on the
    largest store, run through scraper.cli.main with Store's listing methods and
    os.listdir and os.scandir wrapped. The operating-system count catches a listing
    made outside the two methods too.
    """
    from scraper import cli
    from scraper.config import load_config
    from scraper.store import Store

    config_path = folders[max(HISTORY_SIZES)] / "config.yaml"
    config = load_config(config_path)
    versions = Store(config.snapshots_dir, SOURCE).versions_path.resolve()
    counts = {
        command: dict.fromkeys((*LISTING_CALLS, FOLDER_LISTINGS), 0)
        for command in ("sync", "show")
    }
    current = counts["sync"]

    def lists_versions(folder) -> bool:
        if isinstance(folder, int):  # A file descriptor, which no Store call passes.
            return False
        return Path(os.fspath(folder or ".")).resolve() == versions

    def version_numbers(store):
        current["version_numbers"] += 1
        return originals["version_numbers"](store)

    def remove_stale_temporaries(store, folders=None):
        if folders and any(lists_versions(folder) for folder in folders):
            current["remove_stale_temporaries"] += 1
        return originals["remove_stale_temporaries"](store, folders)

    def counting_listing(function):
        def wrapper(folder=None):
            if lists_versions(folder):
                current[FOLDER_LISTINGS] += 1
            return function(folder) if folder is not None else function()

        return wrapper

    originals = {name: getattr(Store, name) for name in LISTING_CALLS}
    os_originals = {"listdir": os.listdir, "scandir": os.scandir}
    Store.version_numbers = version_numbers
    Store.remove_stale_temporaries = remove_stale_temporaries
    os.listdir = counting_listing(os_originals["listdir"])
    os.scandir = counting_listing(os_originals["scandir"])
    try:
        for command, tally in counts.items():
            current = tally
            with contextlib.redirect_stdout(io.StringIO()) as output:
                code = cli.main([command, "--config", str(config_path)])
            if code != 0:
                raise RuntimeError(
                    f"in-process {command} exited with {code}: {output.getvalue()}"
                )
    finally:
        for name, original in originals.items():
            setattr(Store, name, original)
        os.listdir = os_originals["listdir"]
        os.scandir = os_originals["scandir"]

    timings = {}
    for size, folder in folders.items():
        store = Store(load_config(folder / "config.yaml").snapshots_dir, SOURCE)
        calls = {
            "version_numbers": store.version_numbers,
            "remove_stale_temporaries": lambda store=store: (
                store.remove_stale_temporaries((store.versions_path,))
            ),
        }
        timings[size] = time_calls(calls, repeats, MIN_LOOP_SECONDS / 4)
    return {
        "counts": {
            command: {name: tally[name] for name in LISTING_CALLS}
            for command, tally in counts.items()
        },
        "folder listings": {
            command: tally[FOLDER_LISTINGS] for command, tally in counts.items()
        },
        "timings": timings,
    }


# Benchmark 5: many sources

# The ways of syncing N sources that benchmark 5 compares.
SOURCE_MODES = ("pooled", "one at a time", "one process each")


@dataclass
class SourceCase:
    """Benchmark 5's measurements for one source count and response delay.

    Each dictionary is keyed by SOURCE_MODES. ``server_peak`` is the maximum number
    of requests in flight on any one server during that mode's runs and
    ``overall_peak`` the maximum across all servers together. ``connections`` counts
    the TCP connections the servers accepted during the mode's last run (for the
    one-process-per-source mode, its last whole series).
    """

    count: int
    delay: float
    samples: dict[str, Samples]
    server_peak: dict[str, int] = field(default_factory=dict)
    overall_peak: dict[str, int] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)


def source_names(count: int) -> list[str]:
    return [f"source-{index:03d}" for index in range(1, count + 1)]


def prepare_sources(ctx: Context, servers: list[PageServer], count: int) -> Path:
    """Write a configuration of ``count`` sources spread over ``servers``, and sync it once.

    Source i is served by server i modulo the number of servers, so the first sync
    creates every store and each timed run finds every source unchanged.
    """
    folder = ctx.fresh(f"sources-{count}")
    sources = [
        (name, servers[index % len(servers)].add(f"/matrix/{name}", ctx.page))
        for index, name in enumerate(source_names(count))
    ]
    write_scraper_config(folder, sources)
    run = run_process([SCRAPER, "sync"], folder)
    if run.stdout.count("changed, version 1") != count:
        raise RuntimeError(
            f"first sync of {count} sources did not change each one:\n{run.stdout}"
        )
    return folder


def served(servers: list[PageServer]) -> int:
    """Return how many responses the servers have sent so far."""
    return sum(
        len(route.statuses) for server in servers for route in server.routes.values()
    )


def run_sources(
    mode: str, folder: Path, count: int, concurrency: int
) -> tuple[float, int]:
    """Sync the ``count`` sources in ``folder`` one way; return wall seconds and peak RSS KiB.

    Raises RuntimeError unless every source is reported unchanged.
    """
    if mode == "one process each":
        started = time.perf_counter()
        peak = 0
        for name in source_names(count):
            run = run_process([SCRAPER, "sync", "--source", name], folder)
            expect(run, f"{name}: unchanged, version 1", f"sync of {name}")
            peak = max(peak, run.peak_rss_kib)
        return time.perf_counter() - started, peak
    argv = [SCRAPER, "sync"]
    if mode == "one at a time":
        argv += ["--concurrency", "1"]
    elif concurrency <= 1:
        raise RuntimeError(
            f"the pooled sync would run with concurrency {concurrency}; "
            "set 'concurrency' above 1 in the project's config.yaml, or remove it"
        )
    run = run_process(argv, folder)
    if run.stdout.count("unchanged, version 1") != count:
        raise RuntimeError(
            f"{mode} sync of {count} sources did not find each one unchanged:\n"
            f"{run.stdout}"
        )
    return run.seconds, run.peak_rss_kib


def measure_sources(
    ctx: Context,
    servers: list[PageServer],
    overall: InFlight,
    folder: Path,
    case: tuple[int, float],
    repeats: tuple[int, int],
) -> SourceCase:
    """Time the three ways of syncing one case's sources, interleaved.

    ``repeats`` is (repetitions, repetitions that include the one-process-per-source
    series). Raises RuntimeError when a run did not fetch every source once.
    """
    from scraper.config import load_config

    count, delay = case
    repeats_all, repeats_apart = repeats
    concurrency = load_config(folder / "config.yaml").concurrency
    label = f"{plural(count, 'source')}, {delay * 1000:g} ms delay"
    names = {
        "pooled": f"sync of {label}, one process, concurrency {concurrency}",
        "one at a time": f"sync of {label}, one process, concurrency 1",
        "one process each": f"sync of {label}, one process per source",
    }
    result = SourceCase(
        count, delay, {mode: ctx.keep(Samples(names[mode])) for mode in SOURCE_MODES}
    )
    for server in servers:
        server.delay = delay
    for turn in range(repeats_all):
        modes = list(SOURCE_MODES if turn < repeats_apart else SOURCE_MODES[:2])
        for mode in rotated(modes, turn):
            for server in servers:
                server.in_flight.reset()
            overall.reset()
            opened = sum(server.connections for server in servers)
            responses = served(servers)
            seconds, peak_rss = run_sources(mode, folder, count, concurrency)
            if served(servers) - responses != count:
                raise RuntimeError(
                    f"{mode} sync of {count} sources made "
                    f"{served(servers) - responses} requests, expected {count}"
                )
            samples = result.samples[mode]
            samples.seconds.append(seconds)
            samples.rss_kib.append(peak_rss)
            server_peak = max(server.in_flight.maximum for server in servers)
            result.server_peak[mode] = max(result.server_peak.get(mode, 0), server_peak)
            result.overall_peak[mode] = max(
                result.overall_peak.get(mode, 0), overall.maximum
            )
            result.connections[mode] = (
                sum(server.connections for server in servers) - opened
            )
    return result


def bench_sources(
    ctx: Context, repeats_for: dict[int, int], apart_repeats_for: dict[int, int]
) -> None:
    counts = sorted({count for count, _ in SOURCE_CASES})
    log(
        f"5: many sources ({', '.join(map(str, counts))}) over {SOURCE_SERVERS} servers"
    )
    from scraper.config import load_config

    overall = InFlight()
    cases = []
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(PageServer(shared=(overall,)))
            for _ in range(SOURCE_SERVERS)
        ]
        folders: dict[int, Path] = {}
        for count, delay in SOURCE_CASES:
            if count not in folders:
                folders[count] = prepare_sources(ctx, servers, count)
            log(f"5: {plural(count, 'source')}, {delay * 1000:g} ms response delay")
            cases.append(
                measure_sources(
                    ctx,
                    servers,
                    overall,
                    folders[count],
                    (count, delay),
                    (repeats_for[count], apart_repeats_for[count]),
                )
            )
        concurrency = load_config(folders[counts[0]] / "config.yaml").concurrency

    folder_alias = Path("$TMP/SOURCES-N")
    ctx.note_command(
        "5",
        f"one process, default concurrency ({concurrency})",
        [SCRAPER, "sync"],
        folder_alias,
    )
    ctx.note_command(
        "5",
        "one process, one source at a time",
        [SCRAPER, "sync", "--concurrency", "1"],
        folder_alias,
    )
    ctx.note_command(
        "5",
        "one process per source, one after another (once per source)",
        [SCRAPER, "sync", "--source", "source-001"],
        folder_alias,
    )
    ctx.results["sources"] = cases
    ctx.results["source servers"] = SOURCE_SERVERS
    ctx.results["source concurrency"] = concurrency


# Benchmark 6: start-up and imports


def bench_startup(ctx: Context, repeats: int, import_repeats: int) -> None:
    log("6: start-up and imports")
    local = ctx.fresh("local-file", alias="$TMP/LOCAL")
    page = local / "page.html"
    page.write_bytes(SMALL_PAGE.read_bytes())
    write_scraper_config(local, [(SOURCE, str(page))])
    expect(
        run_process([SCRAPER, "sync"], local),
        "changed, version 1",
        "local file first run",
    )
    remote = ctx.fresh("startup-http", alias="$TMP/HTTP")
    write_scraper_config(remote, [(SOURCE, ctx.plain_url)])
    expect(run_process([SCRAPER, "sync"], remote), "changed, version 1", "first run")

    contenders = {
        "python -c pass": ([PYTHON, "-c", "pass"], local),
        "python importing the floor's modules": (
            [PYTHON, "-c", "import requests, lxml.html, yaml"],
            local,
        ),
        "scraper --help": ([SCRAPER, "--help"], local),
        "scraper sync, local file, unchanged": ([SCRAPER, "sync"], local),
    }
    for label, (argv, cwd) in contenders.items():
        ctx.note_command("6", label, argv, cwd)

    samples = {label: ctx.keep(Samples(label)) for label in contenders}
    for turn in range(repeats):
        for label in rotated(list(contenders), turn):
            argv, folder = contenders[label]
            samples[label].add(run_process(argv, folder))

    profiled = {
        "python -c pass": ([PYTHON, "-X", "importtime", "-c", "pass"], local),
        "scraper --help": ([PYTHON, "-X", "importtime", SCRAPER, "--help"], local),
        "scraper sync (HTTP, unchanged)": (
            [PYTHON, "-X", "importtime", SCRAPER, "sync"],
            remote,
        ),
        "floor": (
            [PYTHON, "-X", "importtime", FLOOR, ctx.plain_url, remote / "rows.yaml"],
            remote,
        ),
    }
    for label, (argv, cwd) in profiled.items():
        ctx.note_command("6", f"import profile, {label}", argv, cwd)
    profiles = profile_imports(
        {
            label: lambda argv=argv, cwd=cwd: run_process(argv, cwd).stderr
            for label, (argv, cwd) in profiled.items()
        },
        import_repeats,
    )

    ctx.results["startup"] = (samples, profiles)
    ctx.results["small page bytes"] = len(SMALL_PAGE.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Run scraper's benchmarks and write the report page."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"repeat each measurement at most {QUICK_REPEATS} times, for a trial run",
    )
    parser.add_argument(
        "--out",
        "--output",
        dest="out",
        type=Path,
        default=REPORT,
        metavar="PATH",
        help="write the report page to PATH; a relative PATH is taken from the "
        "current folder, which bench/run sets to the repository root "
        "(default: BENCHMARKS.md at the repository root)",
    )
    args = parser.parse_args()
    if not args.out.parent.is_dir():
        parser.error(
            f"--out {args.out}: the folder {args.out.parent} does not exist; "
            "create it or choose another path"
        )
    quick = args.quick

    def repeats(count: int) -> int:
        return min(count, QUICK_REPEATS) if quick else count

    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    temporary = Path(tempfile.mkdtemp(prefix="scraper-bench-"))
    try:
        with PageServer() as server:
            ctx = Context(server, temporary)
            bench_whole_runs(ctx, repeats(REPEATS_WHOLE_RUN))
            bench_parse(ctx, repeats(REPEATS_PARSE))
            bench_not_modified(ctx, repeats(REPEATS_NOT_MODIFIED))
            bench_history(ctx, repeats(REPEATS_HISTORY))
            bench_sources(
                ctx,
                {count: repeats(value) for count, value in REPEATS_SOURCES.items()},
                {
                    count: repeats(value)
                    for count, value in REPEATS_SOURCES_APART.items()
                },
            )
            bench_startup(ctx, repeats(REPEATS_STARTUP), repeats(REPEATS_IMPORTTIME))
            report = render(ctx, started, time.perf_counter() - clock, quick)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    args.out.write_text(report, encoding="utf-8")
    log(f"wrote {args.out} in {(time.perf_counter() - clock) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
