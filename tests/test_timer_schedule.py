"""When the local host fires a timer function: NCRONTAB's next occurrence (devhost/schedule.py), on plain data."""

import datetime

import pytest

from devhost.schedule import Schedule, ScheduleError

T = datetime.datetime(2026, 5, 1, 10, 0, 30)  # a Friday


def test_every_minute_fires_at_the_next_minutes_second_zero():
    assert Schedule("0 */1 * * * *").next_after(T) == datetime.datetime(2026, 5, 1, 10, 1, 0)


def test_an_occurrence_is_strictly_after_the_moment():
    assert Schedule("30 * * * * *").next_after(T) == datetime.datetime(2026, 5, 1, 10, 1, 30)


def test_steps_ranges_and_lists_combine():
    schedule = Schedule("0 5-15/5,40 9-17 * * *")
    assert [schedule.next_after(t) for t in (T, datetime.datetime(2026, 5, 1, 17, 41))] == [
        datetime.datetime(2026, 5, 1, 10, 5), datetime.datetime(2026, 5, 2, 9, 5)]


def test_named_weekdays_and_months_and_day_seven_as_sunday():
    assert Schedule("0 0 8 * * MON").next_after(T) == datetime.datetime(2026, 5, 4, 8, 0)
    assert Schedule("0 0 8 * * 7").next_after(T) == datetime.datetime(2026, 5, 3, 8, 0)
    assert Schedule("0 0 0 1 JAN *").next_after(T) == datetime.datetime(2027, 1, 1, 0, 0)


@pytest.mark.parametrize("expression", ["0 * * * *", "0 */0 * * * *", "61 * * * * *", "0 0 0 31 2 *"])
def test_an_expression_the_timer_extension_refuses_is_an_error(expression):
    with pytest.raises(ScheduleError):
        Schedule(expression).next_after(T)
