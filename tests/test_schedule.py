"""The scheduler's trigger across DST, catch-up, clean stop, and notifications."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from scraper.config import Schedule
from scraper.records import RecordBook
from scraper.schedule import JobSpec, WallClockCronTrigger, missed_run
from tests.conftest import PAGE_PATH, ROOT, fixture_bytes, store_files, write_config
from tests.httpserver import Reply

BERLIN = ZoneInfo("Europe/Berlin")


def fire_times(expression: str, zone: str, start: datetime, days: int) -> list[datetime]:
    trigger = WallClockCronTrigger(expression, zone)
    previous, now, fires = None, start, []
    end = start + timedelta(days=days)
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire > end:
            return fires
        fires.append(fire)
        previous, now = fire, fire + timedelta(seconds=1)


@pytest.mark.parametrize("expression", ["30 2 * * *", "0 2 * * *", "30 1 * * *", "0 3 * * *"])
@pytest.mark.parametrize(
    "start", [datetime(2026, 3, 25, tzinfo=BERLIN), datetime(2026, 10, 22, tzinfo=BERLIN)],
    ids=["spring-forward", "fall-back"],
)
def test_one_run_per_day_across_dst(expression, start):
    fires = fire_times(expression, "Europe/Berlin", start, days=10)
    local_dates = [fire.astimezone(BERLIN).date() for fire in fires]
    assert len(fires) == 10
    assert len(set(local_dates)) == 10
    assert fires == sorted(fires)


def test_missing_local_time_runs_an_hour_later():
    fires = fire_times("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=BERLIN), 2)
    on_change_day = [fire for fire in fires if fire.astimezone(BERLIN).day == 29]
    assert on_change_day[0].astimezone(timezone.utc) == datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)
    assert on_change_day[0].astimezone(BERLIN).hour == 3


def test_repeated_local_time_runs_once():
    fires = fire_times("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2)
    on_change_day = [fire for fire in fires if fire.astimezone(BERLIN).day == 25]
    assert len(on_change_day) == 1
    assert on_change_day[0].utcoffset() == timedelta(hours=2)


def spec(cron: str = "0 2 * * *") -> JobSpec:
    return JobSpec(name="capi-image-builder", schedule=Schedule(cron=cron), sources=("capi-image-builder",))


def test_missed_run_detected():
    now = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)
    assert missed_run(spec(), [now - timedelta(days=2)], now) is True


def test_recent_check_not_missed():
    now = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)
    assert missed_run(spec(), [datetime(2026, 12, 4, 2, 0, 5, tzinfo=timezone.utc)], now) is False


def test_never_checked_not_missed():
    assert missed_run(spec(), [None], datetime(2026, 12, 4, tzinfo=timezone.utc)) is False


def notify_config(workdir, page_url: str, hook_url: str, threshold: int = 2):
    path = write_config(workdir, page_url)
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "sources:\n",
        f'notify:\n  urls: ["{hook_url}"]\n  failure_threshold: {threshold}\nsources:\n',
    )
    path.write_text(text, encoding="utf-8")


def messages(server) -> list[dict]:
    return [json.loads(request.body) for request in server.requests_for("/hook")]


@pytest.fixture
def hooked(workdir, server):
    """A page route and a webhook route on the same local server, wired into config.yaml."""
    server.route("/hook", Reply(status=200))
    hook = server.url("/hook").replace("http://", "json://")
    notify_config(workdir, server.url(PAGE_PATH), hook)
    return server


def test_change_notified(hooked, scraper):
    hooked.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    assert scraper("sync").code == 0
    hooked.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    assert scraper("sync").code == 0

    sent = messages(hooked)
    assert len(sent) == 2
    assert sent[1]["title"] == "capi-image-builder: matrix changed, version 2 (1 added, 0 removed, 0 changed)"
    assert "+ 1.30.4 added" in sent[1]["message"]


def test_failure_streak_notified_once(hooked, scraper):
    hooked.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    assert scraper("sync").code == 0
    hooked.route(PAGE_PATH, Reply.html(b"<html><body>gone</body></html>", status=404))
    codes = [scraper("sync").code for _ in range(3)]
    hooked.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    assert scraper("sync").code == 0

    titles = [message["title"] for message in messages(hooked)]
    assert codes == [3, 3, 3]
    assert titles[1:] == [
        "capi-image-builder: sync failing (2 runs in a row)",
        "capi-image-builder: sync recovered after 3 failed runs",
    ]


def test_failed_delivery_kept_in_outbox(hooked, workdir, scraper):
    hooked.route("/hook", Reply(status=500))
    hooked.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    first = scraper("sync")
    outbox = list((workdir / ".scraper-state" / "outbox").glob("*.json"))
    entries = [json.loads(path.read_text(encoding="utf-8")) for path in outbox]
    hooked.route("/hook", Reply(status=200))
    second = scraper("sync")

    assert first.code == 0
    assert "not delivered" in first.err
    assert [entry["attempts"] for entry in entries] == [1]
    assert second.code == 0
    assert list((workdir / ".scraper-state" / "outbox").glob("*.json")) == []
    assert messages(hooked)[-1]["title"].startswith("capi-image-builder: matrix changed, version 1")


def test_secret_url_not_logged(workdir, server, scraper, monkeypatch):
    server.route("/hook", Reply(status=500))
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    monkeypatch.setenv("HOOK_URL", server.url("/hook?token=SECRET-TOKEN").replace("http://", "json://"))
    notify_config(workdir, server.url(PAGE_PATH), "${HOOK_URL}")

    result = scraper("-vv", "sync")

    assert result.code == 0
    assert "SECRET-TOKEN" not in result.out + result.err
    files = store_files(workdir / ".scraper-state") | store_files(workdir / "snapshots")
    assert all(b"SECRET-TOKEN" not in data for data in files.values())


def test_unset_variable_stops_before_fetch(workdir, server, scraper, monkeypatch):
    monkeypatch.delenv("HOOK_URL", raising=False)
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    notify_config(workdir, server.url(PAGE_PATH), "${HOOK_URL}")

    result = scraper("sync")

    assert result.code == 2
    assert "environment variable HOOK_URL is not set" in result.err
    assert server.requests_for(PAGE_PATH) == []


def start_scheduler(workdir, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", "schedule", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float = 20.0) -> bool:
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_sigterm_during_run_keeps_store(workdir, server):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    write_config(workdir, server.url(PAGE_PATH), fetch={"deadline": 30, "read_timeout": 30})
    latest = workdir / "snapshots" / "capi-image-builder" / "latest.yaml"
    process = start_scheduler(workdir, "--run-now")
    try:
        assert wait_for(latest.exists)
        before = store_files(workdir / "snapshots")
        server.route(PAGE_PATH, Reply(behaviour="hang"))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "time zone UTC" in err
    assert "next run" in err
    assert store_files(workdir / "snapshots") == before


def test_catch_up_after_restart(workdir, server):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    write_config(workdir, server.url(PAGE_PATH))
    book = RecordBook(workdir / ".scraper-state")
    with book.updating("capi-image-builder") as record:
        record.last_check = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    process = start_scheduler(workdir)
    try:
        caught_up = wait_for(lambda: server.requests_for(PAGE_PATH) != [])
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert caught_up
    assert "catch up a missed run" in err
