"""Cron expressions: validation at load time and crontab weekday numbering."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from scraper.config import cron_problem
from scraper.schedule import WallClockCronTrigger, crontab_for_apscheduler

WEDNESDAY_NOON = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)


def fire_days(expression: str, count: int = 7) -> list[str]:
    trigger = WallClockCronTrigger(expression, "UTC")
    previous, now, days = None, WEDNESDAY_NOON, []
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        days.append(fire.strftime("%a"))
        previous = now = fire
    return days


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("0 2 * * 0", {"Sun"}),
        ("0 2 * * 7", {"Sun"}),
        ("0 2 * * 1", {"Mon"}),
        ("0 2 * * 1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 2 * * 5-7", {"Fri", "Sat", "Sun"}),
        ("0 2 * * */2", {"Sun", "Tue", "Thu", "Sat"}),
        ("0 2 * * 1-5/2", {"Mon", "Wed", "Fri"}),
        ("0 2 * * sat,0", {"Sat", "Sun"}),
    ],
)
def test_weekdays_follow_crontab(expression, days):
    assert set(fire_days(expression)) == days


def test_weekdays_rewritten_as_names():
    assert crontab_for_apscheduler("0 2 * * 1-5") == "0 2 * * mon,tue,wed,thu,fri"


def test_other_fields_untouched():
    assert crontab_for_apscheduler("*/15 3 1 jan *") == "*/15 3 1 jan *"


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("0 2 * *", "it has 4 fields, not five"),
        ("61 2 * * *", "minute field '61': 61 is outside 0-59"),
        ("0 24 * * *", "hour field '24': 24 is outside 0-23"),
        ("0 2 0 * *", "day of month field '0': 0 is outside 1-31"),
        ("0 2 * 13 *", "month field '13': 13 is outside 1-12"),
        ("0 2 * * 8", "day of week field '8': 8 is outside 0-7"),
        ("*/0 * * * *", "invalid step '0'"),
        ("0 2 L * *", "'l' is not a number"),
        ("0 2 1 * mon", "restricts both the day of month and the day of week"),
    ],
)
def test_invalid_cron(expression, fragment):
    assert fragment in cron_problem(expression)


@pytest.mark.parametrize("expression", ["0 2 * * *", "*/15 * * * mon-fri", "30 1 1,15 jan-jun *"])
def test_valid_cron(expression):
    assert cron_problem(expression) is None
