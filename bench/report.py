"""Write BENCHMARKS.md from the results that bench.py measured."""

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


def verdict(value: float, limit: float) -> str:
    if value <= limit:
        return f"met ({value:.2f}x ≤ {limit:g}x)"
    return f"**missed**: {value:.2f}x against {limit:g}x, {(value / limit - 1) * 100:.0f}% over"


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
                f"{value:.2f}x",
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
    if misses:
        lines += [
            "Missed goals, in milliseconds of whole-process median:",
            "",
            *misses,
            "",
            f"scraper's imports take {ms(import_gap)} ms more than the floor's under "
            "`-X importtime`.",
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
                    f"{lxml_ratio:.2f}x",
                    _short(verdict(lxml_ratio, GOAL_VS_LXML)),
                ]
            )
            summary.append(
                [
                    "2",
                    "parse: faster than pandas.read_html",
                    f"{pandas_ratio:.2f}x",
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
            + (", ".join(f"`{line}`" for line in not_modified_lines) or "none"),
            '- Lines containing "parsed": 304 run: '
            + (", ".join(f"`{line}`" for line in parsed_304) or "none")
            + "; 200 run: "
            + (", ".join(f"`{line}`" for line in parsed_200) or "none")
            + ".",
            "",
            table(["File", "304 run", "200 run (unchanged rows)"], file_rows),
            "",
            f"The 304 run rewrote {rewritten}. The version files and `latest.yaml` are "
            "the snapshot; the table shows which other files each run rewrote.",
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
                [f"{size:,}", f"`Store.{name}()`", f"{item.median * 1000:.3f}"]
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
            f"ratios {lower_quartile:.2f})."
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

    return "\n".join(
        [
            "## 4. History growth",
            "",
            f"Stores with {', '.join(f'{size:,}' for size in sizes)} valid versions, built "
            "with `scraper.yamlio.dump` and `scraper.store.checksum` and the newest through "
            "`Store.write_version` under the lock; a warm-up sync checked each. The page is "
            "unchanged, so each sync downloads, parses and compares with the latest version. "
            f"{len(sync[smallest].seconds)} repetitions, interleaved.",
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
            f"Goal: the cost of a sync does not grow with the number of versions; it is judged "
            f"missed when the {largest:,}-version sync is slower in more than three quarters of "
            f"the repetitions. Result: {result}",
            "",
            "What grows with the history: the `Store` methods that read the whole versions "
            "folder (`version_numbers` lists and sorts it, `remove_stale_temporaries` globs "
            f"it). Each command ran once in-process (`scraper.cli.main`) on the {largest:,}-"
            "version store with these methods counted, and each method was timed alone on "
            "every store. The last column multiplies the counts by the per-call growth:",
            "",
            table(["Versions", "Call", "Median ms per call"], call_rows),
            "",
            table(
                [
                    "Command",
                    f"Ratio {largest:,} / {smallest}",
                    "IQR of paired ratios",
                    "Extra ms (process medians)",
                    "Listing calls per run",
                    "Extra ms the listing calls account for",
                ],
                growth_rows,
            ),
            "",
        ]
    )


def render_sources(ctx: Context) -> str:
    results = ctx.results["sources"]
    opened = ", ".join(
        f"{count}: {number}"
        for count, number in ctx.results["source connections"].items()
    )
    fewest = min(results)
    base = results[fewest][0]
    rows = []
    for count, (together, apart) in results.items():
        added = "–"
        if count > fewest:
            added = ms((together.median - base.median) / (count - fewest))
        rows.append(
            [
                str(count),
                ms(together.median),
                together.spread(),
                ms(apart.median),
                apart.spread(),
                f"{ratio(apart, together):.2f}",
                added,
                f"{together.rss_mib:.1f}",
                str(len(together.seconds)),
            ]
        )
    return "\n".join(
        [
            "## 5. Many sources",
            "",
            "N sources with distinct names, each at its own URL on the one local server (same "
            "page), synced once beforehand so that every timed run is unchanged. One `scraper "
            "sync` of all N is compared with N `scraper sync --source NAME` processes run one "
            "after another; the second time is the wall time of the whole series, and its peak "
            "RSS is the largest of its processes. TCP connections the server accepted during "
            f"the last one-process run, per source count: {opened}. No goal was set; the numbers show the "
            "cost per source and what one process saves.",
            "",
            table(
                [
                    "Sources",
                    "One process median ms",
                    "IQR ms",
                    "One per source median ms",
                    "IQR ms",
                    "Ratio apart / together",
                    f"ms per source beyond {fewest} (one process)",
                    "Peak RSS MiB (together)",
                    "Repetitions",
                ],
                rows,
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
        "`bash bench/run` runs all of the commands below. `$TMP` is the benchmark's temporary "
        "folder, `$PORT` the local server's port and `$TMP/NEW` a new folder per repetition. "
        "Each folder holds the `config.yaml` that `bench/workspaces.py` writes: the project's "
        "`config.yaml` with the source's name and URL replaced.",
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
        "Method: every page is served from memory by an HTTP/1.1 server on 127.0.0.1 started "
        "by the benchmark, with keep-alive and TCP_NODELAY. Contenders run interleaved, their order rotating every repetition, "
        "so they share the machine's noise. Tables give the median and the interquartile "
        "range (IQR); a ratio is the ratio of the two medians, and its IQR is that of the "
        "ratios of runs made in the same repetition. Goals are judged on the median ratio "
        "unless a section says otherwise; no time is a pass or fail condition. Whole-process times are wall times from "
        "process start to exit.",
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
        render_sources(ctx),
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
