"""Measuring tools for bench.py: a loopback page server, process runs, statistics."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import tempfile
import threading
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Page server


@dataclass
class Route:
    """A page served at one path. With an ETag, a matching If-None-Match gets 304."""

    body: bytes
    etag: str | None = None
    statuses: list[int] = field(default_factory=list)


class InFlight:
    """A thread-safe count of requests being handled, with its maximum since a reset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.maximum = 0

    def reset(self) -> None:
        with self._lock:
            self.maximum = self.current

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        with self._lock:
            self.current += 1
            self.maximum = max(self.maximum, self.current)
        try:
            yield
        finally:
            with self._lock:
                self.current -= 1


class PageServer:
    """An HTTP/1.1 server on 127.0.0.1 that serves fixed pages from memory.

    Connections stay open between requests (keep-alive), as a web server's would.
    Each route records the status of every response it sent. Every response waits
    ``delay`` seconds before its status line goes out, which models a network round
    trip. ``in_flight`` counts the requests this server is handling, from the parsed
    request line until the last byte of the response is written. Each counter in
    ``shared`` counts them as well, so one counter can span several servers.
    """

    def __init__(self, delay: float = 0.0, shared: Sequence[InFlight] = ()) -> None:
        self.routes: dict[str, Route] = {}
        self.connections = 0
        self.delay = delay
        self.in_flight = InFlight()
        counters = (self.in_flight, *shared)
        routes = self.routes
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The headers and the body go out in separate writes. With Nagle's
            # algorithm on, the body then waits for the client's delayed ACK of the
            # headers: about 40 ms per response when measured on this Linux machine.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                # One handler serves one TCP connection, however many requests it carries.
                server.connections += 1
                super().setup()

            def do_GET(self) -> None:
                with contextlib.ExitStack() as stack:
                    for counter in counters:
                        stack.enter_context(counter.counting())
                    if server.delay:
                        time.sleep(server.delay)
                    self.respond()

            def respond(self) -> None:
                route = routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                if (
                    route.etag is not None
                    and self.headers.get("If-None-Match") == route.etag
                ):
                    route.statuses.append(304)
                    self.send_response(304)
                    self.send_header("ETag", route.etag)
                    self.end_headers()
                    return
                route.statuses.append(200)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(route.body)))
                if route.etag is not None:
                    self.send_header("ETag", route.etag)
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def add(self, path: str, body: bytes, etag: str | None = None) -> str:
        """Serve ``body`` at ``path`` and return its URL."""
        self.routes[path] = Route(body, etag)
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"


# Process runs


@dataclass
class ProcessRun:
    """One finished process: wall time, peak resident set size and output."""

    seconds: float
    peak_rss_kib: int
    returncode: int
    stdout: str
    stderr: str


# Settings removed from the environment of every measured process. Proxy settings
# would send loopback requests elsewhere. PYTHONDONTWRITEBYTECODE would stop the
# warm-up round from writing the bytecode cache, so every run of the editable
# install would compile scraper's sources again, which no installed copy does:
# pip writes the cache of an installed package at install time.
REMOVED_SETTINGS = ("http_proxy", "https_proxy", "all_proxy", "pythondontwritebytecode")


def child_environment() -> dict[str, str]:
    """Return this environment without REMOVED_SETTINGS and with loopback unproxied."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in REMOVED_SETTINGS
    }
    environment["NO_PROXY"] = environment["no_proxy"] = "127.0.0.1,localhost"
    return environment


# GNU time reports the peak RSS of the one process it starts. os.wait4 cannot: a child
# started by vfork and exec (as subprocess does) inherits the parent's peak, so every
# child of a large benchmark process would show at least the benchmark's own size.
GNU_TIME = Path("/usr/bin/time")


def run_process(argv: Sequence[str], cwd: Path, check: bool = True) -> ProcessRun:
    """Run ``argv`` to the end and measure its wall time and peak RSS.

    The peak RSS (maximum resident set size, KiB) comes from GNU time's ``%M`` when
    /usr/bin/time exists. Without it, it comes from os.wait4 and is at least this
    benchmark process's own peak, so it is then an upper bound. Output goes to
    temporary files, so a full pipe cannot stall the child while it is timed. Raises
    RuntimeError when ``check`` is set and the exit code is not 0.
    """
    argv = [str(part) for part in argv]
    with tempfile.TemporaryDirectory(prefix="run-") as scratch:
        usage_file = Path(scratch) / "rss"
        command = argv
        if GNU_TIME.exists():
            command = [
                str(GNU_TIME),
                "--quiet",
                "-f",
                "%M",
                "-o",
                str(usage_file),
                *argv,
            ]
        with (
            open(Path(scratch) / "out", "w+b") as out,
            open(Path(scratch) / "err", "w+b") as err,
        ):
            started = time.perf_counter()
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=child_environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            # Popen must not wait for the child that wait4 already reaped.
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode("utf-8", "replace")
            stderr = err.read().decode("utf-8", "replace")
        peak = usage.ru_maxrss
        if usage_file.exists() and usage_file.read_text().strip().isdigit():
            peak = int(usage_file.read_text())
    run = ProcessRun(seconds, peak, process.returncode, stdout, stderr)
    if check and run.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {run.returncode} in {cwd}:\n{run.stdout}{run.stderr}"
        )
    return run


def rss_source() -> str:
    """Name where run_process takes the peak RSS from, for the report."""
    if GNU_TIME.exists():
        return "GNU time's `%M` (/usr/bin/time), the maximum RSS of the measured process alone"
    return (
        "`os.wait4` (`ru_maxrss`); without /usr/bin/time this includes the benchmark "
        "process's own peak, so it is an upper bound"
    )


def rotated(items: Sequence, turn: int) -> list:
    """Return ``items`` rotated by ``turn`` places, so each one takes every position."""
    shift = turn % len(items)
    return list(items[shift:]) + list(items[:shift])


# Statistics


@dataclass
class Samples:
    """Repeated measurements of one contender, in seconds, and their peak RSS in KiB."""

    name: str
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)

    def add(self, run: ProcessRun) -> ProcessRun:
        self.seconds.append(run.seconds)
        self.rss_kib.append(run.peak_rss_kib)
        return run

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def quartiles(self) -> tuple[float, float]:
        return quartiles(self.seconds)

    @property
    def rss_mib(self) -> float:
        return statistics.median(self.rss_kib) / 1024 if self.rss_kib else float("nan")

    def spread(self, scale: float = 1000, digits: int = 1) -> str:
        """Return the interquartile range, for example ``112.0–118.5``."""
        low, high = self.quartiles
        return f"{low * scale:.{digits}f}–{high * scale:.{digits}f}"


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """Return the first and third quartile; both are the value itself for one sample."""
    if len(values) < 2:
        return values[0], values[0]
    first, _, third = statistics.quantiles(values, n=4, method="inclusive")
    return first, third


def ratio(numerator: Samples, denominator: Samples) -> float:
    """Return the ratio of the medians."""
    return numerator.median / denominator.median


def paired_ratio_spread(numerator: Samples, denominator: Samples) -> str:
    """Return the interquartile range of the per-repetition ratios.

    Contenders run interleaved, so the i-th samples of both shared the same moment
    of machine noise.
    """
    pairs = [a / b for a, b in zip(numerator.seconds, denominator.seconds)]
    low, high = quartiles(pairs)
    return f"{low:.2f}–{high:.2f}"


# In-process timing


def loops_for(function: Callable[[], object], minimum_seconds: float) -> int:
    """Return how many calls of ``function`` take at least ``minimum_seconds``."""
    loops, _ = timeit.Timer(function).autorange()
    timer = timeit.Timer(function)
    while timer.timeit(loops) < minimum_seconds:
        loops *= 2
    return loops


def time_calls(
    contenders: dict[str, Callable[[], object]], repeats: int, minimum_seconds: float
) -> dict[str, Samples]:
    """Time each contender per call, as timeit does, with the contenders interleaved.

    Each repeat runs every contender's loop once, in a rotated order. A sample is the
    loop's time divided by its number of calls.
    """
    loops = {
        name: loops_for(function, minimum_seconds)
        for name, function in contenders.items()
    }
    samples = {name: Samples(name) for name in contenders}
    for turn in range(repeats):
        for name in rotated(list(contenders), turn):
            elapsed = timeit.Timer(contenders[name]).timeit(loops[name])
            samples[name].seconds.append(elapsed / loops[name])
    return samples


# Markdown


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return a Markdown table; numbers are right-aligned."""
    align = [
        "---:" if rows and isinstance(rows[0][i], (int, float)) else "---"
        for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
