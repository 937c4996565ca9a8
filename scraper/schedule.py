"""``scraper schedule``: run the sync on a cron schedule with APScheduler 3.x.

Sources that share a schedule run as one job. Job defaults give a generous misfire
grace time, coalesce missed runs into one and allow one running instance per job. A
run missed while the process was down runs once at start, found from the last check
time in the run records. SIGTERM and SIGINT stop the scheduler; a sync in
progress gives up before it touches a file, and the process exits within seconds.

Daylight-saving time: the cron expression is matched against the local wall clock
of the schedule's time zone, and each matching wall-clock time fires once:

- a time that does not exist (02:30 on the night clocks go forward) fires at the
  same instant one hour later by the clock (03:30 summer time);
- a time that exists twice (02:30 on the night clocks go back) fires at its first
  occurrence only.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from .config import Config, ConfigError, Schedule, Source, expand_weekdays

log = logging.getLogger(__name__)

# Seconds that stopping waits for a running sync to notice and give up.
STOP_WAIT = 10.0


class WallClockCronTrigger(BaseTrigger):
    """A crontab trigger that fires once per matching local time, across DST changes.

    APScheduler's CronTrigger (3.11) fires twice at a local time that repeats when
    clocks go back. This trigger evaluates the expression on naive wall-clock times
    and maps each result to one instant, as the module documentation describes.
    """

    def __init__(self, expression: str, timezone_name: str, jitter: int | None = None) -> None:
        self.expression = expression
        self.timezone = ZoneInfo(timezone_name)
        self.jitter = jitter or None
        # Evaluating in UTC, which has no DST, makes the cron logic work on wall time.
        self._wall_clock = CronTrigger.from_crontab(
            crontab_for_apscheduler(expression), timezone=timezone.utc
        )

    def get_next_fire_time(self, previous_fire_time, now):
        start = self._wall(now)
        if previous_fire_time is not None:
            start = max(start, self._wall(previous_fire_time) + timedelta(seconds=1))
        while True:
            wall_time = self._wall_clock.get_next_fire_time(None, start.replace(tzinfo=timezone.utc))
            if wall_time is None:
                return None
            # fold=0 picks the first of two repeated times, and moves a time in the
            # spring-forward gap past it. The round trip through UTC then gives the
            # real local time, 03:30 rather than the nonexistent 02:30.
            local = wall_time.replace(tzinfo=self.timezone, fold=0)
            fire_time = local.astimezone(timezone.utc).astimezone(self.timezone)
            # During the repeated hour the first 02:30 may already be past; that
            # night's run was due then, so look for the next one.
            if now.tzinfo is None or fire_time > now:
                return self._apply_jitter(fire_time, self.jitter, now)
            start = wall_time.replace(tzinfo=None) + timedelta(seconds=1)

    def _wall(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            return moment.replace(microsecond=0)
        return moment.astimezone(self.timezone).replace(tzinfo=None, microsecond=0)

    def __str__(self) -> str:
        return f"cron[{self.expression!r}, {self.timezone.key}]"


_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_for_apscheduler(expression: str) -> str:
    """Rewrite the day-of-week field of a crontab line with day names.

    APScheduler 3.x reads a numeric day of week with 0 as Monday, while crontab
    uses 0 (and 7) for Sunday, so "0 2 * * 1-5" would run Tuesday to Saturday.
    Names mean the same to both.
    """
    fields = expression.split()
    if len(fields) == 5 and fields[4] != "*":
        fields[4] = ",".join(_WEEKDAY_NAMES[day] for day in expand_weekdays(fields[4]))
    return " ".join(fields)


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: the sources that share a schedule."""

    name: str
    schedule: Schedule
    sources: tuple[str, ...]

    def trigger(self, with_jitter: bool = True) -> WallClockCronTrigger:
        jitter = self.schedule.jitter if with_jitter else None
        return WallClockCronTrigger(self.schedule.cron, self.schedule.timezone, jitter)


def plan_jobs(config: Config, sources: list[Source] | None = None) -> list[JobSpec]:
    """Group the sources by schedule into jobs; raise ConfigError for a bad cron."""
    groups: dict[Schedule, list[str]] = {}
    for source in sources or config.sources:
        groups.setdefault(source.schedule, []).append(source.name)
    jobs = []
    for schedule, names in groups.items():
        spec = JobSpec(name="+".join(names), schedule=schedule, sources=tuple(names))
        try:
            spec.trigger()
        except ValueError as error:
            raise ConfigError(
                f"invalid cron expression {schedule.cron!r} for {spec.name}: {error}",
                where=str(config.path),
                hint="write 'minute hour day month weekday', for example '0 2 * * *'",
            ) from None
        jobs.append(spec)
    return jobs


def next_run(spec: JobSpec, now: datetime | None = None) -> datetime | None:
    """Return when the job runs next, without jitter."""
    now = now or datetime.now(timezone.utc)
    return spec.trigger(with_jitter=False).get_next_fire_time(None, now)


def missed_run(spec: JobSpec, last_checks: list[datetime | None], now: datetime) -> bool:
    """Return whether a scheduled run fell between the last check and ``now``.

    A source that was never checked does not count as missed: the first run of a new
    installation waits for its schedule, or for ``--run-now``.
    """
    known = [moment for moment in last_checks if moment is not None]
    if not known:
        return False
    due = spec.trigger(with_jitter=False).get_next_fire_time(None, min(known))
    return due is not None and due <= now


class Scheduler:
    """The foreground scheduler process and its clean stop."""

    def __init__(self, config: Config, sources: list[Source] | None = None) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.blocking import BlockingScheduler

        self.config = config
        self.jobs = plan_jobs(config, sources)
        self.stop_event = threading.Event()
        self.running = 0
        self.idle = threading.Condition()
        grace = max(spec.schedule.misfire_grace_time for spec in self.jobs)
        self.scheduler = BlockingScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(max_workers=len(self.jobs))},
            job_defaults={"misfire_grace_time": grace, "coalesce": True, "max_instances": 1},
        )

    def run(self, run_now: bool = False, install_signals: bool = True) -> int:
        """Run until stopped; return the exit code."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

        if any(source.notify.urls for source in self.config.sources):
            from .notify import check_notify_settings

            check_notify_settings(self.config)
        now = datetime.now(timezone.utc)
        for spec in self.jobs:
            self.add_job(spec, now, run_now)
        self.scheduler.add_listener(self.on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        if install_signals:
            self.install_signal_handlers()
        if self.stop_event.is_set():
            log.info("stopped before the first run")
            return 0
        self.scheduler.start()
        self.wait_for_running_jobs()
        log.info("scheduler stopped")
        return 0

    def add_job(self, spec: JobSpec, now: datetime, run_now: bool) -> None:
        from .records import RecordBook, parse_time

        book = RecordBook(self.config.run_state_dir, self.config.lock_timeout)
        last_checks = [parse_time(book.load(name).last_check) for name in spec.sources]
        catch_up = missed_run(spec, last_checks, now)
        first_run = now if (run_now or catch_up) else None
        job = self.scheduler.add_job(
            self.run_job,
            spec.trigger(),
            args=[spec],
            id=spec.name,
            name=spec.name,
            misfire_grace_time=spec.schedule.misfire_grace_time,
            **({"next_run_time": first_run} if first_run else {}),
        )
        upcoming = next_run(spec, now)
        log.info(
            "job %s: cron %r in time zone %s; next run %s%s",
            job.name,
            spec.schedule.cron,
            spec.schedule.timezone,
            upcoming.isoformat() if upcoming else "never",
            "; running now to catch up a missed run" if catch_up else
            ("; running now (--run-now)" if run_now else ""),
        )

    def run_job(self, spec: JobSpec) -> None:
        """Run one job; log every error, so that a failing run never stops the scheduler."""
        from .run import run_sync

        with self.idle:
            self.running += 1
        try:
            sources = [self.config.source(name) for name in spec.sources]
            results = run_sync(self.config, sources, cancel=self.stop_event)
            for result in results:
                log.info("job %s: %s", spec.name, result.summary())
        except Exception as error:  # noqa: BLE001 - the scheduler must keep running
            log.error("job %s failed: %s", spec.name, error, exc_info=not isinstance(error, ConfigError))
        finally:
            with self.idle:
                self.running -= 1
                self.idle.notify_all()

    def on_missed(self, event) -> None:
        from apscheduler.events import EVENT_JOB_MISSED

        reason = "woke up too late" if event.code == EVENT_JOB_MISSED else "the previous run was still going"
        log.error(
            "job %s: the run due at %s was skipped: %s",
            event.job_id, getattr(event, "scheduled_run_time", "?"), reason,
        )

    def install_signal_handlers(self) -> None:
        def handle(signum, frame) -> None:
            log.info("received %s; stopping", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def stop(self) -> None:
        """Stop scheduling and tell running jobs to give up; safe from a signal handler."""
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def wait_for_running_jobs(self) -> None:
        with self.idle:
            if not self.idle.wait_for(lambda: self.running == 0, timeout=STOP_WAIT):
                log.error("a sync did not stop within %.0f s; exiting anyway", STOP_WAIT)
