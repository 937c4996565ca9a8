"""Run every benchmark of scraper and write BENCHMARKS.md at the repository root.

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
import pstats
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import lxml.html
import yaml
from harness import (
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
SOURCE_COUNTS = (1, 10, 100)  # benchmark 5
REPEATS_SOURCES = {1: 9, 10: 5, 100: 3}  # benchmark 5, per source count
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
        "scraper sync (unchanged)": [PYTHON, PHASES, "scraper", result],
        "floor": [PYTHON, PHASES, "floor", result, url, folder / "rows.yaml"],
    }
    for label, argv in commands.items():
        ctx.note_command("1", f"phase timing, {label}", argv, folder)

    phases: dict[str, dict[str, list[float]]] = {label: {} for label in commands}
    late_imports: list[str] = []
    for turn in range(repeats):
        for label in rotated(list(commands), turn):
            run = run_process(commands[label], folder)
            measured = json.loads(result.read_text(encoding="utf-8"))
            late_imports = measured.pop("late imports", late_imports)
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


def store_calls(folders: dict[int, Path], repeats: int) -> dict:
    """Count the store calls that list the versions folder, and time one call of each.

    The counts come from one in-process `scraper sync` and one `scraper show` on the
    largest store, run through scraper.cli.main with Store's methods wrapped.
    """
    from scraper import cli
    from scraper.config import load_config
    from scraper.store import Store

    names = ("version_numbers", "remove_stale_temporaries")
    originals = {name: getattr(Store, name) for name in names}
    counts = {command: dict.fromkeys(names, 0) for command in ("sync", "show")}
    current = counts["sync"]

    def counting(name):
        def wrapper(self, *args, **kwargs):
            current[name] += 1
            return originals[name](self, *args, **kwargs)

        return wrapper

    config_path = folders[max(HISTORY_SIZES)] / "config.yaml"
    for name in names:
        setattr(Store, name, counting(name))
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

    timings = {}
    for size, folder in folders.items():
        store = Store(load_config(folder / "config.yaml").snapshots_dir, SOURCE)
        calls = {name: getattr(store, name) for name in names}
        timings[size] = time_calls(calls, repeats, MIN_LOOP_SECONDS / 4)
    return {"counts": counts, "timings": timings}


# Benchmark 5: many sources


def bench_sources(ctx: Context, repeats_for: dict[int, int]) -> None:
    log(f"5: many sources ({', '.join(map(str, SOURCE_COUNTS))})")
    results = {}
    connections: dict[int, int] = {}
    for count in SOURCE_COUNTS:
        folder = ctx.fresh(f"sources-{count}")
        sources = [
            (
                f"source-{index:03d}",
                ctx.server.add(f"/matrix/source-{index:03d}", ctx.page),
            )
            for index in range(1, count + 1)
        ]
        write_scraper_config(folder, sources)
        run = run_process([SCRAPER, "sync"], folder)
        if run.stdout.count("changed, version 1") != count:
            raise RuntimeError(
                f"first sync of {count} sources did not change each one:\n{run.stdout}"
            )
        together = ctx.keep(Samples(f"sync of {plural(count, 'source')}, one process"))
        apart = ctx.keep(
            Samples(f"sync of {plural(count, 'source')}, one process each")
        )
        for turn in range(repeats_for[count]):
            for mode in rotated(["together", "apart"], turn):
                if mode == "together":
                    opened = ctx.server.connections
                    run = together.add(run_process([SCRAPER, "sync"], folder))
                    connections[count] = ctx.server.connections - opened
                    if run.stdout.count("unchanged, version 1") != count:
                        raise RuntimeError(
                            f"sync of {count} sources did not find each one unchanged:\n"
                            f"{run.stdout}"
                        )
                    continue
                started = time.perf_counter()
                peak = 0
                for name, _ in sources:
                    run = run_process([SCRAPER, "sync", "--source", name], folder)
                    expect(run, f"{name}: unchanged, version 1", f"sync of {name}")
                    peak = max(peak, run.peak_rss_kib)
                apart.seconds.append(time.perf_counter() - started)
                apart.rss_kib.append(peak)
        results[count] = (together, apart)
    ctx.note_command(
        "5", "all sources in one process", [SCRAPER, "sync"], Path("$TMP/SOURCES-N")
    )
    ctx.note_command(
        "5",
        "one process per source, one after another",
        [SCRAPER, "sync", "--source", "source-001"],
        Path("$TMP/SOURCES-N"),
    )
    ctx.results["sources"] = results
    ctx.results["source connections"] = connections


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
        description="Run scraper's benchmarks and write BENCHMARKS.md."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"repeat each measurement at most {QUICK_REPEATS} times, for a trial run",
    )
    parser.add_argument(
        "--output", type=Path, default=REPORT, help="report path (default: %(default)s)"
    )
    args = parser.parse_args()
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
                ctx, {count: repeats(value) for count, value in REPEATS_SOURCES.items()}
            )
            bench_startup(ctx, repeats(REPEATS_STARTUP), repeats(REPEATS_IMPORTTIME))
            report = render(ctx, started, time.perf_counter() - clock, quick)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    args.output.write_text(report, encoding="utf-8")
    log(f"wrote {args.output} in {(time.perf_counter() - clock) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
