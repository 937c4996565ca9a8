"""``scraper schedule`` and ``scraper status``: the wall-clock cron trigger across DST,
missed-run detection, job planning, the scheduler loop, a clean stop on SIGTERM, run
records and the metrics file.

Scheduler tests in this process replace each job's cron trigger with a one-second
interval, so that nothing waits for a real cron time. Tests of a real process use a
cron time that is hours away and start the run with --run-now or a catch-up.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
)
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scraper import run as run_module
from scraper.config import Column, Config, ConfigError, Schedule, Source, load_config
from scraper.records import RecordBook, parse_time
from scraper.schedule import (
    JobSpec,
    Scheduler,
    WallClockCronTrigger,
    missed_run,
    next_run,
    plan_jobs,
)
from tests.conftest import PAGE_PATH, ROOT, fixture_bytes, store_files, write_config
from tests.httpserver import Reply

SOURCE = "capi-image-builder"
UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")

# Seconds a stopped scheduler (thread or process) may take to return. The product
# waits up to STOP_WAIT (10 s) for a running sync, but a cancelled fetch gives up
# within its cancel poll interval (0.2 s).
STOP_TIMEOUT = 5.0
# Seconds an idle scheduler, with no sync running, may take to return after stop().
IDLE_STOP_TIMEOUT = 2.0
# Seconds to wait for a scheduled run or a file to appear before a test fails.
WAIT_TIMEOUT = 10.0
# Seconds the scheduler stays paused in the coalesce test, long enough to miss at
# least two one-second ticks.
PAUSE = 2.5

NOT_FOUND_PAGE = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n"


# ---------------------------------------------------------------------------
# Helpers


def write_schedule_config(
    folder: Path, url: str, fetch: dict | None = None, **top_level: object
) -> Path:
    """Write config.yaml with write_config and append top-level keys such as schedule."""
    path = write_config(folder, url, fetch=fetch)
    if top_level:
        with path.open("a", encoding="utf-8") as stream:
            stream.write(yaml.safe_dump(top_level, sort_keys=False))
    return path


def wait_for(condition, timeout: float = WAIT_TIMEOUT) -> bool:
    """Poll ``condition`` every 20 ms and return whether it became true within ``timeout``."""
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def record(folder: Path, state_dir: str = ".scraper-state"):
    return RecordBook(folder / state_dir).load(SOURCE)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def every_second(self: JobSpec, with_jitter: bool = True) -> IntervalTrigger:
    return IntervalTrigger(seconds=1, timezone=UTC)


@contextlib.contextmanager
def recorded_runs(monkeypatch, interval: bool = True):
    """Collect the results of every run_sync call. With ``interval``, jobs fire every second."""
    runs: list[list] = []
    real_run_sync = run_module.run_sync

    def recording_run_sync(*args, **kwargs):
        results = real_run_sync(*args, **kwargs)
        runs.append(results)
        return results

    with monkeypatch.context() as patch:
        patch.setattr(run_module, "run_sync", recording_run_sync)
        if interval:
            patch.setattr(JobSpec, "trigger", every_second)
        yield runs


def statuses(runs: list[list]) -> list[str]:
    return [result.status for results in runs for result in results]


class SchedulerThread:
    """A Scheduler from ./config.yaml whose run() executes in a daemon thread."""

    def __init__(self, folder: Path, run_now: bool = False) -> None:
        self.scheduler = Scheduler(load_config(folder / "config.yaml"))
        self.exit_codes: list[int] = []
        self.thread = threading.Thread(target=self._run, args=(run_now,), daemon=True)

    def _run(self, run_now: bool) -> None:
        self.exit_codes.append(
            self.scheduler.run(run_now=run_now, install_signals=False)
        )

    @property
    def apscheduler(self):
        return self.scheduler.scheduler

    def start(self) -> bool:
        """Start the thread and return whether the APScheduler loop started."""
        self.thread.start()
        return wait_for(lambda: self.apscheduler.running)

    def stop(self) -> bool:
        """Stop the scheduler and return whether run() returned within STOP_TIMEOUT."""
        self.scheduler.stop()
        self.thread.join(STOP_TIMEOUT)
        return not self.thread.is_alive()

    def __enter__(self) -> SchedulerThread:
        return self

    def __exit__(self, *exc_info) -> None:
        # A failed test must not leave a scheduler firing into the next one.
        if self.thread.is_alive():
            self.scheduler.stop()
            if self.apscheduler.running:
                self.apscheduler.shutdown(wait=False)
            self.thread.join(STOP_TIMEOUT)


def start_schedule_process(folder: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """Start ``python -m scraper schedule`` and return the process and its stderr file."""
    err_path = folder / f"schedule-{time.monotonic_ns()}.err"
    with err_path.open("wb") as err_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "scraper", "schedule", *args],
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
        )
    return process, err_path


def terminate(process: subprocess.Popen) -> int | None:
    """Send SIGTERM and return the exit code, or None if the process ran on for 10 s."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


@contextlib.contextmanager
def killed_on_exit(process: subprocess.Popen):
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def tmp_files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*.tmp"))


# ---------------------------------------------------------------------------
# WallClockCronTrigger across daylight-saving changes


def fire_times(
    trigger, start: datetime, last_day: date, limit: int = 40
) -> list[datetime]:
    """Return the fire times of ``trigger`` up to ``last_day``, fed as APScheduler feeds them.

    APScheduler passes the previous fire time and a ``now`` just after it. Here ``now``
    is one real second later, computed in UTC as the scheduler's clock is.
    """
    zone = start.tzinfo
    previous, now, fires = None, start, []
    while len(fires) < limit:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or local(fire, zone).date() > last_day:
            break
        fires.append(fire)
        previous, now = fire, fire.astimezone(UTC) + timedelta(seconds=1)
    return fires


def local(moment: datetime, zone: ZoneInfo) -> datetime:
    """Return the real local time of an instant, whatever tzinfo it carries."""
    return moment.astimezone(UTC).astimezone(zone)


def expected_fire(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    """Return the first instant the local clock shows hour:minute on ``day``.

    A time skipped when clocks go forward fires one hour later by the clock.
    """
    wall = datetime.combine(day, clock_time(hour, minute))
    # fold=0 selects the first of two repeated readings.
    moment = wall.replace(tzinfo=zone)
    if local(moment, zone).replace(tzinfo=None) != wall:
        moment = (wall + timedelta(hours=1)).replace(tzinfo=zone)
    return moment


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


DST_WINDOWS = [
    pytest.param(BERLIN, date(2026, 3, 25), date(2026, 4, 2), id="berlin-spring"),
    pytest.param(BERLIN, date(2026, 10, 22), date(2026, 11, 1), id="berlin-fall"),
    pytest.param(NEW_YORK, date(2026, 3, 5), date(2026, 3, 12), id="new-york-spring"),
    pytest.param(NEW_YORK, date(2026, 10, 29), date(2026, 11, 4), id="new-york-fall"),
]


@pytest.mark.parametrize(
    "expression", ["30 2 * * *", "0 2 * * *", "30 1 * * *", "0 3 * * *"]
)
@pytest.mark.parametrize(("zone", "first", "last"), DST_WINDOWS)
def test_once_per_local_date(expression, zone, first, last):
    minute, hour = (int(field) for field in expression.split()[:2])
    trigger = WallClockCronTrigger(expression, zone.key)
    start = datetime.combine(first, clock_time(0, 0), tzinfo=zone)

    # Datetimes that share a tzinfo compare by wall time and ignore fold, so the
    # instants are compared in UTC.
    fires = [fire.astimezone(UTC) for fire in fire_times(trigger, start, last)]
    dates = [local(fire, zone).date() for fire in fires]
    expected = [expected_fire(day, hour, minute, zone).astimezone(UTC) for day in dates]

    assert dates == days_between(first, last)
    assert all(earlier < later for earlier, later in itertools.pairwise(fires))
    assert fires == expected


def fires_on(expression: str, zone: ZoneInfo, day: date) -> list[datetime]:
    trigger = WallClockCronTrigger(expression, zone.key)
    start = datetime.combine(day - timedelta(days=1), clock_time(12, 0), tzinfo=zone)
    fires = fire_times(trigger, start, day)
    return [fire.astimezone(UTC) for fire in fires if local(fire, zone).date() == day]


def test_berlin_gap_fires_at_0330():
    fires = fires_on("30 2 * * *", BERLIN, date(2026, 3, 29))
    assert fires == [datetime(2026, 3, 29, 1, 30, tzinfo=UTC)]


def test_berlin_gap_shows_real_local_time():
    trigger = WallClockCronTrigger("30 2 * * *", "Europe/Berlin")
    fire = trigger.get_next_fire_time(None, datetime(2026, 3, 29, 0, 0, tzinfo=UTC))
    assert fire.isoformat() == "2026-03-29T03:30:00+02:00"


def test_berlin_repeated_hour_fires_once():
    fires = fires_on("30 2 * * *", BERLIN, date(2026, 10, 25))
    assert fires == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]


def test_berlin_repeated_hour_summer_offset():
    trigger = WallClockCronTrigger("30 2 * * *", "Europe/Berlin")
    fire = trigger.get_next_fire_time(None, datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    assert fire.utcoffset() == timedelta(hours=2)


def test_new_york_gap_fires_at_0330():
    fires = fires_on("30 2 * * *", NEW_YORK, date(2026, 3, 8))
    assert fires == [datetime(2026, 3, 8, 7, 30, tzinfo=UTC)]


def test_new_york_repeated_hour_fires_once():
    fires = fires_on("30 1 * * *", NEW_YORK, date(2026, 11, 1))
    assert fires == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("expression", "zone", "now"),
    [
        # 02:10 CET, in the second pass through 02:00-03:00 on the night clocks go back
        ("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 25, 1, 10, tzinfo=UTC)),
        # 01:10 EST, in the second pass through 01:00-02:00
        ("30 1 * * *", "America/New_York", datetime(2026, 11, 1, 6, 10, tzinfo=UTC)),
    ],
    ids=["berlin", "new-york"],
)
def test_repeated_hour_start_not_past(expression, zone, now):
    # A scheduler started during the repeated hour must not get a fire time that
    # has already passed, because APScheduler would run such a job at once.
    fire = WallClockCronTrigger(expression, zone).get_next_fire_time(None, now)
    assert fire.astimezone(UTC) > now


def test_apscheduler_cron_doubles_repeated_hour():
    # APScheduler 3.11 CronTrigger fires at both occurrences of a repeated local
    # time, which is why the product has its own trigger.
    trigger = CronTrigger.from_crontab("30 2 * * *", timezone=BERLIN)
    start = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
    fires = fire_times(trigger, start, date(2026, 10, 25))
    on_change_day = [
        fire.astimezone(UTC) for fire in fires if local(fire, BERLIN).day == 25
    ]
    assert on_change_day == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    ]


# ---------------------------------------------------------------------------
# missed_run and plan_jobs


def daily_spec(cron: str = "0 2 * * *", zone: str = "UTC") -> JobSpec:
    return JobSpec(
        name=SOURCE, schedule=Schedule(cron=cron, timezone=zone), sources=(SOURCE,)
    )


# The last fire time of "0 2 * * *" in UTC before NOON is 2026-12-04 02:00 UTC.
NOON = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_missed_run_check_before_fire():
    assert (
        missed_run(daily_spec(), [datetime(2026, 12, 4, 1, 59, tzinfo=UTC)], NOON)
        is True
    )


def test_missed_run_check_days_ago():
    assert missed_run(daily_spec(), [NOON - timedelta(days=2)], NOON) is True


def test_missed_run_check_after_fire():
    assert (
        missed_run(daily_spec(), [datetime(2026, 12, 4, 2, 0, 5, tzinfo=UTC)], NOON)
        is False
    )


def test_missed_run_never_checked():
    assert missed_run(daily_spec(), [None], NOON) is False


def test_missed_run_no_sources():
    assert missed_run(daily_spec(), [], NOON) is False


def test_missed_run_oldest_check_counts():
    checks = [
        datetime(2026, 12, 4, 3, 0, tzinfo=UTC),
        datetime(2026, 12, 4, 1, 0, tzinfo=UTC),
    ]
    assert missed_run(daily_spec(), checks, NOON) is True


def test_missed_run_in_time_zone():
    # 02:00 in Kolkata is 20:30 UTC of the day before, so a check at 21:00 UTC
    # came after the last fire time.
    check = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
    assert missed_run(daily_spec(zone="Asia/Kolkata"), [check], NOON) is False


def make_source(name: str, schedule: Schedule | None = None) -> Source:
    column = Column("Kubernetes Version", "kubernetes_version", "version")
    return Source(
        name=name,
        url="http://127.0.0.1:9/",
        key="kubernetes_version",
        columns=(column,),
        schedule=schedule or Schedule(),
    )


def make_config(tmp_path: Path, *sources: Source) -> Config:
    return Config(
        path=tmp_path / "config.yaml",
        snapshots_dir=tmp_path / "snapshots",
        sources=sources,
    )


def test_plan_equal_schedules_share_job(tmp_path):
    nightly = Schedule(cron="0 2 * * *", timezone="Europe/Berlin")
    config = make_config(
        tmp_path,
        make_source("a", nightly),
        make_source("b", Schedule("0 2 * * *", "Europe/Berlin")),
    )
    jobs = plan_jobs(config)
    assert [(job.name, job.sources, job.schedule) for job in jobs] == [
        ("a+b", ("a", "b"), nightly)
    ]


def test_plan_own_schedule_own_job(tmp_path):
    nightly = Schedule(cron="0 2 * * *")
    hourly = Schedule(cron="15 * * * *")
    config = make_config(
        tmp_path,
        make_source("a", nightly),
        make_source("b", hourly),
        make_source("c", nightly),
    )
    jobs = plan_jobs(config)
    assert [(job.sources, job.schedule) for job in jobs] == [
        (("a", "c"), nightly),
        (("b",), hourly),
    ]


def test_plan_chosen_sources_only(tmp_path):
    config = make_config(tmp_path, make_source("a"), make_source("b"))
    jobs = plan_jobs(config, [config.source("b")])
    assert [job.sources for job in jobs] == [("b",)]


def test_plan_invalid_cron(tmp_path):
    config = make_config(tmp_path, make_source("a", Schedule(cron="61 * * * *")))
    with pytest.raises(ConfigError) as caught:
        plan_jobs(config)
    assert "invalid cron expression '61 * * * *'" in str(caught.value)


def test_plan_from_config_file(workdir):
    text = (
        "schedule:\n"
        "  cron: '0 2 * * *'\n"
        "  timezone: Europe/Berlin\n"
        "sources:\n"
        "  - {name: a, url: 'http://127.0.0.1:9/a', key: k, columns: [{header: K, field: k}]}\n"
        "  - {name: b, url: 'http://127.0.0.1:9/b', key: k, columns: [{header: K, field: k}],\n"
        "     schedule: {cron: '15 4 * * 1-5'}}\n"
        "  - {name: c, url: 'http://127.0.0.1:9/c', key: k, columns: [{header: K, field: k}],\n"
        "     schedule: {timezone: Europe/Berlin}}\n"
    )
    (workdir / "config.yaml").write_text(text, encoding="utf-8")
    jobs = plan_jobs(load_config(workdir / "config.yaml"))
    assert [
        (job.sources, job.schedule.cron, job.schedule.timezone) for job in jobs
    ] == [
        (("a", "c"), "0 2 * * *", "Europe/Berlin"),
        (("b",), "15 4 * * 1-5", "Europe/Berlin"),
    ]


def test_next_run_in_schedule_zone():
    moment = next_run(daily_spec(zone="Asia/Kolkata"), NOON)
    assert moment.isoformat() == "2026-12-05T02:00:00+05:30"


# ---------------------------------------------------------------------------
# The scheduler loop, in this process


def test_runs_repeat(workdir, server, monkeypatch):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(workdir, server.url(PAGE_PATH))
    with (
        recorded_runs(monkeypatch) as runs,
        SchedulerThread(workdir, run_now=True) as running,
    ):
        assert running.start()
        assert wait_for(lambda: len(runs) >= 2)
        stopped = running.stop()
    assert stopped
    assert running.exit_codes == [0]
    assert statuses(runs)[:2] == ["changed", "unchanged"]


def test_failed_run_not_fatal(workdir, server, monkeypatch):
    server.route(
        PAGE_PATH, Reply(status=500), Reply.html(fixture_bytes("matrix-3rows-asc.html"))
    )
    write_config(workdir, server.url(PAGE_PATH), fetch={"retries": 0})
    with (
        recorded_runs(monkeypatch) as runs,
        SchedulerThread(workdir, run_now=True) as running,
    ):
        assert running.start()
        assert wait_for(lambda: len(runs) >= 2)
        stopped = running.stop()
    assert stopped
    assert statuses(runs)[:2] == ["error", "changed"]
    assert "HTTP 500" in str(runs[0][0].error)
    assert record(workdir).consecutive_failures == 0


def test_hung_fetch_cut_off(workdir, server, monkeypatch):
    server.route(
        PAGE_PATH,
        Reply(behaviour="hang"),
        Reply.html(fixture_bytes("matrix-3rows-asc.html")),
    )
    write_config(workdir, server.url(PAGE_PATH), fetch={"deadline": 1, "retries": 0})
    with (
        recorded_runs(monkeypatch) as runs,
        SchedulerThread(workdir, run_now=True) as running,
    ):
        assert running.start()
        assert wait_for(lambda: len(runs) >= 2)
        stopped = running.stop()
    assert stopped
    assert statuses(runs)[:2] == ["error", "changed"]
    assert runs[0][0].error.stage == "fetch"


def test_hung_fetch_message(workdir, server, scraper):
    # The deadline (1 s) is shorter than read_timeout (2 s), so the fetch gives up
    # after 1 s, and the message must name the time it waited.
    server.route(PAGE_PATH, Reply(behaviour="hang"))
    write_config(workdir, server.url(PAGE_PATH), fetch={"deadline": 1, "retries": 0})
    result = scraper("sync")
    assert result.code == 3
    assert "after 2 s" not in result.err
    assert "deadline of 1 s" in result.err or "after 1 s" in result.err


def test_run_now_at_start(workdir, server, monkeypatch):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(workdir, server.url(PAGE_PATH))
    with (
        recorded_runs(monkeypatch, interval=False) as runs,
        SchedulerThread(workdir, run_now=True) as running,
    ):
        assert running.start()
        assert wait_for(lambda: len(runs) >= 1)
        stopped = running.stop()
    assert stopped
    assert statuses(runs) == ["changed"]
    assert record(workdir).latest_version == 1


def test_stop_during_hung_fetch(workdir, server, monkeypatch, scraper):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(
        workdir, server.url(PAGE_PATH), fetch={"read_timeout": 60, "deadline": 120}
    )
    assert scraper("sync").code == 0
    before = store_files(workdir / "snapshots")
    record_before = store_files(workdir / ".scraper-state" / "sources")
    server.route(PAGE_PATH, Reply(behaviour="hang"))

    with (
        recorded_runs(monkeypatch, interval=False) as runs,
        SchedulerThread(workdir, run_now=True) as running,
    ):
        assert running.start()
        assert wait_for(lambda: len(server.requests_for(PAGE_PATH)) == 2)
        stopped = running.stop()

    assert stopped
    assert running.exit_codes == [0]
    assert runs == [[]]
    assert store_files(workdir / "snapshots") == before
    assert store_files(workdir / ".scraper-state" / "sources") == record_before


def test_stop_before_start(workdir, server):
    # SIGTERM may arrive after the handlers are installed but before the scheduler
    # loop starts; the process must still stop instead of running on.
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(workdir, server.url(PAGE_PATH))
    with SchedulerThread(workdir) as running:
        running.scheduler.stop()
        running.thread.start()
        running.thread.join(IDLE_STOP_TIMEOUT)
        returned = not running.thread.is_alive()
    assert returned


def test_missed_runs_coalesce(workdir, server, monkeypatch):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(workdir, server.url(PAGE_PATH))
    events = []
    watched = (
        EVENT_JOB_SUBMITTED
        | EVENT_JOB_EXECUTED
        | EVENT_JOB_MISSED
        | EVENT_JOB_ERROR
        | EVENT_JOB_MAX_INSTANCES
    )
    with (
        recorded_runs(monkeypatch) as runs,
        SchedulerThread(workdir, run_now=True) as running,
    ):
        running.apscheduler.add_listener(events.append, watched)
        assert running.start()
        assert wait_for(lambda: len(runs) >= 1)
        running.apscheduler.pause()
        paused_at = datetime.now(UTC)
        time.sleep(PAUSE)
        running.apscheduler.resume()
        assert wait_for(
            lambda: any(
                event.code == EVENT_JOB_EXECUTED
                and event.scheduled_run_time > paused_at
                for event in events
            )
        )
        stopped = running.stop()

    # APScheduler submits every run time missed during the pause at once, so the
    # first submission after it shows whether they were coalesced into one run.
    catch_up = next(
        event
        for event in events
        if event.code == EVENT_JOB_SUBMITTED
        and event.scheduled_run_times[0] > paused_at
    )
    executed = [
        event.scheduled_run_time for event in events if event.code == EVENT_JOB_EXECUTED
    ]
    assert stopped
    assert len(catch_up.scheduled_run_times) == 1
    assert catch_up.scheduled_run_times[0] in executed
    assert [
        event.code
        for event in events
        if event.code not in (EVENT_JOB_SUBMITTED, EVENT_JOB_EXECUTED)
    ] == []


# ---------------------------------------------------------------------------
# The scheduler as a real process


def test_sigterm_during_slow_run(workdir, server):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(
        workdir, server.url(PAGE_PATH), fetch={"read_timeout": 60, "deadline": 120}
    )
    metrics = workdir / ".scraper-state" / "metrics.prom"

    process, first_err = start_schedule_process(workdir, "--run-now")
    with killed_on_exit(process):
        # The metrics file is written last, after the snapshot and the run record.
        assert wait_for(metrics.exists)
        first_code = terminate(process)
    before = store_files(workdir / "snapshots")

    # The page changed but arrives one byte every 50 ms, so the run is still
    # reading it when SIGTERM arrives.
    slow = Reply.html(
        fixture_bytes("matrix-4rows-asc.html"), behaviour="drip", drip_interval=0.05
    )
    server.route(PAGE_PATH, slow)
    process, second_err = start_schedule_process(workdir, "--run-now")
    with killed_on_exit(process):
        assert wait_for(lambda: len(server.requests_for(PAGE_PATH)) == 2)
        time.sleep(0.3)
        second_code = terminate(process)

    first_log = first_err.read_text(encoding="utf-8")
    second_log = second_err.read_text(encoding="utf-8")
    assert first_code == 0, first_log
    assert "time zone UTC" in first_log
    assert "next run " in first_log
    assert sorted(before) == [
        f"{SOURCE}/.lock",
        f"{SOURCE}/captures/000001.html.gz",
        f"{SOURCE}/latest.yaml",
        f"{SOURCE}/state.yaml",
        f"{SOURCE}/versions/000001.yaml",
    ]
    assert second_code == 0, second_log
    assert "received SIGTERM; stopping" in second_log
    assert "sync abandoned because the process is stopping" in second_log
    assert store_files(workdir / "snapshots") == before
    assert tmp_files(workdir) == []


def test_catch_up_after_restart(workdir, server):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    schedule = {"cron": "0 2 * * *", "timezone": "Europe/Berlin"}
    path = write_schedule_config(workdir, server.url(PAGE_PATH), schedule=schedule)
    two_days_ago = utc_text(datetime.now(UTC) - timedelta(days=2))
    with RecordBook(workdir / ".scraper-state").updating(SOURCE) as old:
        old.last_check = two_days_ago
    expected_next = next_run(plan_jobs(load_config(path))[0])
    latest = workdir / "snapshots" / SOURCE / "latest.yaml"

    process, err_path = start_schedule_process(workdir)
    with killed_on_exit(process):
        caught_up = wait_for(
            lambda: latest.exists() and record(workdir).last_check != two_days_ago
        )
        code = terminate(process)

    log = err_path.read_text(encoding="utf-8")
    logged_next = re.search(
        r"next run (\S+); running now to catch up a missed run", log
    )
    assert caught_up, log
    assert code == 0, log
    assert "in time zone Europe/Berlin" in log
    assert logged_next is not None, log
    assert datetime.fromisoformat(logged_next.group(1)) == expected_next
    assert logged_next.group(1) == expected_next.isoformat()
    assert record(workdir).latest_version == 1


def test_no_catch_up_after_recent_check(workdir, server, monkeypatch):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(workdir, server.url(PAGE_PATH))
    with RecordBook(workdir / ".scraper-state").updating(SOURCE) as recent:
        recent.last_check = utc_text(datetime.now(UTC))
    with (
        recorded_runs(monkeypatch, interval=False) as runs,
        SchedulerThread(workdir) as running,
    ):
        assert running.start()
        jobs = running.apscheduler.get_jobs()
        stopped = running.stop()
    assert stopped
    assert runs == []
    assert [job.next_run_time for job in jobs] == [
        next_run(daily_spec(), datetime.now(UTC))
    ]


# ---------------------------------------------------------------------------
# scraper status


STATUS_KEYS = [
    "source",
    "last_check",
    "last_success",
    "last_change",
    "last_result",
    "latest_version",
    "consecutive_failures",
    "last_error",
    "next_run",
]
TIME_PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def status_json(scraper) -> dict:
    result = scraper("status", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert len(data["sources"]) == 1
    return data["sources"][0]


def status_text_fields(scraper) -> dict[str, str]:
    result = scraper("status")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    fields = {"source": lines[0]}
    for line in lines[1:]:
        name, _, value = line.strip().partition(": ")
        fields[name.rstrip(":")] = value.strip()
    return fields


def as_text(value) -> str:
    return "-" if value is None else str(value)


@pytest.fixture
def kolkata_schedule(workdir, server):
    """A config whose schedule runs at 02:00 in Asia/Kolkata (UTC+05:30, no DST)."""
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    schedule = {"cron": "0 2 * * *", "timezone": "Asia/Kolkata"}
    write_schedule_config(
        workdir, server.url(PAGE_PATH), fetch={"retries": 0}, schedule=schedule
    )
    return server


def test_status_before_first_run(kolkata_schedule, workdir, scraper):
    entry = status_json(scraper)
    assert entry["last_check"] is None
    assert entry["latest_version"] is None
    assert entry["consecutive_failures"] == 0


def test_status_after_success(kolkata_schedule, workdir, scraper):
    assert scraper("sync").code == 0
    stored = record(workdir)
    entry = status_json(scraper)

    assert list(entry) == STATUS_KEYS
    assert entry["source"] == SOURCE
    assert TIME_PATTERN.match(entry["last_check"])
    assert entry["last_check"] == stored.last_check
    assert entry["last_success"] == stored.last_check
    assert entry["last_change"] == stored.last_check
    assert entry["last_result"] == "changed"
    assert entry["latest_version"] == 1
    assert entry["consecutive_failures"] == 0
    assert entry["last_error"] is None


def test_status_next_run_zone(kolkata_schedule, workdir, scraper):
    before = datetime.now(UTC)
    moment = datetime.fromisoformat(status_json(scraper)["next_run"])
    assert moment.utcoffset() == timedelta(hours=5, minutes=30)
    assert (moment.hour, moment.minute, moment.second) == (2, 0, 0)
    assert before < moment <= before + timedelta(days=1)


def test_status_after_failure(kolkata_schedule, workdir, scraper):
    assert scraper("sync").code == 0
    success = status_json(scraper)
    kolkata_schedule.route(PAGE_PATH, Reply.html(NOT_FOUND_PAGE, status=404))
    assert scraper("sync").code == 3
    entry = status_json(scraper)

    assert TIME_PATTERN.match(entry["last_check"])
    assert entry["last_check"] >= success["last_check"]
    assert entry["last_success"] == success["last_success"]
    assert entry["last_change"] == success["last_change"]
    assert entry["last_result"] == "error"
    assert entry["latest_version"] == 1
    assert entry["consecutive_failures"] == 1
    assert "HTTP 404 Not Found" in entry["last_error"]


def test_status_text_matches_json(kolkata_schedule, workdir, scraper):
    assert scraper("sync").code == 0
    kolkata_schedule.route(PAGE_PATH, Reply.html(NOT_FOUND_PAGE, status=404))
    assert scraper("sync").code == 3
    entry = status_json(scraper)
    fields = status_text_fields(scraper)
    assert fields == {name: as_text(value) for name, value in entry.items()}


# ---------------------------------------------------------------------------
# Metrics file


METRIC_LINE = re.compile(
    r'^(?P<name>[a-z_]+)\{source="(?P<source>[^"]*)"\} (?P<value>\S+)$'
)


def read_metrics(path: Path) -> dict[str, dict[str, float]]:
    """Return {metric name: {source label: value}} from a Prometheus text file."""
    metrics: dict[str, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        assert match, f"not a metric line: {line!r}"
        metrics.setdefault(match["name"], {})[match["source"]] = float(match["value"])
    return metrics


def metric(metrics: dict, name: str) -> float | None:
    return metrics.get(name, {}).get(SOURCE)


@pytest.fixture
def metrics_setup(workdir, server):
    """A config with its own state_dir and metrics_file paths."""
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_schedule_config(
        workdir,
        server.url(PAGE_PATH),
        fetch={"retries": 0},
        state_dir="state",
        metrics_file="export/scraper.prom",
    )
    return server


def test_metrics_after_success(metrics_setup, workdir, scraper):
    assert scraper("sync").code == 0
    metrics = read_metrics(workdir / "export" / "scraper.prom")
    last_success = parse_time(record(workdir, "state").last_success).timestamp()

    assert metric(metrics, "scraper_last_success_timestamp_seconds") == last_success
    assert metric(metrics, "scraper_last_check_timestamp_seconds") == last_success
    assert metric(metrics, "scraper_consecutive_failures") == 0
    assert metric(metrics, "scraper_rows") == 3
    assert metric(metrics, "scraper_latest_version") == 1
    assert metric(metrics, "scraper_changes_total") == 1


def test_metrics_types(metrics_setup, workdir, scraper):
    assert scraper("sync").code == 0
    text = (workdir / "export" / "scraper.prom").read_text(encoding="utf-8")
    assert "# TYPE scraper_last_success_timestamp_seconds gauge\n" in text
    assert "# TYPE scraper_consecutive_failures gauge\n" in text
    assert "# TYPE scraper_rows gauge\n" in text
    assert "# TYPE scraper_changes_total counter\n" in text


def test_metrics_paths_from_config(metrics_setup, workdir, scraper):
    assert scraper("sync").code == 0
    assert (workdir / "state" / "sources" / f"{SOURCE}.yaml").is_file()
    assert not (workdir / "state" / "metrics.prom").exists()
    assert not (workdir / ".scraper-state").exists()


def test_metrics_count_failures(metrics_setup, workdir, scraper):
    assert scraper("sync").code == 0
    success = read_metrics(workdir / "export" / "scraper.prom")
    metrics_setup.route(PAGE_PATH, Reply.html(NOT_FOUND_PAGE, status=404))
    assert scraper("sync").code == 3
    after_one = read_metrics(workdir / "export" / "scraper.prom")
    assert scraper("sync").code == 3
    after_two = read_metrics(workdir / "export" / "scraper.prom")

    assert metric(after_one, "scraper_consecutive_failures") == 1
    assert metric(after_two, "scraper_consecutive_failures") == 2
    assert metric(after_two, "scraper_last_success_timestamp_seconds") == metric(
        success, "scraper_last_success_timestamp_seconds"
    )
    assert metric(after_two, "scraper_rows") == 3
    assert metric(after_two, "scraper_changes_total") == 1


def test_metrics_success_resets(metrics_setup, workdir, scraper):
    assert scraper("sync").code == 0
    metrics_setup.route(PAGE_PATH, Reply.html(NOT_FOUND_PAGE, status=404))
    assert scraper("sync").code == 3
    assert scraper("sync").code == 3
    metrics_setup.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    assert scraper("sync").code == 0
    metrics = read_metrics(workdir / "export" / "scraper.prom")

    assert metric(metrics, "scraper_consecutive_failures") == 0
    assert metric(metrics, "scraper_rows") == 4
    assert metric(metrics, "scraper_latest_version") == 2
    assert metric(metrics, "scraper_changes_total") == 2
