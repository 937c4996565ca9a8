"""The handlers of the ``scraper`` commands, and the helpers they share.

Each handler takes the parsed arguments, calls the library and returns the exit
code. scraper.cli builds the parser and maps uncaught errors to exit codes. Library
modules are imported inside each handler, so a command loads only what it uses.
"""

from __future__ import annotations

import sys
import traceback

from .errors import ExitCode, ScraperError, StoreError, UsageError

DEFAULT_CONFIG = "config.yaml"


def report_error(error: ScraperError, show_traceback: bool) -> None:
    """Print ``error`` on stderr, with its Python stack when ``show_traceback``."""
    print(f"scraper: error: {error}", file=sys.stderr)
    if show_traceback:
        traceback.print_exception(error)


def _load_config(args):
    from .config import load_config

    return load_config(getattr(args, "config", DEFAULT_CONFIG))


def _chosen_sources(config, args) -> list:
    """Return the source that --source names, or every configured source."""
    return [config.source(args.source)] if args.source else list(config.sources)


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
    sources = _chosen_sources(config, args)
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
            report_error(result.error, show_traceback)
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
    state = store.load_state()
    last_written = state["last_version"] if state else None
    if args.format == "json":
        data = {"source": source.name, "last_written": last_written, "versions": entries}
        print(render.to_json(data))
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
    newest = entries[-1]["version"]
    if last_written is not None and last_written > newest:
        missing = (
            f"version {last_written} is"
            if last_written == newest + 1
            else f"versions {newest + 1} to {last_written} are"
        )
        print(
            f"{missing} not stored; state.yaml records version {last_written} as the "
            "last one written"
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
    sources = _chosen_sources(config, args)
    several = len(sources) > 1
    # (source, results, note), where the note gives the reason a source has no results.
    reports = []
    codes = [int(ExitCode.OK)]
    for source in sources:
        store = Store(config.snapshots_dir, source.name)
        try:
            # One source alone must have versions. Among several, one that has never
            # synced has nothing to check and is skipped.
            numbers = store.version_numbers() if several else _require_versions(store)
            if not numbers:
                print(f"{source.name}: no versions stored yet", file=sys.stderr)
                reports.append((source, [], "no versions stored yet"))
                continue
            results = _reparse_source(args, source, store, numbers)
        except StoreError as error:
            if not several:
                raise
            # Like sync and prune, one damaged store does not stop the others.
            report_error(error, getattr(args, "traceback", False))
            reports.append((source, [], f"error: {error}"))
            codes.append(int(error.exit_code))
            continue
        reports.append((source, results, None))
        if any(result.status != SAME for result in results):
            codes.append(int(ExitCode.CHANGED))
    if args.format == "json":
        data = []
        for source, results, note in reports:
            entry = {"source": source.name, "versions": [result.to_data() for result in results]}
            if several:
                entry["skipped"] = note
            data.append(entry)
        # Several sources give their objects in config order under "sources".
        print(render.to_json({"sources": data} if several else data[0]))
    else:
        for source, results, note in reports:
            if note is None:
                print(_reparse_text(source, results))
    return max(codes)


def _reparse_source(args, source, store, numbers: list[int]) -> list:
    from .reparse import reparse_versions

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
    noun = "version" if len(results) == 1 else "versions"
    lines = [f"{source.name}: reparsed {len(results)} {noun}: {summary}"]
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
    sources = _chosen_sources(config, args)
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
            report_error(error, getattr(args, "traceback", False))
            failures.append(int(error.exit_code))
            continue
        verb = "would delete" if args.dry_run else "deleted"
        if not expired:
            listed = "no versions"
        elif len(expired) == 1:
            listed = f"version {expired[0]}"
        else:
            listed = "versions " + ", ".join(map(str, expired))
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
    if scheme in ("http", "https", "file"):
        return url
    # A file path is stored with each version, so it is made absolute, as config.yaml's
    # paths are: a relative one would mean nothing when read from another folder.
    from pathlib import Path

    return str(Path(url).expanduser().resolve())


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
    sources = _chosen_sources(config, args)
    book = RecordBook(config.run_state_dir, config.lock_timeout)
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
    sources = _chosen_sources(config, args)
    if len(sources) > 1:
        from .store import Store

        # Among several sources, one that has never synced is left out of the page
        # rather than failing it. The page still needs one source with versions.
        synced = [
            source for source in sources
            if Store(config.snapshots_dir, source.name).version_numbers()
        ]
        for source in sources:
            if source not in synced:
                print(f"{source.name}: no versions stored yet; not in the report", file=sys.stderr)
        sources = synced or sources
    print(write_report(config.snapshots_dir, sources, Path(args.out).expanduser()))
    return int(ExitCode.OK)
