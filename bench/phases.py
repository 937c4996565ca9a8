"""Time the phases of one run inside its own process, for bench.py.

Usage:
  python bench/phases.py scraper RESULT.json       (in a folder with config.yaml)
  python bench/phases.py scraper-first RESULT.json (the same, with an empty store)
  python bench/phases.py floor RESULT.json URL OUTPUT.yaml
  python bench/phases.py profile RESULT.prof       (in a folder with config.yaml)

The first three write the seconds spent importing and working as JSON to
RESULT.json. For scraper they also write the modules first imported during the sync
work, the os.fsync calls with their seconds, and the @dataclass classes built during
the imports with their seconds. The interpreter's own start-up happens before this
file runs and is measured apart.
``profile`` imports the same modules, then writes a cProfile of ``scraper sync``.
"""

import json
import os
import shutil
import sys
import time


def time_scraper(first: bool = False) -> dict:
    if first:
        # A first run: no store and no run records. The folder names are those of
        # the configuration that bench/workspaces.py writes.
        for folder in ("snapshots", ".scraper-state"):
            shutil.rmtree(folder, ignore_errors=True)
    fsyncs = {"calls": 0, "seconds": 0.0}
    original_fsync = os.fsync

    def timed_fsync(descriptor) -> None:
        began = time.perf_counter()
        try:
            original_fsync(descriptor)
        finally:
            fsyncs["calls"] += 1
            fsyncs["seconds"] += time.perf_counter() - began

    os.fsync = timed_fsync
    # NOTE: dataclasses._process_class is private (CPython 3.10 to 3.13 have it).
    # It builds each @dataclass class, and wrapping it times that work during the
    # imports; where it is missing the phase is reported as 0.
    import dataclasses

    creation = {"classes": 0, "seconds": 0.0}
    original_process = getattr(dataclasses, "_process_class", None)

    def timed_process(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original_process(*args, **kwargs)
        finally:
            creation["classes"] += 1
            creation["seconds"] += time.perf_counter() - began

    if original_process is not None:
        dataclasses._process_class = timed_process
    started = time.perf_counter()
    import scraper.cli

    cli_imported = time.perf_counter()
    # The modules that `scraper sync` imports when it starts its work.
    import scraper.run

    sync_imported = time.perf_counter()
    loaded = set(sys.modules)
    code = scraper.cli.main(["sync"])
    finished = time.perf_counter()
    if code != 0:
        raise SystemExit(f"scraper sync exited with {code}")
    late = sorted(
        {
            name.split(".")[0]
            for name in set(sys.modules) - loaded
            if not name.startswith("scraper.")
        }
    )
    late += sorted(
        name for name in set(sys.modules) - loaded if name.startswith("scraper.")
    )
    return {
        "import scraper.cli": cli_imported - started,
        "import the sync modules": sync_imported - cli_imported,
        "sync work": finished - sync_imported,
        "fsync, within the sync work": fsyncs["seconds"],
        "dataclass creation, within the imports": creation["seconds"],
        "late imports": late,
        "fsync calls": fsyncs["calls"],
        "dataclasses created": creation["classes"],
    }


def profile_scraper(result: str) -> None:
    import cProfile

    import scraper.cli
    import scraper.run

    profiler = cProfile.Profile()
    code = profiler.runcall(scraper.cli.main, ["sync"])
    if code != 0:
        raise SystemExit(f"scraper sync exited with {code}")
    profiler.dump_stats(result)


def time_floor(url: str, output: str) -> dict:
    started = time.perf_counter()
    import lxml.html  # noqa: F401
    import requests  # noqa: F401
    import yaml  # noqa: F401

    imported = time.perf_counter()
    import floor

    sys.argv = ["floor.py", url, output]
    floor.main()
    finished = time.perf_counter()
    return {
        "import requests, lxml.html, yaml": imported - started,
        "floor work": finished - imported,
    }


def main() -> None:
    mode, result = sys.argv[1:3]
    if mode == "scraper":
        phases = time_scraper()
    elif mode == "scraper-first":
        phases = time_scraper(first=True)
    elif mode == "floor":
        phases = time_floor(*sys.argv[3:5])
    elif mode == "profile":
        profile_scraper(result)
        return
    else:
        raise SystemExit(f"unknown mode {mode!r}: use scraper, scraper-first, floor or profile")
    with open(result, "w", encoding="utf-8") as handle:
        json.dump(phases, handle)


if __name__ == "__main__":
    main()
