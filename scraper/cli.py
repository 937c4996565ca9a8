"""The ``scraper`` command line: parse options, call a handler, map errors to exit codes.

The handlers are in scraper.commands. Data goes to stdout; logs and error messages
go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from . import __version__
from .commands import (
    DEFAULT_CONFIG,
    command_diff,
    command_export,
    command_history,
    command_prune,
    command_reparse,
    command_report,
    command_schedule,
    command_schema,
    command_show,
    command_status,
    command_sync,
    report_error,
)
from .errors import ExitCode, ScraperError

log = logging.getLogger("scraper")


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
        report_error(error, show_traceback)
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


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
