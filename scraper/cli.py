"""The ``scraper`` command line: parse options, call the library, map errors to exit codes.

Data goes to stdout; logs and error messages go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from . import __version__
from .errors import ExitCode, ScraperError, StoreError, UsageError

log = logging.getLogger("scraper")

DEFAULT_CONFIG = "config.yaml"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    # Common options are accepted before or after the subcommand name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"configuration file (default: ./{DEFAULT_CONFIG})",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log progress to stderr; twice for debug output",
    )
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log only errors; sync also prints nothing for unchanged sources",
    )
    common.add_argument(
        "--traceback",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the Python stack trace of an error",
    )
    parser = argparse.ArgumentParser(
        prog="scraper",
        parents=[common],
        description="Sync an HTML compatibility matrix into versioned YAML snapshots.",
        epilog="Exit codes: 0 success, 1 changed (sync --exit-code), 2 usage or "
        "configuration error, 3 fetch failed, 4 table missing or invalid, "
        "5 snapshot store error, 70 internal error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"scraper {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_sync(commands, common)
    _add_show(commands, common)
    _add_diff(commands, common)
    _add_history(commands, common)
    _add_reparse(commands, common)
    _add_prune(commands, common)
    _add_export(commands, common)
    _add_schema(commands, common)
    _add_schedule(commands, common)
    _add_status(commands, common)
    _add_report(commands, common)
    for command_parser in commands.choices.values():
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def _add_sync(commands, common) -> None:
    parser = commands.add_parser(
        "sync",
        parents=[common],
        help="fetch each source and write a new version when its table changed",
        description="Fetch each source's page, parse its table and write a new "
        "snapshot version when the rows changed. Prints one line per source.",
    )
    parser.add_argument("--source", metavar="NAME", help="sync only this source")
    parser.add_argument(
        "--url",
        metavar="URL",
        help="fetch this URL or file path instead of the configured one "
        "(one source only), for example a saved copy of the page",
    )
    parser.add_argument(
        "--exit-code",
        action="store_true",
        help="exit with 1 when any source changed, so cron jobs can react",
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        metavar="N",
        help="sources synced at once (default: config.yaml 'concurrency', else 4); "
        "requests to one host and port always go one at a time",
    )
    parser.set_defaults(handler=command_sync)


def _add_show(commands, common) -> None:
    parser = commands.add_parser(
        "show",
        parents=[common],
        help="print the rows of the latest or a given version",
        description="Print the rows of the latest version, of --version N, or of the "
        "version that was current at --at DATE.",
    )
    parser.add_argument("--source", metavar="NAME", help="source to show")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--version",
        type=_version_number,
        metavar="N",
        dest="number",
        help="version number to show (default: the latest)",
    )
    which.add_argument(
        "--at",
        metavar="DATE",
        help="show the matrix as it was on DATE (YYYY-MM-DD, the end of that day in "
        "UTC) or at an ISO 8601 time such as 2026-05-01T12:00:00Z",
    )
    parser.add_argument(
        "--format",
        choices=("yaml", "json", "table"),
        default="yaml",
        help="output format (default: yaml)",
    )
    parser.set_defaults(handler=command_show)


def _add_diff(commands, common) -> None:
    parser = commands.add_parser(
        "diff",
        parents=[common],
        help="show what changed between two versions",
        description="Show rows added, removed and changed from version OLD to NEW. "
        "By default NEW is the latest version and OLD the one before it; "
        "version 0 is the empty store.",
    )
    parser.add_argument("--source", metavar="NAME", help="source to compare")
    parser.add_argument(
        "old",
        nargs="?",
        type=_version_number,
        metavar="OLD",
        help="older version (default: the one before NEW; 0 is the empty store)",
    )
    parser.add_argument(
        "new", nargs="?", type=_version_number, metavar="NEW", help="newer version (default: the latest)"
    )
    parser.add_argument(
        "--format",
        choices=("text", "yaml", "json"),
        default="text",
        help="output format (default: text)",
    )
    parser.set_defaults(handler=command_diff)


def _add_history(commands, common) -> None:
    parser = commands.add_parser(
        "history",
        parents=[common],
        help="list every version, or every change of one row with --key",
        description="List every stored version with its fetch time and change counts. "
        "With --key, list each version in which that row was added, changed or "
        "removed, with old -> new values.",
    )
    parser.add_argument("--source", metavar="NAME", help="source to list")
    parser.add_argument(
        "--key",
        metavar="KEY",
        help="the row's key, for example 1.28.9; a leading v is ignored",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    parser.set_defaults(handler=command_history)


def _add_export(commands, common) -> None:
    parser = commands.add_parser(
        "export",
        parents=[common],
        help="write the rows of a version for other tools, or one Kubernetes "
        "version's pins for an image build",
        description="Write the rows of the latest version, or of --version N, as JSON, "
        "CSV or YAML; or the pins of one Kubernetes version (--k8s) as a Packer "
        "variables file for kubernetes-sigs/image-builder (packer) or as the "
        "Kubernetes lines of a CAPI Image Builder configuration file (imageconfig).",
    )
    parser.add_argument("--source", metavar="NAME", help="source to export")
    parser.add_argument(
        "--version",
        type=_version_number,
        metavar="N",
        dest="number",
        help="version number to export (default: the latest)",
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=("json", "csv", "yaml", "packer", "imageconfig"),
        help="output format: every row as json, csv or yaml; or the pins of --k8s "
        "as packer or imageconfig",
    )
    parser.add_argument(
        "--k8s",
        metavar="VERSION",
        help="Kubernetes version to export for packer and imageconfig, such as 1.30.4, "
        "or a series such as 1.30 for its newest patch release in the matrix",
    )
    parser.add_argument(
        "--deb-revision",
        metavar="REVISION",
        help="Debian package revision, such as 1.1, to write kubernetes_deb_version "
        "(packer only; the matrix does not contain it)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write to FILE instead of stdout, or to stdout with -. A regular file "
        "is replaced atomically, the target of a symbolic link is replaced, and a "
        "FIFO or character device is written in place",
    )
    parser.set_defaults(handler=command_export)


def _add_schema(commands, common) -> None:
    parser = commands.add_parser(
        "schema",
        parents=[common],
        help="print the JSON Schema of snapshot files or of diff output",
        description="Print the JSON Schema (draft 2020-12) of a snapshot version "
        "file (snapshot, the default) or of 'scraper diff --format json' output "
        "(diff). The snapshot schema refers to the diff schema as diff.schema.json.",
    )
    parser.add_argument(
        "name",
        nargs="?",
        choices=("snapshot", "diff"),
        default="snapshot",
        help="which schema to print (default: snapshot)",
    )
    parser.set_defaults(handler=command_schema)


def _add_schedule(commands, common) -> None:
    parser = commands.add_parser(
        "schedule",
        parents=[common],
        help="run the sync on the configured cron schedule, in the foreground",
        description="Run in the foreground and sync each source on its cron schedule "
        "(config.yaml 'schedule'). A run missed while the process was down runs once at "
        "start. Stop it with SIGTERM or Ctrl-C. Logs go to stderr, at INFO level "
        "unless -q is given.",
    )
    parser.add_argument("--source", metavar="NAME", help="schedule only this source")
    parser.add_argument(
        "--run-now", action="store_true", help="also run every job once at start"
    )
    parser.set_defaults(handler=command_schedule, default_log_level=logging.INFO)


def _add_status(commands, common) -> None:
    parser = commands.add_parser(
        "status",
        parents=[common],
        help="show each source's last check, last success, failures and next run",
        description="Show, per source: last check, last success, last change, latest "
        "version, consecutive failures, last error and next scheduled run.",
    )
    parser.add_argument("--source", metavar="NAME", help="show only this source")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    parser.set_defaults(handler=command_status)


def _add_report(commands, common) -> None:
    parser = commands.add_parser(
        "report",
        parents=[common],
        help="write a static HTML page of the current matrix and every version",
        description="Write DIR/index.html: for each source, or only --source NAME, "
        "the rows of the latest version and a timeline of every stored version with "
        "its added, removed and changed rows. The page needs no server, scripts or "
        "network access. Prints the path of the page.",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder to write index.html into; created if missing",
    )
    parser.add_argument("--source", metavar="NAME", help="report only this source")
    parser.set_defaults(handler=command_report)


def _add_reparse(commands, common) -> None:
    parser = commands.add_parser(
        "reparse",
        parents=[common],
        help="parse every stored capture again and report versions that would differ",
        description="Parse the page kept with each version again, with the current "
        "parser and configuration, and report each version whose rows would differ. "
        "The store is not changed. Exits with 1 when any version differs or fails.",
    )
    parser.add_argument(
        "--source", metavar="NAME", help="source to reparse (default: every source)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal and "
        "there are more than 20 versions)",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    parser.set_defaults(handler=command_reparse)


def _add_prune(commands, common) -> None:
    parser = commands.add_parser(
        "prune",
        parents=[common],
        help="delete the versions that the retention setting no longer keeps",
        description="Delete old versions and their captures as config.yaml 'retention' "
        "says. sync does the same after each run; the latest version is never deleted.",
    )
    parser.add_argument("--source", metavar="NAME", help="prune only this source")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the versions that would be deleted"
    )
    parser.set_defaults(handler=command_prune)


def _concurrency(text: str) -> int:
    from .config import MAX_CONCURRENCY

    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(
            f"invalid number {text!r}: use a whole number from 1 to {MAX_CONCURRENCY}"
        )
    return int(text)


def _version_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"invalid version number {text!r}: use 0, 1, 2, ...")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    _tolerate_narrow_terminals()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # parse_args would report these with the top-level usage; the command's own
        # usage shows what the command takes.
        parser_of_command = getattr(args, "command_parser", parser)
        parser_of_command.error(f"unrecognized arguments: {' '.join(extra)}")
    _configure_logging(
        getattr(args, "verbose", 0),
        getattr(args, "quiet", False),
        getattr(args, "default_log_level", logging.WARNING),
    )
    show_traceback = getattr(args, "traceback", False)
    try:
        return int(args.handler(args))
    except ScraperError as error:
        _report(error, show_traceback)
        return int(error.exit_code)
    except KeyboardInterrupt:
        print("scraper: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader of stdout went away (`scraper show | head`); the work is done.
        _silence_stdout()
        return int(ExitCode.OK)
    except Exception as error:  # noqa: BLE001 - the last resort handler
        print(f"scraper: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        if show_traceback:
            traceback.print_exc()
        else:
            print("scraper: run again with --traceback and report the output", file=sys.stderr)
        return int(ExitCode.INTERNAL)


def _tolerate_narrow_terminals() -> None:
    # An ASCII-only stdout (PYTHONIOENCODING=ascii) must not turn a note such as
    # "≥ glibc 2.31" into a crash; such characters are escaped instead.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _report(error: ScraperError, show_traceback: bool) -> None:
    print(f"scraper: error: {error}", file=sys.stderr)
    if show_traceback:
        traceback.print_exception(error)


def _configure_logging(verbose: int, quiet: bool, default_level: int) -> None:
    if quiet:
        level = logging.ERROR
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    else:
        level = default_level
    handler = logging.StreamHandler(sys.stderr)
    if default_level < logging.WARNING:
        # A long-running process: every line needs its time.
        layout = "%(asctime)s scraper: %(levelname)s: %(message)s"
    else:
        layout = "scraper: %(levelname)s: %(message)s"
    handler.setFormatter(logging.Formatter(layout))
    root = logging.getLogger("scraper")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _load_config(args):
    from .config import load_config

    return load_config(getattr(args, "config", DEFAULT_CONFIG))


def _one_source(config, name: str | None):
    if name:
        return config.source(name)
    if len(config.sources) == 1:
        return config.sources[0]
    names = ", ".join(source.name for source in config.sources)
    raise UsageError(
        "several sources are configured; choose one with --source",
        where=str(config.path),
        hint=f"configured sources: {names}",
    )


def command_sync(args) -> int:
    from .run import run_sync

    config = _load_config(args)
    sources = [config.source(args.source)] if args.source else list(config.sources)
    if args.url is not None:
        if len(sources) > 1:
            raise UsageError(
                "--url needs a single source; add --source NAME",
                where=str(config.path),
                hint="configured sources: " + ", ".join(source.name for source in sources),
            )
        args.url = _checked_url(args.url)
    quiet = getattr(args, "quiet", False)
    show_traceback = getattr(args, "traceback", False)

    def report(result) -> None:
        if result.error is not None:
            _report(result.error, show_traceback)
        if not (quiet and result.status in ("unchanged", "not-modified")):
            print(result.summary(), flush=True)

    if args.concurrency is not None:
        from dataclasses import replace

        config = replace(config, concurrency=args.concurrency)
    results = run_sync(config, sources, url=args.url, on_result=report)
    return _sync_exit_code(results, args.exit_code)


def _sync_exit_code(results, exit_code_on_change: bool) -> int:
    errors = [int(result.error.exit_code) for result in results if result.error]
    if errors:
        return max(errors)
    if exit_code_on_change and any(result.status == "changed" for result in results):
        return int(ExitCode.CHANGED)
    return int(ExitCode.OK)


def _open_store(args):
    from .store import Store

    config = _load_config(args)
    source = _one_source(config, args.source)
    return source, Store(config.snapshots_dir, source.name)


def _check_version_number(store, numbers: list[int], number: int, allow_zero: bool) -> None:
    from .store import _ranges

    if number in numbers or (allow_zero and number == 0):
        return
    raise UsageError(
        f"version {number} does not exist",
        where=str(store.versions_path),
        hint=f"stored versions: {_ranges(numbers)}",
    )


def _require_versions(store) -> list[int]:
    numbers = store.version_numbers()
    if not numbers:
        raise StoreError(
            "no versions stored yet",
            source=store.source,
            where=str(store.path),
            hint="run 'scraper sync' first",
        )
    return numbers


def command_show(args) -> int:
    from . import render

    source, store = _open_store(args)
    if args.number is not None:
        _check_version_number(store, _require_versions(store), args.number, allow_zero=False)
        number = args.number
    elif args.at is not None:
        from .history import parse_moment, version_at

        moment = parse_moment(args.at)
        _require_versions(store)
        number = version_at(store, moment)
    else:
        number = store.newest_number()
        if number is None:
            _require_versions(store)
    document = store.load_version(number)
    if args.format == "table":
        print(f"# {source.name} version {document['version']}, fetched {document['fetched_at']}")
        print(render.rows_table(document["rows"], source.key))
        return int(ExitCode.OK)
    data = {
        "source": source.name,
        "version": document["version"],
        "fetched_at": document["fetched_at"],
        "url": document["url"],
        "rows": document["rows"],
    }
    print(render.to_json(data) if args.format == "json" else render.dump_yaml(data))
    return int(ExitCode.OK)


def command_diff(args) -> int:
    from . import render
    from .diff import compare

    source, store = _open_store(args)
    numbers = _require_versions(store)
    new = args.new if args.new is not None else numbers[-1]
    if args.old is not None:
        old = args.old
    else:
        earlier = [number for number in numbers if number < new]
        old = earlier[-1] if earlier else 0
    for number in (old, new):
        _check_version_number(store, numbers, number, allow_zero=True)
    old_rows = store.load_version(old)["rows"] if old else []
    new_rows = store.load_version(new)["rows"] if new else []
    diff = compare(old_rows, new_rows, source.key)
    if args.format == "json":
        print(render.to_json(diff.to_data()))
    elif args.format == "yaml":
        print(render.dump_yaml(diff.to_data()))
    else:
        print(render.diff_text(diff, source.key, f"{source.name}: version {old} -> {new}"))
    return int(ExitCode.OK)


def command_history(args) -> int:
    from . import render

    source, store = _open_store(args)
    if args.key is not None:
        return _row_history(args, source, store)
    entries = []
    for number in store.version_numbers():
        document = store.load_version(number)
        diff = document["diff"]
        entries.append(
            {
                "version": number,
                "fetched_at": document["fetched_at"],
                "rows": document["row_count"],
                "added": len(diff["added"]),
                "removed": len(diff["removed"]),
                "changed": len(diff["changed"]),
                "previous_version": diff["previous_version"],
            }
        )
    if args.format == "json":
        print(render.to_json({"source": source.name, "versions": entries}))
        return int(ExitCode.OK)
    if not entries:
        print(f"{source.name}: no versions stored yet")
        return int(ExitCode.OK)
    print(f"{'version':>7}  {'fetched_at':<20}  {'rows':>4}  added  removed  changed")
    for entry in entries:
        print(
            f"{entry['version']:>7}  {entry['fetched_at']:<20}  {entry['rows']:>4}  "
            f"{entry['added']:>5}  {entry['removed']:>7}  {entry['changed']:>7}"
        )
    # A version's counts compare it with the version before it, which retention or
    # a user may have deleted since.
    stored = {entry["version"] for entry in entries}
    for entry in entries:
        previous = entry["previous_version"]
        if previous is not None and previous not in stored:
            print(
                f"version {entry['version']} is compared with version {previous}, "
                "which is no longer stored"
            )
    return int(ExitCode.OK)


def _row_history(args, source, store) -> int:
    from . import render
    from .history import history_text, row_history

    _require_versions(store)
    history = row_history(store, source.key, args.key)
    if args.format == "json":
        print(render.to_json(history.to_data(source.name)))
    else:
        print(history_text(source.name, history))
    return int(ExitCode.OK)


def command_reparse(args) -> int:
    from . import render
    from .reparse import SAME
    from .store import Store

    config = _load_config(args)
    sources = [config.source(args.source)] if args.source else list(config.sources)
    several = len(sources) > 1
    reports = []
    codes = [int(ExitCode.OK)]
    for source in sources:
        store = Store(config.snapshots_dir, source.name)
        try:
            if several and not store.versions_path.is_dir():
                # Among several sources, one that has never synced has nothing to check.
                print(f"{source.name}: no versions stored yet", file=sys.stderr)
                continue
            results = _reparse_source(args, source, store)
        except StoreError as error:
            if not several:
                raise
            # Like sync and prune, one damaged store does not stop the others.
            _report(error, getattr(args, "traceback", False))
            codes.append(int(error.exit_code))
            continue
        reports.append((source, results))
        if any(result.status != SAME for result in results):
            codes.append(int(ExitCode.CHANGED))
    if args.format == "json":
        data = [
            {"source": source.name, "versions": [result.to_data() for result in results]}
            for source, results in reports
        ]
        # Several sources give their objects in config order under "sources".
        print(render.to_json({"sources": data} if several else data[0]))
    else:
        for source, results in reports:
            print(_reparse_text(source, results))
    return max(codes)


def _reparse_source(args, source, store) -> list:
    from .reparse import reparse_versions

    numbers = _require_versions(store)
    outcomes = reparse_versions(store, source, numbers)
    show_progress = args.progress
    if show_progress is None:
        show_progress = sys.stderr.isatty() and len(numbers) > 20
    if show_progress:
        from tqdm import tqdm

        outcomes = tqdm(
            outcomes, total=len(numbers), unit="version", desc=source.name, file=sys.stderr
        )
    return list(outcomes)


def _reparse_text(source, results) -> str:
    from collections import Counter

    from . import render
    from .reparse import SAME

    counts = Counter(result.status for result in results)
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    lines = [f"{source.name}: reparsed {len(results)} versions: {summary}"]
    for result in results:
        if result.status == SAME:
            continue
        lines.append(f"version {result.version}: {result.status}")
        if result.message:
            lines.append(f"  {result.message}")
        if result.diff:
            body = render.diff_text(result.diff, source.key, "stored -> reparsed")
            lines.extend(f"  {line}" for line in body.splitlines())
    return "\n".join(lines)


def command_prune(args) -> int:
    from .store import Store

    config = _load_config(args)
    sources = [config.source(args.source)] if args.source else list(config.sources)
    unconfigured = [source.name for source in sources if not source.retention.enabled]
    if args.source and unconfigured:
        raise UsageError(
            f"source {args.source!r} has no retention setting",
            where=str(config.path),
            hint="set retention.keep_versions or retention.keep_days in config.yaml",
        )
    failures = []
    for source in sources:
        if not source.retention.enabled:
            print(f"{source.name}: no retention setting; every version is kept")
            continue
        store = Store(config.snapshots_dir, source.name)
        if not store.versions_path.is_dir():
            print(f"{source.name}: no versions stored yet")
            continue
        try:
            expired = _prune_store(store, source, config.lock_timeout, args.dry_run)
        except StoreError as error:
            # Like sync, one damaged store does not stop the others.
            _report(error, getattr(args, "traceback", False))
            failures.append(int(error.exit_code))
            continue
        verb = "would delete" if args.dry_run else "deleted"
        listed = ", ".join(map(str, expired)) if expired else "no versions"
        print(f"{source.name}: {verb} {listed}")
    return max(failures, default=int(ExitCode.OK))


def _prune_store(store, source, lock_timeout: float, dry_run: bool) -> list[int]:
    with store.locked(lock_timeout):
        expired = store.expired_versions(source.retention)
        if not dry_run:
            for number in expired:
                store.delete_version(number)
    return expired


def command_export(args) -> int:
    from .export import check_options, check_out, export_text, write_output

    check_options(args.format, args.k8s, args.deb_revision)
    check_out(args.out)
    source, store = _open_store(args)
    numbers = _require_versions(store)
    if args.number is not None:
        _check_version_number(store, numbers, args.number, allow_zero=False)
    number = args.number if args.number is not None else numbers[-1]
    document = store.load_version(number)
    text = export_text(
        document,
        source,
        args.format,
        k8s=args.k8s,
        deb_revision=args.deb_revision,
        where=str(store.version_path(number)),
    )
    write_output(text, args.out)
    return int(ExitCode.OK)


def command_schema(args) -> int:
    from importlib.resources import files

    schema = files("scraper").joinpath("schemas").joinpath(f"{args.name}.schema.json")
    sys.stdout.write(schema.read_text(encoding="utf-8"))
    return int(ExitCode.OK)


def _checked_url(url: str) -> str:
    from urllib.parse import urlsplit

    from .config import URL_SCHEMES

    url = url.strip()
    if not url:
        raise UsageError("--url is empty", hint="give a URL or a file path")
    scheme = urlsplit(url).scheme.lower()
    if len(scheme) > 1 and scheme not in URL_SCHEMES:
        raise UsageError(
            f"--url {url!r} has the unsupported scheme {scheme!r}",
            hint="use an http://, https:// or file:// URL, or a file path",
        )
    return url


def command_schedule(args) -> int:
    from .schedule import Scheduler

    config = _load_config(args)
    sources = [config.source(args.source)] if args.source else None
    return Scheduler(config, sources).run(run_now=args.run_now)


def command_status(args) -> int:
    from . import render
    from .records import RecordBook
    from .schedule import next_run, plan_jobs
    from .store import Store

    config = _load_config(args)
    sources = [config.source(args.source)] if args.source else list(config.sources)
    book = RecordBook(config.run_state_dir)
    upcoming = {}
    for spec in plan_jobs(config, sources):
        moment = next_run(spec)
        for name in spec.sources:
            upcoming[name] = moment.isoformat() if moment else None
    entries = []
    for source in sources:
        record = book.load(source.name)
        newest = Store(config.snapshots_dir, source.name).newest_number()
        entries.append(
            {
                "source": source.name,
                "last_check": record.last_check,
                "last_success": record.last_success,
                "last_change": record.last_change,
                "last_result": record.last_result,
                "latest_version": newest,
                "consecutive_failures": record.consecutive_failures,
                "last_error": record.last_error,
                "next_run": upcoming.get(source.name),
            }
        )
    if args.format == "json":
        print(render.to_json({"sources": entries}))
    else:
        print(render.status_text(entries))
    return int(ExitCode.OK)


def command_report(args) -> int:
    from pathlib import Path

    from .report import write_report

    if not args.out:
        raise UsageError(
            "--out is empty",
            hint="give a folder for index.html, for example --out report",
        )
    config = _load_config(args)
    sources = [config.source(args.source)] if args.source else list(config.sources)
    print(write_report(config.snapshots_dir, sources, Path(args.out).expanduser()))
    return int(ExitCode.OK)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
