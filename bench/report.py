"""Write the report page (BENCHMARKS.md by default) from what bench.py measured."""

from __future__ import annotations

import os
import platform
import statistics
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING

import yaml
from harness import paired_ratio_spread, quartiles, ratio, rss_source, table
from lxml import etree

if TYPE_CHECKING:
    from bench import Context

# Goals, as ratios of medians.
GOAL_VS_URLWATCH = 1.0  # scraper sync faster than urlwatch
GOAL_VS_FLOOR = 1.3  # scraper sync within 1.3x of the floor script
GOAL_VS_LXML = 2.0  # scraper's parse within 2x of a bare lxml parse and walk
GOAL_VS_PANDAS = 1.0  # scraper's parse faster than pandas.read_html
FORBIDDEN_IMPORTS = ("apscheduler", "apprise")
# Section 4: how bench.store_calls times each Store method, on a store named `store`.
TIMED_CALLS = {
    "version_numbers": "`store.version_numbers()`",
    "remove_stale_temporaries": "`store.remove_stale_temporaries((store.versions_path,))`",
}
# Section 1's goals: (contender, baseline, highest ratio of their medians).
GOAL_PAIRS = (
    ("scraper first", "urlwatch first", GOAL_VS_URLWATCH),
    ("scraper unchanged", "urlwatch unchanged", GOAL_VS_URLWATCH),
    ("scraper first", "floor", GOAL_VS_FLOOR),
    ("scraper unchanged", "floor", GOAL_VS_FLOOR),
)


def machine_facts() -> list[tuple[str, str]]:
    cpu = "unknown"
    physical = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                cpu = value.strip()
            elif name.strip() == "cpu cores":
                physical = value.strip()
    memory = "unknown"
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    system = platform.platform()
    try:
        release = platform.freedesktop_os_release()["PRETTY_NAME"]
        system = f"{release}, Linux {platform.release()}"
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0))
    return [
        ("CPU", cpu),
        (
            "Cores",
            f"{os.cpu_count()} logical ({physical} cores per socket), "
            f"{usable} usable by this process",
        ),
        ("Memory", memory),
        ("OS", system),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
    ]


def library_versions() -> list[tuple[str, str]]:
    names = [
        "scraper",
        "requests",
        "urllib3",
        "lxml",
        "beautifulsoup4",
        "cssselect",
        "PyYAML",
        "packaging",
        "filelock",
        "APScheduler",
        "apprise",
        "urlwatch",
        "minidb",
        "pandas",
        "numpy",
    ]
    versions = []
    for name in names:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, "not installed"))
    libxml2 = ".".join(map(str, etree.LIBXML_VERSION))
    versions.append(("libxml2 (used by lxml)", libxml2))
    versions.append(("PyYAML with libyaml", str(yaml.__with_libyaml__)))
    return versions


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def format_ratio(value: float, limit: float) -> str:
    """Format a ratio with 2 decimals, or up to 4 while it would print as ``limit``.

    A ratio of 1.004 against a limit of 1 then reads 1.004x, not a missed 1.00x.
    """
    for digits in (2, 3, 4):
        text = f"{value:.{digits}f}"
        if value == limit or float(text) != limit:
            break
    return f"{text}x"


def verdict(value: float, limit: float) -> str:
    if value <= limit:
        return f"met ({format_ratio(value, limit)} ≤ {limit:g}x)"
    over = (value / limit - 1) * 100
    over_text = f"{over:.0f}%" if over >= 0.5 else f"{over:.1f}%"
    return (
        f"**missed**: {format_ratio(value, limit)} against {limit:g}x, {over_text} over"
    )


def _short(verdict_text: str) -> str:
    return "met" if verdict_text.startswith("met") else verdict_text.split(":")[0]


def render_whole(ctx: Context, summary: list) -> str:
    """Return the section's Markdown and add its goals to ``summary``."""
    samples = ctx.results["whole"]
    floor = samples["floor"]
    rows = [
        [name, ms(item.median), item.spread(), f"{item.rss_mib:.1f}"]
        for name, item in samples.items()
    ]
    ratio_rows = []
    for numerator, denominator, limit in GOAL_PAIRS:
        if denominator.startswith("urlwatch"):
            goal = "faster than urlwatch"
        else:
            goal = f"within {limit:g}x of the floor"
        value = ratio(samples[numerator], samples[denominator])
        ratio_rows.append(
            [
                f"{numerator} / {denominator}",
                f"{value:.2f}",
                paired_ratio_spread(samples[numerator], samples[denominator]),
                goal,
                verdict(value, limit),
            ]
        )
        summary.append(
            [
                "1",
                f"{numerator}: {goal}",
                format_ratio(value, limit),
                _short(verdict(value, limit)),
            ]
        )
    text = [
        f"## 1. Whole sync process: scraper, urlwatch {metadata.version('urlwatch')} and a "
        "floor script",
        "",
        "Each program syncs the captured page `fixtures/matrix-4rows-desc-preview-full-site.html` "
        f"({len(ctx.page):,} bytes, 4 table rows) from the local server, which sends no cache validators, "
        "so every run downloads and parses the page. A *first* run starts from an empty "
        "store or cache, an *unchanged* run follows it in the same folder. urlwatch has one "
        "job with a `css: table` filter and its own configuration, cache and hooks paths in "
        "the temporary folder. The floor script `bench/floor.py` only does `requests.get`, an "
        "lxml parse, a walk of the table rows and `yaml.safe_dump` of the rows; it has no "
        "first or unchanged mode, so both scraper runs are compared with the same floor runs. "
        f"{len(floor.seconds)} repetitions, interleaved.",
        "",
        table(["Run", "Median ms", "IQR ms", "Peak RSS MiB"], rows),
        "",
        table(
            ["Ratio of medians", "Ratio", "IQR of paired ratios", "Goal", "Result"],
            ratio_rows,
        ),
        "",
    ]
    text += render_whole_causes(ctx)
    return "\n".join(text)


def render_whole_causes(ctx: Context) -> list[str]:
    samples = ctx.results["whole"]
    phases = ctx.results["phases"]
    startup, profiles = ctx.results["startup"]
    interpreter = startup["python -c pass"].median
    runs = len(next(iter(phases["floor"].values())))
    rows = []
    for label, measured in phases.items():
        for phase, values in measured.items():
            rows.append([label, phase, ms(statistics.median(values))])
    late = ", ".join(ctx.results["late imports"]) or "none"
    lines = [
        "Where the time goes, measured inside each process by `bench/phases.py` "
        f"(median of {runs} runs). The whole-process time also holds the interpreter's "
        f"start-up ({ms(interpreter)} ms for `python -c pass`, section 6) and its exit. "
        f"Modules first imported during the sync work, so counted in it: {late}.",
        "",
        table(["Process", "Phase", "Median ms"], rows),
        "",
    ]

    scraper_profile = profiles["scraper sync (HTTP, unchanged)"]
    floor_profile = profiles["floor"]
    lines += [
        f"Under `python -X importtime` (section 6) scraper's imports total "
        f"{ms(scraper_profile.total)} ms against the floor's {ms(floor_profile.total)} ms. "
        "The packages and scraper modules that scraper imports and the floor does not, by "
        "cumulative import time (a nested one is also part of its importer's time):",
        "",
        table(
            ["Module", "Imported by", "Cumulative import ms"],
            [
                [name, parent, ms(seconds)]
                for name, parent, seconds in scraper_profile.extra_roots(
                    floor_profile, 0.002
                )
            ],
        ),
        "",
        "The sync work of one unchanged run under cProfile (`bench/phases.py profile`, "
        "after the sync modules were imported): scraper's functions and the packages "
        "imported during the work, by cumulative time. Profiling slows each call.",
        "",
        table(
            ["Function", "Calls", "Own ms", "Cumulative ms"],
            [
                [f"`{name}`", f"{calls:,}", ms(own), ms(cumulative)]
                for name, calls, own, cumulative in ctx.results["sync profile"]
            ],
        ),
        "",
    ]

    import_gap = scraper_profile.total - floor_profile.total
    misses = []
    for numerator, denominator, limit in GOAL_PAIRS:
        gap = samples[numerator].median - limit * samples[denominator].median
        if gap > 0:
            misses.append(
                f"- {numerator}: {ms(gap)} ms slower than {limit:g}x {denominator}."
            )
    fsync_calls = ctx.results["fsync calls"]
    work_text = ", ".join(
        f"{label} {ms(statistics.median(phases[label]['sync work']))} ms"
        for label in fsync_calls
    )
    floor_work = ms(statistics.median(phases["floor"]["floor work"]))
    created = ctx.results["dataclasses created"]
    unchanged = "scraper sync (unchanged)"
    dataclass_text = (
        f"{created.get(unchanged, 0)} dataclasses takes "
        f"{ms(statistics.median(phases[unchanged]['dataclass creation, within the imports']))}"
        " ms (unchanged run, median)"
    )
    fsync_text = "; ".join(
        f"{label} calls it {fsync_calls[label]} times, "
        f"{ms(statistics.median(phases[label]['fsync, within the sync work']))} ms"
        for label in fsync_calls
    )
    if misses:
        lines += [
            "Missed goals, in milliseconds of whole-process median:",
            "",
            *misses,
            "",
            f"scraper's imports take {ms(import_gap)} ms more than the floor's under "
            "`-X importtime`. Of the in-process imports, building scraper's "
            f"{dataclass_text}: each `@dataclass` class has its methods generated and "
            "compiled when it is defined (Python 3.11). The rest is the sync work beyond "
            f"the floor's ({work_text}; the floor's work takes {floor_work} ms): "
            "argument parsing, loading and validating config.yaml (its time zone "
            "included), the store lock, reading and checking the latest version and "
            "the state file, and writing each file to a temporary file, fsyncing it, "
            "renaming it and fsyncing its folder, so a crash leaves the old file or the "
            "new one. The floor writes one file without fsync. Counted with os.fsync "
            f"wrapped: {fsync_text}. The cProfile table above splits the unchanged run's "
            "work by function.",
            "",
        ]
    return lines


def render_parse(ctx: Context, summary: list) -> str:
    results = ctx.results["parse"]
    rows = []
    ratio_rows = []
    per_page = {}
    for index, (label, (size, row_count, samples)) in enumerate(results.items()):
        for name, item in samples.items():
            rows.append(
                [
                    label,
                    f"{size:,}",
                    name,
                    ms(item.median),
                    item.spread(),
                    f"{item.median / row_count * 1e6:.1f}",
                ]
            )
        per_page[label] = samples
        lxml_ratio = ratio(samples["scraper"], samples["lxml"])
        pandas_ratio = ratio(samples["scraper"], samples["pandas"])
        # The goals are set for the captured page; the synthetic one shows growth.
        judged = index == 0
        ratio_rows.append(
            [
                label,
                "scraper / bare lxml",
                f"{lxml_ratio:.2f}",
                paired_ratio_spread(samples["scraper"], samples["lxml"]),
                "within 2x" if judged else "none (growth)",
                verdict(lxml_ratio, GOAL_VS_LXML) if judged else "–",
            ]
        )
        ratio_rows.append(
            [
                label,
                "scraper / pandas.read_html",
                f"{pandas_ratio:.2f}",
                paired_ratio_spread(samples["scraper"], samples["pandas"]),
                "faster" if judged else "none (growth)",
                verdict(pandas_ratio, GOAL_VS_PANDAS) if judged else "–",
            ]
        )
        if judged:
            summary.append(
                [
                    "2",
                    "parse: within 2x of bare lxml",
                    format_ratio(lxml_ratio, GOAL_VS_LXML),
                    _short(verdict(lxml_ratio, GOAL_VS_LXML)),
                ]
            )
            summary.append(
                [
                    "2",
                    "parse: faster than pandas.read_html",
                    format_ratio(pandas_ratio, GOAL_VS_PANDAS),
                    _short(verdict(pandas_ratio, GOAL_VS_PANDAS)),
                ]
            )

    small, large = list(per_page.values())
    growth = [
        [name, f"{large[name].median / small[name].median:.0f}x"] for name in small
    ]

    profile_text = []
    for label, (calls, functions) in ctx.results["parse profile"].items():
        cell_count = 2 * (results[label][1] + 1)
        repeats = [
            f"`{name.split()[-1]}` ran {count / cell_count:.1f} times per cell"
            for name, count, _, _ in functions
            if name.endswith((" cell_lines", " cell_text"))
        ]
        profile_text += [
            f"{label}, per parse, averaged over {plural(calls, 'parse')} under cProfile. "
            f"The table has {cell_count:,} cells, header included; "
            + (" and ".join(repeats) or "no cell text function is in the list")
            + ":",
            "",
            table(
                ["Function", "Calls per parse", "Own ms", "Cumulative ms"],
                [
                    [
                        f"`{name}`",
                        f"{count:,}",
                        f"{own * 1000:.3f}",
                        f"{cumulative * 1000:.3f}",
                    ]
                    for name, count, own, cumulative in functions
                ],
            ),
            "",
        ]

    synthetic_rows = list(results.values())[-1][1]
    return "\n".join(
        [
            "## 2. In-process parse",
            "",
            "Bytes to rows, inside one Python process, timed like `timeit`: each repeat runs a "
            f"loop of at least {ctx.results['minimum loop seconds']} s, and the sample is the loop's time per call. "
            f"{len(small['scraper'].seconds)} repeats per contender, interleaved.",
            "",
            "- **scraper**: `scraper.charset.decode_html(content, 'text/html; charset=utf-8')` and "
            "`scraper.parse.parse_page(text, source)`, with the source of the project's `config.yaml`.",
            "- **bare lxml**: `lxml.html.fromstring(content)`, the first `<table>`, and the "
            "`text_content()` of every cell of every `<tr>`.",
            f'- **pandas**: `pandas.read_html(io.BytesIO(content), flavor="lxml")`, pandas '
            f"{ctx.results['pandas version']}.",
            "",
            "The synthetic page is the captured page with its table body replaced by "
            f"{synthetic_rows:,} generated rows of the same shape. Each parser returned the "
            "expected number of rows before it was timed.",
            "",
            table(
                ["Page", "Bytes", "Parser", "Median ms", "IQR ms", "µs per row"], rows
            ),
            "",
            table(
                [
                    "Page",
                    "Ratio of medians",
                    "Ratio",
                    "IQR of paired ratios",
                    "Goal",
                    "Result",
                ],
                ratio_rows,
            ),
            "",
            f"Cost growth from the captured page to {synthetic_rows:,} rows:",
            "",
            table(["Parser", "Synthetic / captured"], growth),
            "",
            "Where scraper's time goes: its functions by cumulative time under cProfile. "
            "Profiling slows each call, so compare the rows with each other, not with the "
            "timings above.",
            "",
            *profile_text,
        ]
    )


def render_not_modified(ctx: Context, summary: list) -> str:
    samples, evidence, in_process = ctx.results["not modified"]
    fast, slow = samples["304"], samples["200"]
    value = ratio(fast, slow)
    rows = [
        [fast.name, ms(fast.median), fast.spread(), f"{fast.rss_mib:.1f}"],
        [slow.name, ms(slow.median), slow.spread(), f"{slow.rss_mib:.1f}"],
    ]

    not_modified_lines = [
        line
        for line in evidence["304"]["log"].splitlines()
        if "not-modified" in line or "not modified" in line
    ]
    parsed_304 = [
        line for line in evidence["304"]["log"].splitlines() if "parsed" in line
    ]
    parsed_200 = [
        line for line in evidence["200"]["log"].splitlines() if "parsed" in line
    ]
    snapshot_files = [
        name
        for name in evidence["304"]["changed files"]
        if name.startswith("snapshots/") and not name.endswith("state.yaml")
    ]
    skipped = (
        evidence["304"]["status"] == 304
        and not_modified_lines
        and not parsed_304
        and not snapshot_files
    )

    file_rows = []
    for name in sorted(
        set(evidence["304"]["changed files"]) | set(evidence["304"]["unchanged files"])
    ):
        file_rows.append(
            [
                f"`{name}`",
                "rewritten"
                if name in evidence["304"]["changed files"]
                else "unchanged",
                "rewritten"
                if name in evidence["200"]["changed files"]
                else "unchanged",
            ]
        )

    summary.append(
        [
            "3",
            "304 run skips parsing and snapshot writes",
            f"{value:.2f}x the 200 run",
            "met" if skipped else "**missed**",
        ]
    )

    rewritten = (
        ", ".join(f"`{name}`" for name in evidence["304"]["changed files"]) or "no file"
    )
    in_process_rows = [
        [f"run_sync, {mode}", ms(item.median), item.spread()]
        for mode, item in in_process.items()
    ]
    in_process_ratio = ratio(in_process["304"], in_process["200"])

    return "\n".join(
        [
            "## 3. Unchanged run: 304 not modified against download and parse",
            "",
            "Two stores synced once from the same page. One server route sends "
            '`ETag: "matrix-v1"` and answers a matching `If-None-Match` with 304, the other '
            f"sends no validators. {len(fast.seconds)} unchanged runs each, interleaved.",
            "",
            table(["Run", "Median ms", "IQR ms", "Peak RSS MiB"], rows),
            "",
            f"Ratio 304 / 200: **{value:.2f}** (IQR of paired ratios {paired_ratio_spread(fast, slow)}).",
            "",
            f"Goal: the 304 run skips parsing and writing the snapshot. Result: "
            f"{'met' if skipped else '**missed**'}. Evidence from one `scraper -vv sync` per store, "
            "with every file's modification time (ns) taken before and after:",
            "",
            f"- The server's status for the 304 run: {evidence['304']['status']}; its standard "
            f"output: `{evidence['304']['stdout']}`.",
            '- Log lines of the 304 run that contain "not-modified" or "not modified": '
            + (", ".join(f"`{line}`" for line in not_modified_lines) or "none")
            + ".",
            '- Lines containing "parsed": 304 run: '
            + (", ".join(f"`{line}`" for line in parsed_304) or "none")
            + "; 200 run: "
            + (", ".join(f"`{line}`" for line in parsed_200) or "none")
            + ".",
            "",
            table(["File", "304 run", "200 run (unchanged rows)"], file_rows),
            "",
            f"The 304 run rewrote {rewritten}. The version files, their page captures "
            "and `latest.yaml` are the snapshot; the table shows which other files each "
            "run rewrote.",
            "",
            "The same two unchanged runs inside one process, with every module already "
            "imported: `scraper.run.run_sync` (what `scraper sync` calls after reading its "
            "options), timed like `timeit` and interleaved. This leaves out the start-up and "
            "import time that dominates the whole-process times above.",
            "",
            table(["Run", "Median ms", "IQR ms"], in_process_rows),
            "",
            f"Ratio 304 / 200 in-process: **{in_process_ratio:.2f}** (IQR of paired ratios "
            f"{paired_ratio_spread(in_process['304'], in_process['200'])}).",
            "",
        ]
    )


def render_history(ctx: Context, summary: list) -> str:
    sync, show, build_seconds, calls = ctx.results["history"]
    sizes = list(sync)
    rows = []
    for size in sizes:
        rows.append(
            [
                f"{size:,}",
                ms(sync[size].median),
                sync[size].spread(),
                ms(show[size].median),
                show[size].spread(),
                f"{build_seconds[size]:.1f}",
            ]
        )

    smallest, largest = sizes[0], sizes[-1]
    timings = calls["timings"]
    call_rows = []
    for size, measured in timings.items():
        for name, item in measured.items():
            call_rows.append(
                [f"{size:,}", TIMED_CALLS[name], f"{item.median * 1000:.3f}"]
            )

    growth_rows = []
    for command, samples in (("sync", sync), ("show", show)):
        counts = calls["counts"][command]
        listed = sum(
            count * (timings[largest][name].median - timings[smallest][name].median)
            for name, count in counts.items()
        )
        growth_rows.append(
            [
                command,
                f"{ratio(samples[largest], samples[smallest]):.2f}",
                paired_ratio_spread(samples[largest], samples[smallest]),
                ms(samples[largest].median - samples[smallest].median),
                ", ".join(f"`{name}` {count}" for name, count in counts.items()),
                str(calls["folder listings"][command]),
                ms(listed),
            ]
        )

    sync_ratio = ratio(sync[largest], sync[smallest])
    pairs = [a / b for a, b in zip(sync[largest].seconds, sync[smallest].seconds)]
    lower_quartile = quartiles(pairs)[0]
    extra = sync[largest].median - sync[smallest].median
    if lower_quartile <= 1.0:
        result = (
            f"met: in at least a quarter of the repetitions the {largest:,}-version sync "
            f"was no slower than the {smallest}-version sync (lower quartile of the paired "
            f"ratios {lower_quartile:.2f}; ratio of medians {sync_ratio:.2f})."
        )
    else:
        result = (
            f"**missed**: a sync of {largest:,} versions costs {sync_ratio:.2f}x one of "
            f"{smallest} version ({ms(extra)} ms more, "
            f"{extra / (largest - smallest) * 1e6:.2f} µs per stored version), and the "
            f"lower quartile of the paired ratios, {lower_quartile:.2f}, is above 1."
        )
    summary.append(
        [
            "4",
            "sync cost does not grow with the versions",
            f"{sync_ratio:.2f}x at {largest:,} versions",
            "met" if lower_quartile <= 1.0 else "**missed**",
        ]
    )

    listings = {
        command: sum(calls["counts"][command].values())
        + calls["folder listings"][command]
        for command in ("sync", "show")
    }
    unlisted = listings["sync"] == 0 and listings["show"] == 0
    summary.append(
        [
            "4",
            "unchanged sync and show never list versions/",
            f"sync {listings['sync']}, show {listings['show']} listing calls",
            "met" if unlisted else "**missed**",
        ]
    )

    return "\n".join(
        [
            "## 4. History growth",
            "",
            (
                f"Stores with {', '.join(f'{size:,}' for size in sizes)} valid versions, built "
                "by `bench/workspaces.py` with `scraper.yamlio.dump` and `scraper.store.checksum`, "
                "the newest through `Store.write_version` under the lock, so `state.yaml` records "
                "the newest version as `last_version`; a warm-up sync checked each. The versions "
                "have no page captures, which neither command reads. The page is unchanged, so "
                "each sync downloads, parses and compares with the latest version; `show` prints "
                f"the latest version. {len(sync[smallest].seconds)} repetitions, interleaved."
            ),
            "",
            table(
                [
                    "Versions",
                    "sync median ms",
                    "sync IQR ms",
                    "show median ms",
                    "show IQR ms",
                    "Store build s",
                ],
                rows,
            ),
            "",
            (
                f"Goal: the cost of a sync does not grow with the number of versions; it is judged "
                f"missed when the {largest:,}-version sync is slower in more than three quarters of "
                f"the repetitions. Result: {result}"
            ),
            "",
            (
                "What would grow with the history: listing the versions folder. "
                "`Store.version_numbers` lists and sorts it, and "
                "`Store.remove_stale_temporaries` globs it when called with that folder, which "
                "only a version write does. An unchanged sync and `show` need neither, because "
                "`Store.newest_number` starts from `last_version` in `state.yaml`. Each command "
                f"ran once in-process (`scraper.cli.main`) on the {largest:,}-version store with "
                "both methods counted, and with every `os.listdir` and `os.scandir` of the "
                "versions folder counted too, so a listing from anywhere else would show. Each "
                "method was also timed alone on every store; the last column multiplies the "
                "method counts by the per-call growth."
            ),
            "",
            (
                f"Goal: both commands make 0 such calls. Result: "
                f"{'met' if unlisted else '**missed**'}."
            ),
            "",
            table(["Versions", "Call", "Median ms per call"], call_rows),
            "",
            table(
                [
                    "Command",
                    f"Ratio {largest:,} / {smallest}",
                    "IQR of paired ratios",
                    "Extra ms (process medians)",
                    "Store listing calls per run",
                    "os.listdir/os.scandir of versions/ per run",
                    "Extra ms the listing calls account for",
                ],
                growth_rows,
            ),
            "",
        ]
    )


def _faster(value: float) -> str:
    """Return the verdict on a goal that a ratio of medians is below 1."""
    if value < 1.0:
        return f"met ({format_ratio(value, 1.0)} < 1x)"
    return f"**missed**: {format_ratio(value, 1.0)}, not below 1x"


def _judged(case) -> bool:
    """Return whether section 5 sets a goal for ``case``: 10 or more delayed sources."""
    return case.count >= 10 and case.delay > 0


def _delay_floor(case, mode: str, concurrency: int, servers: int) -> float:
    """Return the seconds that the response delay alone adds to one run, at least.

    Requests to one server go one at a time, and a pooled run has at most
    ``concurrency`` requests in flight at once.
    """
    if mode != "pooled":
        return case.count * case.delay
    per_server = -(-case.count // servers)  # Round up: the busiest server's share.
    return max(per_server * case.delay, case.count * case.delay / concurrency)


def render_sources(ctx: Context, summary: list) -> str:
    cases = ctx.results["sources"]
    servers = ctx.results["source servers"]
    concurrency = ctx.results["source concurrency"]
    delays = sorted({case.delay for case in cases if case.delay})
    delay_text = " and ".join(f"{delay * 1000:g} ms" for delay in delays)
    labels = {
        "pooled": f"pooled (concurrency {concurrency})",
        "one at a time": "one at a time (--concurrency 1)",
        "one process each": "one process per source",
    }
    single = {case.delay: case for case in cases if case.count == 1}

    rows = []
    for case in cases:
        for mode, samples in case.samples.items():
            added = "–"
            base = single.get(case.delay)
            if base is not None and case.count > 1:
                added = ms(
                    (samples.median - base.samples[mode].median) / (case.count - 1)
                )
            rows.append(
                [
                    f"{case.count:,}",
                    f"{case.delay * 1000:g}",
                    labels[mode],
                    ms(samples.median),
                    samples.spread(),
                    ms(_delay_floor(case, mode, concurrency, servers)),
                    added,
                    f"{samples.rss_mib:.1f}",
                    str(len(samples.seconds)),
                ]
            )

    judged_counts = " and ".join(f"{case.count:,}" for case in cases if _judged(case))
    ratio_rows = []
    for case in cases:
        pooled = case.samples["pooled"]
        serial = case.samples["one at a time"]
        apart = case.samples["one process each"]
        value = ratio(pooled, serial)
        if _judged(case):
            goal, result = "pooled / one at a time below 1", _faster(value)
            summary.append(
                [
                    "5",
                    f"pooled sync faster than one at a time, {plural(case.count, 'source')}",
                    format_ratio(value, 1.0),
                    _short(result),
                ]
            )
        elif case.count == 1:
            goal, result = "none: one source leaves the pool nothing to share", "–"
        else:
            goal, result = "none: no delay, shown for contrast", "–"
        ratio_rows.append(
            [
                f"{case.count:,}",
                f"{case.delay * 1000:g}",
                f"{value:.2f}",
                paired_ratio_spread(pooled, serial),
                f"{ratio(apart, pooled):.2f}",
                paired_ratio_spread(apart, pooled),
                goal,
                result,
            ]
        )

    limit_rows = []
    for case in cases:
        for mode in case.samples:
            limit_rows.append(
                [
                    f"{case.count:,}",
                    f"{case.delay * 1000:g}",
                    labels[mode],
                    str(case.server_peak[mode]),
                    str(case.overall_peak[mode]),
                    str(case.connections[mode]),
                ]
            )
    pooled_peak = max(case.server_peak["pooled"] for case in cases)
    limit_held = pooled_peak == 1
    summary.append(
        [
            "5",
            "pooled sync: at most 1 request in flight per server",
            f"at most {pooled_peak}",
            "met" if limit_held else "**missed**",
        ]
    )

    fewer = [
        f"at {case.count:,} sources ({case.delay * 1000:g} ms delay), "
        f"{len(case.samples['one process each'].seconds)} of the "
        f"{len(case.samples['pooled'].seconds)} repetitions"
        for case in cases
        if len(case.samples["one process each"].seconds)
        < len(case.samples["pooled"].seconds)
    ]
    repetitions = (
        "The one-process-per-source series runs only in the first repetitions where it "
        "is slow: " + "; ".join(fewer) + ". Its paired ratios use those repetitions."
        if fewer
        else "Every mode ran in every repetition."
    )

    return "\n".join(
        [
            "## 5. Many sources",
            "",
            (
                f"N sources with distinct names, each at its own URL, spread round-robin over "
                f"{servers} local servers on different ports (source i on server i mod {servers}), "
                "all serving the captured page. Round-robin matters because a sync sends one "
                "request at a time to each host and port, so sources on one server cannot overlap. "
                "The sources were synced once beforehand, so every timed run downloads, parses "
                "and finds each one unchanged. Three ways of syncing them, interleaved:"
            ),
            "",
            (
                f"- **pooled**: one `scraper sync` with the default concurrency of {concurrency} "
                "(up to that many sources at once)."
            ),
            "- **one at a time**: one `scraper sync --concurrency 1`.",
            (
                "- **one process per source**: N `scraper sync --source NAME` processes one after "
                "another, as a shell loop runs them. Its time is that of the whole series and its "
                "peak RSS that of its largest process."
            ),
            "",
            (
                f"Response delay: each server waits {delay_text} before it answers a request. "
                "The delay models a network round trip, which loopback does not have. It is "
                "a modelling choice, not a measured latency. Without it a loopback request "
                "spends little time waiting, so the pool has little to overlap, and the "
                "10-source case is also shown with no delay for contrast. The column *Delay "
                "alone* is the least time the delay adds to one run: N × delay for the "
                "serial modes, and for the pooled one the larger of N × delay / concurrency "
                f"and the busiest server's share × delay. {repetitions}"
            ),
            "",
            table(
                [
                    "Sources",
                    "Delay ms",
                    "Mode",
                    "Median ms",
                    "IQR ms",
                    "Delay alone ms",
                    "ms per source beyond 1",
                    "Peak RSS MiB",
                    "Repetitions",
                ],
                rows,
            ),
            "",
            (
                f"Goal: at {judged_counts} sources with the {delay_text} response delay, the "
                "pooled sync is faster than the same sources synced one at a time (ratio of "
                "medians below 1)."
            ),
            "",
            table(
                [
                    "Sources",
                    "Delay ms",
                    "Pooled / one at a time",
                    "IQR of paired ratios",
                    "One process per source / pooled",
                    "IQR of paired ratios",
                    "Goal",
                    "Result",
                ],
                ratio_rows,
            ),
            "",
            (
                "Goal: the pooled sync never has more than one request in flight on a server. "
                "Each server counts the requests it is handling, from the parsed request line "
                "to the last byte of the response, and records the maximum during each run; a "
                "counter shared by all servers shows how many requests the run overlapped. "
                "The table gives the maximum over a mode's runs and the TCP connections the "
                f"servers accepted during its last run. Result: {'met' if limit_held else '**missed**'}"
                f" (at most {pooled_peak} on one server)."
            ),
            "",
            table(
                [
                    "Sources",
                    "Delay ms",
                    "Mode",
                    "Max in flight, one server",
                    "Max in flight, all servers",
                    "TCP connections, last run",
                ],
                limit_rows,
            ),
            "",
        ]
    )


def render_startup(ctx: Context, summary: list) -> str:
    samples, profiles = ctx.results["startup"]
    base = samples["python -c pass"]
    rows = [
        [
            name,
            ms(item.median),
            item.spread(),
            f"{ratio(item, base):.2f}",
            f"{item.rss_mib:.1f}",
        ]
        for name, item in samples.items()
    ]
    total_rows = [
        [label, ms(profile.total), str(profile.runs)]
        for label, profile in profiles.items()
    ]
    text = [
        "## 6. Start-up and imports",
        "",
        f"{len(base.seconds)} repetitions, interleaved. The sync uses a configuration whose "
        f"source is a local copy of `fixtures/matrix-4rows-asc.html` "
        f"({ctx.results['small page bytes']:,} bytes), already synced, so it sends no HTTP "
        "request; `scraper.fetch` imports requests at module level all the same.",
        "",
        table(
            [
                "Command",
                "Median ms",
                "IQR ms",
                "Ratio to python -c pass",
                "Peak RSS MiB",
            ],
            rows,
        ),
        "",
        "Import time under `python -X importtime`: the sum of the top-level cumulative times, "
        "median of the runs:",
        "",
        table(["Command", "Imports ms", "Runs"], total_rows),
        "",
    ]

    forbidden_rows = []
    found_count = 0
    for label in ("scraper --help", "scraper sync (HTTP, unchanged)"):
        found = profiles[label].matching(FORBIDDEN_IMPORTS)
        found_count += len(found)
        forbidden_rows.append([label, ", ".join(found) or "none"])
    met = found_count == 0
    summary.append(
        [
            "6",
            f"--help and sync import no {' or '.join(FORBIDDEN_IMPORTS)}",
            f"{found_count} such modules imported",
            "met" if met else "**missed**",
        ]
    )
    text += [
        f"Goal: neither `scraper --help` nor `scraper sync` imports {' or '.join(FORBIDDEN_IMPORTS)}. "
        f"Result: {'met' if met else '**missed**'}.",
        "",
        table(
            ["Command", f"Modules of {', '.join(FORBIDDEN_IMPORTS)} imported"],
            forbidden_rows,
        ),
        "",
    ]

    for label in ("scraper --help", "scraper sync (HTTP, unchanged)"):
        heavy = profiles[label].heavy_roots(minimum_seconds=0.002)
        text += [
            f"Heaviest imports of `{label}`: packages and scraper modules with at least 2 ms "
            "of cumulative import time (a nested package's time is also part of its importer's):",
            "",
            table(
                ["Module", "Imported by", "Cumulative ms", "Self ms"],
                [
                    [name, parent, ms(cumulative), ms(own)]
                    for name, parent, cumulative, own in heavy
                ],
            ),
            "",
        ]
    return "\n".join(text)


def render_memory(ctx: Context) -> str:
    rows = []
    for name, item in ctx.processes.items():
        if item.rss_kib:
            rows.append(
                [
                    name,
                    f"{item.rss_mib:.1f}",
                    f"{max(item.rss_kib) / 1024:.1f}",
                    str(len(item.rss_kib)),
                ]
            )
    whole = ctx.results["whole"]
    base = ctx.results["startup"][0]["python -c pass"]
    scraper = whole["scraper unchanged"]
    comparisons = [
        ("scraper unchanged / floor", scraper.rss_mib / whole["floor"].rss_mib),
        (
            "scraper unchanged / urlwatch unchanged",
            scraper.rss_mib / whole["urlwatch unchanged"].rss_mib,
        ),
        ("scraper unchanged / python -c pass", scraper.rss_mib / base.rss_mib),
    ]
    return "\n".join(
        [
            "## 7. Peak memory",
            "",
            f"Maximum resident set size (RSS) of each whole process, from {rss_source()}. For the "
            "one-process-per-source series of section 5 it is the largest process of the series. "
            "No goal was set.",
            "",
            table(["Process", "Median MiB", "Max MiB", "Runs"], rows),
            "",
            table(
                ["Ratio of median peak RSS", "Ratio"],
                [[label, f"{value:.2f}"] for label, value in comparisons],
            ),
            "",
        ]
    )


def render_commands(ctx: Context) -> str:
    lines = [
        "## Commands",
        "",
        (
            "`bash bench/run` runs all of the commands below. `$TMP` is the benchmark's temporary "
            "folder, `$PORT` the local server's port and `$TMP/NEW` a new folder per repetition. "
            "Each folder holds the `config.yaml` that `bench/workspaces.py` writes: the project's "
            "`config.yaml` with its sources replaced by the benchmark's, each with its own name "
            "and URL and the key and columns of the project's first source. `$TMP/SOURCES-N` "
            "holds N such sources."
        ),
        "",
    ]
    for section in sorted(ctx.commands):
        lines.append(f"Section {section}:")
        lines.append("")
        lines.append("```")
        for label, command in ctx.commands[section]:
            lines.append(f"# {label}")
            lines.append(command)
        lines.append("```")
        lines.append("")
    return "\n".join(lines)


def render(ctx: Context, started: datetime, seconds: float, quick: bool) -> str:
    header = [
        "# Benchmarks",
        "",
        "Written by `bash bench/run` (bench/bench.py); rerun it to refresh every number. "
        f"This run started {started:%Y-%m-%d %H:%M} UTC and took {seconds / 60:.1f} minutes"
        + (
            " with `--quick` repetition counts, so its spreads are wide."
            if quick
            else "."
        ),
        "",
        (
            "Method: every page is served from memory by HTTP/1.1 servers on 127.0.0.1 started "
            "by the benchmark, with keep-alive and TCP_NODELAY: one server for most sections, "
            f"{ctx.results['source servers']} in section 5, which alone adds a fixed delay to "
            "each response. Contenders run interleaved, their order rotating every repetition, "
            "so they share the machine's noise. Tables give the median and the interquartile "
            "range (IQR); a ratio is the ratio of the two medians, and its IQR is that of the "
            "ratios of runs made in the same repetition. Goals are judged on the median ratio "
            "unless a section says otherwise; no time is a pass or fail condition. "
            "Whole-process times are wall times from process start to exit. Measured "
            "processes run without PYTHONDONTWRITEBYTECODE, so after the warm-up round "
            "scraper's editable install loads cached bytecode, as an installed copy does."
        ),
        "",
        "## Machine",
        "",
        table(["", ""], machine_facts()),
        "",
        "Library versions in bench/.venv:",
        "",
        table(["Package", "Version"], library_versions()),
        "",
    ]
    summary: list[list[str]] = []
    sections = [
        render_whole(ctx, summary),
        render_parse(ctx, summary),
        render_not_modified(ctx, summary),
        render_history(ctx, summary),
        render_sources(ctx, summary),
        render_startup(ctx, summary),
        render_memory(ctx),
        render_commands(ctx),
    ]
    header += [
        "## Summary",
        "",
        table(["Section", "Goal", "Measured", "Result"], summary),
        "",
    ]
    return "\n".join(header) + "\n" + "\n".join(sections)
