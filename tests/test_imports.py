"""Which modules a command imports, read from sys.modules of a real process.

Each command runs once in a fresh interpreter through a wrapper that calls
scraper.cli.main and then prints the sorted names in sys.modules. A module that a
command does not need costs start-up time on every run, so these tests pin the
modules that `scraper --help` and `scraper sync` must leave alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from tests.conftest import ROOT, fixture_bytes, write_config
from tests.httpserver import Reply, ScriptedServer

MARKER = "--- sys.modules ---"
# Runs scraper.cli.main with the process's arguments, then prints the sorted names of
# the imported modules after MARKER. argparse ends --help with SystemExit, so that
# is caught as well.
WRAPPER = f"""\
import sys
from scraper import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print({MARKER!r})
print("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""
PAGE = "matrix-4rows-asc.html"

# Modules that neither --help nor a sync without notification URLs needs. The
# filelock package is needed only where fcntl is missing (Windows).
NEVER_IMPORTED = (
    "apscheduler",
    "apprise",
    "filelock",
    "scraper.report",
    "scraper.notify",
    "scraper.schedule",
)


@dataclass
class Run:
    """The outcome of one wrapped command: exit code, output and imported modules."""

    code: int
    out: str
    err: str
    modules: frozenset[str] = field(repr=False)


def run_wrapped(args: list[str], folder) -> Run:
    """Run ``scraper ARGS`` through WRAPPER in ``folder`` and return what it did."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    completed = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    out, found, listing = completed.stdout.partition(MARKER + "\n")
    assert found, f"the wrapper printed no module list:\n{completed.stdout}{completed.stderr}"
    return Run(
        completed.returncode, out, completed.stderr, frozenset(listing.splitlines())
    )


def imported(modules: frozenset[str], package: str) -> list[str]:
    """Return the modules that are ``package`` or inside it."""
    return sorted(
        name for name in modules if name == package or name.startswith(package + ".")
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """Run each command once, each sync in its own folder and store."""
    results = {}
    help_folder = tmp_path_factory.mktemp("help")
    results["help"] = run_wrapped(["--help"], help_folder)

    file_folder = tmp_path_factory.mktemp("sync-file")
    page = file_folder / "page.html"
    page.write_bytes(fixture_bytes(PAGE))
    write_config(file_folder, str(page))
    results["sync file"] = run_wrapped(["sync"], file_folder)

    with ScriptedServer() as server:
        # The page declares its charset in a <meta> tag as well, so only the header
        # decides whether the page must be sniffed.
        server.route("/header/", Reply.html(fixture_bytes(PAGE), charset="utf-8"))
        server.route("/sniffed/", Reply.html(fixture_bytes(PAGE), charset=None))
        for name, path in (("sync http header", "/header/"), ("sync http sniffed", "/sniffed/")):
            folder = tmp_path_factory.mktemp(name.replace(" ", "-"))
            write_config(folder, server.url(path))
            results[name] = run_wrapped(["sync"], folder)
    return results


@pytest.mark.parametrize("name", ["sync file", "sync http header", "sync http sniffed"])
def test_wrapped_sync_succeeds(runs, name):
    run = runs[name]
    assert run.code == 0, run.err
    assert run.out == "capi-image-builder: changed, version 1 (4 added, 0 removed, 0 changed)\n"
    # The list is the real one: it contains the modules the sync ran.
    assert "scraper.sync" in run.modules
    assert "lxml.etree" in run.modules


def test_wrapped_help_succeeds(runs):
    run = runs["help"]
    assert run.code == 0, run.err
    assert run.out.startswith("usage: scraper")
    assert "scraper.cli" in run.modules


@pytest.mark.parametrize("package", NEVER_IMPORTED + ("bs4", "scraper.sync"))
def test_help_skips_module(runs, package):
    assert imported(runs["help"].modules, package) == []


@pytest.mark.parametrize("package", NEVER_IMPORTED)
@pytest.mark.parametrize("name", ["sync file", "sync http header"])
def test_sync_skips_module(runs, name, package):
    assert imported(runs[name].modules, package) == []


def test_sync_header_charset_skips_bs4(runs):
    # The Content-Type header names the charset, so the page is not sniffed for a
    # <meta> declaration, which is what bs4 is imported for.
    assert imported(runs["sync http header"].modules, "bs4") == []


def test_sync_sniffed_charset_imports_bs4(runs):
    # Without a charset in the header, the <meta> declaration is read with bs4.
    assert "bs4" in runs["sync http sniffed"].modules
